package main

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// No Docker engine runs where the tests do, so the compose file and the
// Dockerfile are checked against the code instead.

func configVariables() map[string]bool {
	vars := map[string]bool{}
	t := reflect.TypeFor[Config]()
	for i := 0; i < t.NumField(); i++ {
		vars[t.Field(i).Tag.Get("env")] = true
	}
	return vars
}

// composeService returns the block of one service of docker-compose.yml: its
// "  name:" line up to the next line indented by two spaces or less.
func composeService(t *testing.T, compose, name string) string {
	t.Helper()
	start := strings.Index(compose, "\n  "+name+":\n")
	if start < 0 {
		t.Fatalf("docker-compose.yml has no service %s", name)
	}
	block := compose[start+1:]
	if end := regexp.MustCompile(`\n {0,2}[^\s#]`).FindStringIndex(block[1:]); end != nil {
		block = block[:end[0]+1]
	}
	return block
}

func TestComposeMatchesTheCode(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	compose := string(raw)
	sidecar := composeService(t, compose, "dojo-webhooks")
	known := configVariables()
	setVar := regexp.MustCompile(`(?m)^\s+((?:DOJO_WEBHOOKS|NATS|DD)_[A-Z_]+):\s*"([^"]*)"`)
	matches := setVar.FindAllStringSubmatch(sidecar, -1)
	if len(matches) < 5 {
		t.Fatalf("found only %d environment variables in docker-compose.yml", len(matches))
	}
	env := map[string]string{}
	for _, m := range matches {
		if !known[m[1]] {
			t.Errorf("docker-compose.yml sets %s, which the configuration does not have", m[1])
		}
		if !strings.Contains(m[2], "${") {
			env[m[1]] = m[2]
		}
	}
	// The values it sets must load.
	if _, err := loadConfig(env); err != nil {
		t.Errorf("docker-compose.yml's environment does not load: %v", err)
	}
	if env["NATS_URL"] != "nats://nats:4222" || !strings.Contains(compose, "\n  nats:\n") {
		t.Errorf("the sidecar must point at the compose NATS service, got NATS_URL %q", env["NATS_URL"])
	}
	// Port and health paths.
	if addr := env["DOJO_WEBHOOKS_HTTP_ADDR"]; addr != ":8080" {
		t.Errorf("DOJO_WEBHOOKS_HTTP_ADDR %q: the ports and healthcheck below assume :8080", addr)
	}
	if !strings.Contains(compose, `:8080"`) {
		t.Error("the sidecar's port 8080 is not published")
	}
	if !strings.Contains(compose, `["CMD", "/usr/local/bin/dojo-webhooks", "healthcheck"]`) {
		t.Error("the sidecar's healthcheck must run `dojo-webhooks healthcheck` (it checks /healthz)")
	}
	if !strings.Contains(compose, "condition: service_healthy") || !strings.Contains(compose, "restart: unless-stopped") {
		t.Error("the sidecar must depend on a healthy NATS and restart")
	}
	if !strings.Contains(compose, "healthz?js-enabled-only=true") {
		t.Error("the NATS healthcheck must wait for JetStream")
	}
}

