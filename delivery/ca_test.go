package delivery_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dojo-webhooks/dojo-webhooks/delivery"
)

func TestCAFile(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted cases log handshake errors
	srv.StartTLS()
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	// A key in the same file is skipped.
	bundle := append([]byte("# internal CA\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), certPEM...)
	if err := os.WriteFile(caFile, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := delivery.LoadCAFile(caFile)
	if err != nil {
		t.Fatalf("LoadCAFile: %v", err)
	}

	send := func(t *testing.T, opts delivery.Options) delivery.Result {
		t.Helper()
		return delivery.New(opts).Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping"})
	}
	t.Run("untrusted without", func(t *testing.T) {
		if res := send(t, delivery.Options{}); res.Class != delivery.Permanent || !strings.HasPrefix(res.Note, "TLS certificate error: ") {
			t.Errorf("got (%v, %q), want a TLS certificate error", res.Class, res.Note)
		}
	})
	t.Run("trusted with", func(t *testing.T) {
		if res := send(t, delivery.Options{RootCAs: pool}); res.Class != delivery.Success {
			t.Errorf("got %+v, want success", res)
		}
	})
	t.Run("TLSConfig without roots", func(t *testing.T) {
		conf := &tls.Config{MinVersion: tls.VersionTLS12}
		if res := send(t, delivery.Options{RootCAs: pool, TLSConfig: conf}); res.Class != delivery.Success {
			t.Errorf("got %+v, want success", res)
		}
		if conf.RootCAs != nil {
			t.Errorf("the caller's TLSConfig was modified")
		}
	})
	t.Run("TLSConfig roots win", func(t *testing.T) {
		conf := &tls.Config{RootCAs: x509.NewCertPool()}
		if res := send(t, delivery.Options{RootCAs: pool, TLSConfig: conf}); res.Class != delivery.Permanent {
			t.Errorf("got %+v, want permanent (TLSConfig.RootCAs trusts nothing)", res)
		}
	})
	t.Run("with BlockPrivate", func(t *testing.T) {
		opts := delivery.Options{RootCAs: pool, BlockPrivate: true, AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
		if res := send(t, opts); res.Class != delivery.Success {
			t.Errorf("got %+v, want success", res)
		}
	})
}

func TestLoadCAFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing.pem")
	empty := write("empty.pem", "")
	keyOnly := write("key.pem", "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
	garbage := write("garbage.pem", "not a certificate at all")
	corrupt := write("corrupt.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	tests := []struct{ path, err string }{
		{missing, "reading CA file: open " + missing + ": no such file or directory"},
		{empty, "CA file " + empty + " holds no PEM certificate"},
		{keyOnly, "CA file " + keyOnly + " holds no PEM certificate"},
		{garbage, "CA file " + garbage + " holds no PEM certificate"},
		{corrupt, "CA file " + corrupt + ": certificate 1: "},
		{dir, "reading CA file: read " + dir + ": is a directory"},
	}
	for _, tt := range tests {
		pool, err := delivery.LoadCAFile(tt.path)
		if err == nil || !strings.HasPrefix(err.Error(), tt.err) || pool != nil {
			t.Errorf("LoadCAFile(%s) = %v, %v; want error %q…", filepath.Base(tt.path), pool, err, tt.err)
		}
		if err != nil && strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("LoadCAFile error shows the file's content: %v", err)
		}
	}
}
