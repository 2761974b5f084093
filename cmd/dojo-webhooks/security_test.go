package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
)

// authServer starts an embedded JetStream server configured by tweak.
func authServer(t *testing.T, tweak func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	tweak(opts)
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// assertAuth checks that a command works with env and fails without the secret.
func assertAuth(t *testing.T, url string, good, bad map[string]string, secrets ...string) {
	t.Helper()
	env := testEnv(url)
	for k, v := range good {
		env[k] = v
	}
	res := runCmd(t, env, "", "endpoint", "list")
	if res.code != 0 {
		t.Fatalf("with credentials: exit %d: %s", res.code, res.stderr)
	}
	env = testEnv(url)
	for k, v := range bad {
		env[k] = v
	}
	res = runCmd(t, env, "", "endpoint", "list")
	if res.code == 0 {
		t.Fatal("without the right credentials the command succeeded")
	}
	for _, s := range secrets {
		if strings.Contains(res.stderr+res.stdout, s) {
			t.Fatalf("output shows a secret: %q", res.stderr)
		}
	}
}

func TestNATSUserPassword(t *testing.T) {
	s := authServer(t, func(o *server.Options) { o.Username, o.Password = "dojo", "pa55-w0rd" })
	assertAuth(t, s.ClientURL(),
		map[string]string{"NATS_USER": "dojo", "NATS_PASSWORD": "pa55-w0rd"},
		map[string]string{"NATS_USER": "dojo", "NATS_PASSWORD": "wrong-pass"}, "pa55-w0rd", "wrong-pass")
	// The sidecar itself, and no secret in its logs.
	env := testEnv(s.ClientURL())
	env["NATS_USER"], env["NATS_PASSWORD"] = "dojo", "pa55-w0rd"
	logs := startServe(t, env)
	if strings.Contains(logs.String(), "pa55-w0rd") {
		t.Fatal("the password is in the logs")
	}
}

func TestNATSToken(t *testing.T) {
	s := authServer(t, func(o *server.Options) { o.Authorization = "t0ken-s3cret" })
	assertAuth(t, s.ClientURL(), map[string]string{"NATS_TOKEN": "t0ken-s3cret"}, map[string]string{"NATS_TOKEN": "nope"}, "t0ken-s3cret")
}

func TestNATSNkey(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	s := authServer(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	assertAuth(t, s.ClientURL(),
		map[string]string{"NATS_NKEY": writeFile(t, "user.nk", seed)},
		map[string]string{"NATS_NKEY": writeFile(t, "other.nk", otherSeed)}, string(seed))
}

// TestNATSTLS uses a CA generated here: the server requires client certificates.
func TestNATSTLS(t *testing.T) {
	ca, caKey := newCert(t, nil, nil, "test CA")
	srvCert, srvKey := newCert(t, ca, caKey, "localhost")
	cliCert, cliKey := newCert(t, ca, caKey, "dojo-webhooks")
	caFile := writeFile(t, "ca.pem", pemOf("CERTIFICATE", ca.Raw))
	tlsCfg, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: writeFile(t, "server.pem", pemOf("CERTIFICATE", srvCert.Raw)),
		KeyFile:  writeFile(t, "server-key.pem", keyPEM(t, srvKey)),
		CaFile:   caFile, Verify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := authServer(t, func(o *server.Options) { o.TLS, o.TLSConfig, o.TLSVerify = true, tlsCfg, true })
	url := "tls://localhost:" + strconv.Itoa(s.Addr().(*net.TCPAddr).Port)
	assertAuth(t, url,
		map[string]string{"NATS_CA": caFile, "NATS_CERT": writeFile(t, "client.pem", pemOf("CERTIFICATE", cliCert.Raw)),
			"NATS_KEY": writeFile(t, "client-key.pem", keyPEM(t, cliKey))},
		map[string]string{"NATS_CA": caFile})
}

func TestEmbeddedServerRequiresTheConfiguredUser(t *testing.T) {
	port := freePort(t)
	env := map[string]string{
		"DOJO_WEBHOOKS_DATA_DIR": t.TempDir(), "DOJO_WEBHOOKS_NATS_PORT": strconv.Itoa(port),
		"DOJO_WEBHOOKS_HTTP_ADDR": "127.0.0.1:0", "NATS_USER": "dojo", "NATS_PASSWORD": "emb3dded",
	}
	logs := startServe(t, env)
	cli := map[string]string{"DOJO_WEBHOOKS_NATS_PORT": strconv.Itoa(port)}
	if res := runCmd(t, cli, "", "endpoint", "list"); res.code == 0 {
		t.Fatal("the embedded server let a client in without the password")
	}
	cli["NATS_USER"], cli["NATS_PASSWORD"] = "dojo", "emb3dded"
	if res := runCmd(t, cli, "", "status"); res.code != 0 || strings.Contains(res.stdout, "emb3dded") {
		t.Fatalf("status with the password: exit %d %q %q", res.code, res.stdout, res.stderr)
	}
	if strings.Contains(logs.String(), "emb3dded") {
		t.Fatal("the password is in the logs")
	}
}

func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{cn}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func keyPEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("EC PRIVATE KEY", der)
}

// A URL's password is masked wherever the CLI prints a record.
func TestURLPasswordMaskedInShowAndList(t *testing.T) {
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	ok := newReceiver(t, 200)
	u := strings.Replace(ok.URL, "http://", "http://hookuser:hunter2-pass@", 1) + "/hook"
	if res := runCmd(t, env, "", "endpoint", "add", "basic", "--url", u); res.code != 0 {
		t.Fatalf("add: exit %d, %q", res.code, res.stderr)
	}
	for _, args := range [][]string{{"endpoint", "show", "basic"}, {"endpoint", "list", "--json"}, {"endpoint", "list"}} {
		res := runCmd(t, env, "", args...)
		if res.code != 0 || strings.Contains(res.stdout, "hunter2") {
			t.Errorf("%v: exit %d, prints the password: %q", args, res.code, res.stdout)
		}
	}
	if res := runCmd(t, env, "", "endpoint", "show", "basic"); !strings.Contains(res.stdout, "hookuser:xxxxx@") {
		t.Errorf("show does not say which user: %q", res.stdout)
	}
}
