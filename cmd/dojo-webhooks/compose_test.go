package main

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
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

func TestComposeMatchesTheCode(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	compose := string(raw)
	known := configVariables()
	setVar := regexp.MustCompile(`(?m)^\s+((?:DOJO_WEBHOOKS|NATS|DD)_[A-Z_]+):\s*"([^"]*)"`)
	matches := setVar.FindAllStringSubmatch(compose, -1)
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
	if !strings.Contains(compose, `"--jetstream"`) {
		t.Error("the NATS service must run with JetStream")
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
	if !strings.Contains(compose, "nats-data:/data") || !strings.Contains(compose, `"--store_dir", "/data"`) {
		t.Error("NATS must keep its store on the volume")
	}
	if !strings.Contains(compose, "healthz?js-enabled-only=true") {
		t.Error("the NATS healthcheck must wait for JetStream")
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