// The compose NATS service runs under deploy/nats-server.conf, and the sidecar logs
// in as that file's sidecar user with the password the server reads.
func TestComposeUsesTheNATSConfiguration(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	compose := string(raw)
	natsService, sidecar := composeService(t, compose, "nats"), composeService(t, compose, "dojo-webhooks")

	const mounted = "/etc/nats/nats-server.conf"
	if !strings.Contains(natsService, `"--config", "`+mounted+`"`) {
		t.Errorf("the NATS service must run with --config %s", mounted)
	}
	if !strings.Contains(natsService, "- ${DOJO_WEBHOOKS_SRC:-.}/deploy/nats-server.conf:"+mounted+":ro") {
		t.Errorf("the NATS service must mount deploy/nats-server.conf (from DOJO_WEBHOOKS_SRC, like the build) at %s", mounted)
	}
	if strings.Contains(natsService, "--http_port") || strings.Contains(natsService, "--jetstream") || strings.Contains(natsService, "8222:") {
		t.Error("the NATS service must take JetStream and monitoring from the file (a flag overrides it; 8222 is not published)")
	}

	// Every password the file reads from the environment is given to the NATS service,
	// required (no default), and the sidecar's is the one of its user.
	conf := readFile(t, "../../deploy/nats-server.conf")
	passwords := regexp.MustCompile(`(?m)^\s*user:\s*(\S+)\s*\n\s*password:\s*\$([A-Z_]+)`).FindAllStringSubmatch(conf, -1)
	if len(passwords) != 2 {
		t.Fatalf("deploy/nats-server.conf: found %d users with a password from the environment, want 2", len(passwords))
	}
	userVar := map[string]string{}
	for _, m := range passwords {
		userVar[m[1]] = m[2]
		want := m[2] + `: "${` + m[2] + `:?`
		if !strings.Contains(natsService, want) {
			t.Errorf("the NATS service must get %s from the environment, required (%s…)", m[2], want)
		}
	}
	user := regexp.MustCompile(`(?m)^\s+NATS_USER:\s*"([^"]*)"`).FindStringSubmatch(sidecar)
	if user == nil || userVar[user[1]] == "" {
		t.Fatalf("the sidecar's NATS_USER %v is not a user of deploy/nats-server.conf (%v)", user, userVar)
	}
	if want := `NATS_PASSWORD: "${` + userVar[user[1]] + `:?`; !strings.Contains(sidecar, want) {
		t.Errorf("the sidecar's NATS_PASSWORD must be %s's password variable, required: want %s…", user[1], want)
	}

	// The file, read with those variables set, is what the rest of the compose file assumes.
	for _, v := range userVar {
		t.Setenv(v, "compose-test-pw")
	}
	opts, err := server.ProcessConfigFile("../../deploy/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !opts.JetStream || opts.StoreDir != "/data" || !strings.Contains(natsService, "- nats-data:/data") {
		t.Errorf("NATS must run JetStream with its store on the volume: jetstream %v, store_dir %q", opts.JetStream, opts.StoreDir)
	}
	if opts.Port != 4222 || !strings.Contains(sidecar, `NATS_URL: "nats://nats:4222"`) {
		t.Errorf("NATS listens on port %d; the sidecar's NATS_URL must use it", opts.Port)
	}
	if opts.HTTPHost != "127.0.0.1" || !strings.Contains(natsService, fmt.Sprintf(`"http://127.0.0.1:%d/healthz`, opts.HTTPPort)) {
		t.Errorf("monitoring on %s:%d: it must be loopback only, and the healthcheck must use it", opts.HTTPHost, opts.HTTPPort)
	}
	found := false
	for _, u := range opts.Users {
		found = found || u.Username == user[1]
	}
	if !found {
		t.Errorf("the server has no user %s", user[1])
	}
	for _, v := range []string{"DOJO_WEBHOOKS_NATS_PASSWORD", "DOJO_OPERATOR_NATS_PASSWORD"} {
		if !strings.Contains(readFile(t, "../../README.md"), v+"=") {
			t.Errorf("the README does not say how to set %s", v)
		}
	}

	// The sidecar is reachable under a dotted name, as DefectDojo's URL field requires.
	if !strings.Contains(sidecar, "aliases: ["+composeAlias+"]") {
		t.Errorf("the sidecar service must have the network alias %s", composeAlias)
	}
	if err := checkDojoURLHost(composeAlias); err != nil {
		t.Errorf("the alias: %v", err)
	}
}

func TestDockerfileBuildsTheBinary(t *testing.T) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{
		"CGO_ENABLED=0 go build", "./cmd/dojo-webhooks", // static binary of this command
		"FROM gcr.io/distroless/static-debian12:nonroot", "USER nonroot", // small, non-root
		"EXPOSE 8080", `"healthcheck"`, `CMD ["serve"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if strings.Count(df, "\nFROM ") < 1 || !strings.HasPrefix(strings.TrimSpace(df[strings.Index(df, "FROM"):]), "FROM golang:") {
		t.Error("Dockerfile must be a multi-stage build starting from golang")
	}
	// The healthcheck path it relies on is served.
	if !strings.Contains(readFile(t, "healthcheck.go"), `"/healthz"`) || !strings.Contains(readFile(t, "../../sidecar/health.go"), `"GET /healthz"`) {
		t.Error("healthcheck and /healthz disagree")
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
