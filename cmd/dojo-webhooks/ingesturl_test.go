package main

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// composeAlias is the sidecar's dotted name on the compose network (docker-compose.yml).
const composeAlias = "dojo-webhooks.internal"

// Django's URLValidator, which DefectDojo's webhook URL field uses, takes a host that is
// an IPv4 address, a bracketed IPv6 address, localhost, or a name with a dot whose last
// label (the TLD) is 2 to 63 letters or an xn-- label. These patterns are its own, ASCII
// only (it also allows letters above U+00A1).
var (
	djangoIPv4  = regexp.MustCompile(`^(?:0|25[0-5]|2[0-4][0-9]|1[0-9]?[0-9]?|[1-9][0-9]?)(?:\.(?:0|25[0-5]|2[0-4][0-9]|1[0-9]?[0-9]?|[1-9][0-9]?)){3}$`)
	djangoLabel = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	djangoTLD   = regexp.MustCompile(`^(?:[a-z][a-z-]{0,61}[a-z]|xn--[a-z0-9]{1,59})$`)
)

// checkDojoURLHost reports why DefectDojo would refuse a webhook URL with this host
// ("Enter a valid URL"), or nil when it accepts it.
func checkDojoURLHost(host string) error {
	h := strings.ToLower(host)
	switch {
	case h == "localhost", djangoIPv4.MatchString(h):
		return nil
	case strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]"):
		if a, err := netip.ParseAddr(h[1 : len(h)-1]); err == nil && a.Is6() {
			return nil
		}
		return fmt.Errorf("host %q is not an IPv6 address", host)
	}
	labels := strings.Split(strings.TrimSuffix(h, "."), ".")
	if len(labels) < 2 {
		return fmt.Errorf("host %q has no dot and is not localhost: DefectDojo's URL field refuses it", host)
	}
	for _, l := range labels[:len(labels)-1] {
		if !djangoLabel.MatchString(l) {
			return fmt.Errorf("host %q: label %q is not a host name label", host, l)
		}
	}
	if tld := labels[len(labels)-1]; !djangoTLD.MatchString(tld) {
		return fmt.Errorf("host %q: %q is not a top-level domain (2 to 63 letters)", host, tld)
	}
	return nil
}

func TestCheckDojoURLHost(t *testing.T) {
	for _, ok := range []string{composeAlias, "localhost", "LOCALHOST", "127.0.0.1", "10.0.0.5", "[::1]",
		"dojo-webhooks.example.com", "hooks.example.com.", "a.xn--p1ai"} {
		if err := checkDojoURLHost(ok); err != nil {
			t.Errorf("%s: %v, want accepted", ok, err)
		}
	}
	for _, bad := range []string{"dojo-webhooks", "nats", "localhost2", "dojo-webhooks.internal1", "-a.example.com",
		"a.b-", "a.c", "a..example.com", "01.2.3.4", "256.1.1.1", "[::1", "[zz]", ""} {
		if err := checkDojoURLHost(bad); err == nil {
			t.Errorf("%q: accepted, want refused as DefectDojo does", bad)
		}
	}
}

// ingestURL matches an http(s) URL whose path starts with /ingest, as written in prose,
// code blocks and YAML.
var ingestURL = regexp.MustCompile("https?://[^\\s\"'`()<>\\[\\]]+/ingest[^\\s\"'`()<>]*")

// Every /ingest URL the README and the compose file give is one DefectDojo accepts.
func TestIngestURLsHaveADottedHost(t *testing.T) {
	if got := ingestURL.FindAllString("at `http://dojo-webhooks:8080/ingest` and (https://a.b/ingest/ep1)", -1); len(got) != 2 ||
		got[0] != "http://dojo-webhooks:8080/ingest" || got[1] != "https://a.b/ingest/ep1" {
		t.Fatalf("the URL pattern finds %q", got)
	}
	total := 0
	for _, file := range []string{"../../README.md", "../../docker-compose.yml"} {
		text := readFile(t, file)
		urls := ingestURL.FindAllString(text, -1)
		if len(urls) == 0 {
			t.Errorf("%s gives no ingest URL", file)
		}
		sawAlias := false
		for _, raw := range urls {
			total++
			u, err := url.Parse(strings.TrimRight(raw, ".,;:"))
			if err != nil {
				t.Errorf("%s: %q: %v", file, raw, err)
				continue
			}
			host := u.Hostname()
			if strings.Contains(u.Host, "[") {
				host = "[" + host + "]"
			}
			if err := checkDojoURLHost(host); err != nil {
				t.Errorf("%s: %s: %v", file, raw, err)
			}
			sawAlias = sawAlias || host == composeAlias
		}
		if !sawAlias {
			t.Errorf("%s does not give the compose ingest URL http://%s:8080/ingest", file, composeAlias)
		}
	}
	t.Logf("%d ingest URLs checked", total)
}
