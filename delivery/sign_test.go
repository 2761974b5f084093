package delivery_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/delivery"
)

// The Standard Webhooks specification's published example.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// specVerify checks a request straight from the Standard Webhooks specification, independently of
// Sign and Verify: key = base64 of the secret after "whsec_"; signed content = id.timestamp.body;
// signature = base64 of HMAC-SHA256; the webhook-signature header holds space-separated
// "v1,<signature>" entries. It reports whether one entry matches.
func specVerify(t *testing.T, secret string, h http.Header, body []byte) bool {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("spec verifier: decoding the secret: %v", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(h.Get("Webhook-Id") + "." + h.Get("Webhook-Timestamp") + "." + string(body)))
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, sig := range strings.Split(h.Get("Webhook-Signature"), " ") {
		if version, value, _ := strings.Cut(sig, ","); version == "v1" && hmac.Equal([]byte(value), []byte(want)) {
			return true
		}
	}
	return false
}

// specHeader returns the headers of the specification's example.
func specHeader(signature string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", specID)
	h.Set("webhook-timestamp", strconv.Itoa(specTimestamp))
	h.Set("webhook-signature", signature)
	return h
}

func TestSignSpecVector(t *testing.T) {
	sig, err := delivery.Sign(specSecret, specID, time.Unix(specTimestamp, 0), []byte(specBody))
	if err != nil {
		t.Fatal(err)
	}
	if sig != specSignature {
		t.Errorf("Sign = %q, want %q", sig, specSignature)
	}
	// The independent verifier agrees with the specification too.
	if !specVerify(t, specSecret, specHeader(specSignature), []byte(specBody)) {
		t.Errorf("spec verifier rejects the specification's example")
	}
	if specVerify(t, specSecret, specHeader(specSignature), []byte(specBody+" ")) {
		t.Errorf("spec verifier accepts a changed body")
	}
	now := time.Unix(specTimestamp, 0).Add(time.Minute)
	if err := delivery.Verify([]string{specSecret}, specHeader(specSignature), []byte(specBody), now, 0); err != nil {
		t.Errorf("Verify(spec example) = %v, want nil", err)
	}
}

func TestGenerateSecret(t *testing.T) {
	a, err := delivery.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := delivery.GenerateSecret()
	if a == b {
		t.Errorf("two secrets are equal: %q", a)
	}
	if !strings.HasPrefix(a, delivery.SecretPrefix) {
		t.Errorf("secret %q lacks the %q prefix", a, delivery.SecretPrefix)
	}
	key, err := delivery.ParseSecret(a)
	if err != nil || len(key) != delivery.SecretBytes {
		t.Errorf("ParseSecret(generated) = %d bytes, %v; want %d bytes", len(key), err, delivery.SecretBytes)
	}
}

func TestParseSecret(t *testing.T) {
	key16 := "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16))
	key65 := "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65))
	key64 := "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 64))
	if key, err := delivery.ParseSecret(specSecret); err != nil || len(key) != 24 {
		t.Errorf("ParseSecret(spec secret) = %d bytes, %v; want 24 bytes", len(key), err)
	}
	if key, err := delivery.ParseSecret(key64); err != nil || len(key) != 64 {
		t.Errorf("ParseSecret(64 bytes) = %d bytes, %v; want 64 bytes", len(key), err)
	}
	tests := []struct{ secret, err string }{
		{"", "webhook secret is empty"},
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `webhook secret does not start with "whsec_"`},
		{"WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `webhook secret does not start with "whsec_"`},
		{"whsec_", `webhook secret has no key after "whsec_"`},
		{"whsec_Mf KQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `webhook secret is not valid base64 (standard encoding, padded) after "whsec_": illegal base64 data at input byte 2`},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", `webhook secret is not valid base64 (standard encoding, padded) after "whsec_": illegal base64 data at input byte 28`},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La_-Sw", `webhook secret is not valid base64 (standard encoding, padded) after "whsec_": illegal base64 data at input byte 28`},
		{key16, "webhook secret key is 16 bytes, want 24 to 64"},
		{key65, "webhook secret key is 65 bytes, want 24 to 64"},
	}
	for _, tt := range tests {
		key, err := delivery.ParseSecret(tt.secret)
		if err == nil || err.Error() != tt.err || key != nil {
			t.Errorf("ParseSecret(%q) = %v, %v; want error %q", tt.secret, key, err, tt.err)
			continue
		}
		if body := strings.TrimPrefix(tt.secret, "whsec_"); len(body) >= 4 && strings.Contains(err.Error(), body[:4]) {
			t.Errorf("ParseSecret(%q) error %q shows the secret", tt.secret, err)
		}
	}
}

func TestSignErrors(t *testing.T) {
	if _, err := delivery.Sign("whsec_AAAA", specID, time.Now(), nil); err == nil || !strings.Contains(err.Error(), "3 bytes") {
		t.Errorf("Sign(3-byte key) error = %v, want a key length error", err)
	}
	if _, err := delivery.Sign(specSecret, "", time.Now(), nil); err == nil || err.Error() != "signing needs a webhook-id" {
		t.Errorf("Sign(no id) error = %v, want %q", err, "signing needs a webhook-id")
	}
}

func TestVerify(t *testing.T) {
	other, _ := delivery.GenerateSecret()
	short := "whsec_" + base64.StdEncoding.EncodeToString([]byte("k")) // 1 byte: accepted when verifying
	at := time.Unix(specTimestamp, 0)
	body := []byte(specBody)
	signWith := func(secret string, ts time.Time) string {
		// Signed by hand (Sign refuses keys under 24 bytes).
		key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		m := hmac.New(sha256.New, key)
		m.Write([]byte(specID + "." + strconv.FormatInt(ts.Unix(), 10) + "." + specBody))
		return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	withTS := func(h http.Header, ts string) http.Header { h.Set("webhook-timestamp", ts); return h }
	without := func(h http.Header, k string) http.Header { h.Del(k); return h }
	tests := []struct {
		name      string
		secrets   []string
		header    http.Header
		body      []byte
		now       time.Time
		tolerance time.Duration
		want      error  // sentinel, or nil
		text      string // exact error text when non-empty
	}{
		{"spec", []string{specSecret}, specHeader(specSignature), body, at, 0, nil, ""},
		{"second secret", []string{other, specSecret}, specHeader(specSignature), body, at, 0, nil, ""},
		{"second signature", []string{specSecret}, specHeader("v1,bm9wZQ== " + specSignature), body, at, 0, nil, ""},
		{"other versions skipped", []string{specSecret}, specHeader("v1a,xyz v2,abc " + specSignature), body, at, 0, nil, ""},
		{"one-byte key", []string{short}, specHeader(signWith(short, at)), body, at, 0, nil, ""},
		{"4m59s old", []string{specSecret}, specHeader(specSignature), body, at.Add(4*time.Minute + 59*time.Second), 0, nil, ""},
		{"5m1s old", []string{specSecret}, specHeader(specSignature), body, at.Add(5*time.Minute + time.Second), 0, delivery.ErrTimestamp,
			"invalid webhook timestamp: webhook-timestamp is 5m1s old, tolerance 5m0s"},
		{"5m1s ahead", []string{specSecret}, specHeader(specSignature), body, at.Add(-5*time.Minute - time.Second), 0, delivery.ErrTimestamp,
			"invalid webhook timestamp: webhook-timestamp is 5m1s in the future, tolerance 5m0s"},
		{"custom tolerance", []string{specSecret}, specHeader(specSignature), body, at.Add(20 * time.Minute), time.Hour, nil, ""},
		{"custom tolerance exceeded", []string{specSecret}, specHeader(specSignature), body, at.Add(11 * time.Second), 10 * time.Second, delivery.ErrTimestamp, ""},
		{"timestamp not integer", []string{specSecret}, withTS(specHeader(specSignature), "1614265330.5"), body, at, 0, delivery.ErrTimestamp,
			"invalid webhook timestamp: webhook-timestamp is not Unix seconds"},
		{"timestamp huge", []string{specSecret}, withTS(specHeader(specSignature), "9223372036854775807"), body, at, 0, delivery.ErrTimestamp,
			"invalid webhook timestamp: webhook-timestamp is 2562047h47m16.854775807s in the future, tolerance 5m0s"},
		{"timestamp negative", []string{specSecret}, withTS(specHeader(specSignature), "-9223372036854775808"), body, at, 0, delivery.ErrTimestamp,
			"invalid webhook timestamp: webhook-timestamp is 2562047h47m16.854775807s old, tolerance 5m0s"},
		{"changed body", []string{specSecret}, specHeader(specSignature), []byte(`{"test": 2432232315}`), at, 0, delivery.ErrBadSignature,
			"webhook signature mismatch: none of 1 v1 signatures matches any of 1 secrets"},
		{"other secret", []string{other}, specHeader(specSignature), body, at, 0, delivery.ErrBadSignature, ""},
		{"changed timestamp", []string{specSecret}, withTS(specHeader(specSignature), strconv.Itoa(specTimestamp+1)), body, at, 0, delivery.ErrBadSignature, ""},
		{"bad base64", []string{specSecret}, specHeader("v1,!!!"), body, at, 0, delivery.ErrBadSignature, ""},
		{"no v1", []string{specSecret}, specHeader("v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), body, at, 0, delivery.ErrNoSignature,
			"no webhook signature: no v1 signature in webhook-signature"},
		{"no signature", []string{specSecret}, without(specHeader(specSignature), "webhook-signature"), body, at, 0, delivery.ErrNoSignature,
			"no webhook signature: missing webhook-signature header"},
		{"blank signature", []string{specSecret}, specHeader("  "), body, at, 0, delivery.ErrNoSignature, ""},
		{"no id", []string{specSecret}, without(specHeader(specSignature), "webhook-id"), body, at, 0, delivery.ErrNoSignature,
			"no webhook signature: missing webhook-id header"},
		{"no timestamp", []string{specSecret}, without(specHeader(specSignature), "webhook-timestamp"), body, at, 0, delivery.ErrNoSignature,
			"no webhook signature: missing webhook-timestamp header"},
		{"no secrets", nil, specHeader(specSignature), body, at, 0, nil, "verifying a webhook signature needs at least one secret"},
		{"invalid secret", []string{specSecret, "whsec_%%%%"}, specHeader(specSignature), body, at, 0, nil,
			`secret 2 of 2: webhook secret is not valid base64 (standard encoding, padded) after "whsec_": illegal base64 data at input byte 0`},
		{"raw lower-case keys", []string{specSecret}, http.Header{
			"webhook-id": {specID}, "webhook-timestamp": {strconv.Itoa(specTimestamp)}, "webhook-signature": {specSignature},
		}, body, at, 0, nil, ""},
		{"signature split over two lines", []string{specSecret}, http.Header{
			"Webhook-Id": {specID}, "Webhook-Timestamp": {strconv.Itoa(specTimestamp)}, "Webhook-Signature": {"v1,bm9wZQ==", specSignature},
		}, body, at, 0, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := delivery.Verify(tt.secrets, tt.header, tt.body, tt.now, tt.tolerance)
			switch {
			case tt.want == nil && tt.text == "" && err != nil:
				t.Errorf("Verify = %v, want nil", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Errorf("Verify = %v, want %v", err, tt.want)
			case tt.text != "" && (err == nil || err.Error() != tt.text):
				t.Errorf("Verify = %v, want %q", err, tt.text)
			}
			if err != nil && strings.Contains(err.Error(), "MfKQ9r8G") {
				t.Errorf("Verify error %q shows the secret", err)
			}
		})
	}
}

// A signed delivery: headers checked with the independent verifier, and a retry is signed anew.
func TestSendSigned(t *testing.T) {
	type seen struct {
		header http.Header
		body   []byte
	}
	got := make(chan seen, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Header.Clone(), b}
	})
	s1, _ := delivery.GenerateSecret()
	s2, _ := delivery.GenerateSecret()
	var mu sync.Mutex
	now := time.Date(2031, 5, 6, 7, 8, 9, 500_000_000, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := delivery.New(delivery.Options{Now: clock})
	body := []byte("{\"finding\": 1,\n \"é\": true}")
	req := delivery.Request{
		URL: srv.URL, Event: "scan_added", Body: body, ID: "events:42", Secrets: []string{s1, s2},
		// The record's extra header cannot replace the signed values.
		HeaderName: "webhook-signature", HeaderValue: "v1,forged",
	}

	res := c.Send(t.Context(), req)
	if res.Class != delivery.Success {
		t.Fatalf("Send = %+v, want success", res)
	}
	first := <-got
	h := first.header
	if ts := h.Values("Webhook-Timestamp"); len(ts) != 1 || ts[0] != strconv.FormatInt(now.Unix(), 10) {
		t.Errorf("webhook-timestamp = %q, want [%d] (the clock's time)", ts, now.Unix())
	}
	if id := h.Values("Webhook-Id"); len(id) != 1 || id[0] != "events:42" {
		t.Errorf("webhook-id = %q, want [events:42]", id)
	}
	sigs := strings.Split(h.Get("Webhook-Signature"), " ")
	if len(h.Values("Webhook-Signature")) != 1 || len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1,") {
		t.Fatalf("webhook-signature = %q, want one header with two v1 signatures", h.Values("Webhook-Signature"))
	}
	for i, s := range []string{s1, s2} {
		if !specVerify(t, s, h, first.body) {
			t.Errorf("secret %d: the delivery's signature does not verify with the spec verifier", i+1)
		}
		one := h.Clone()
		one.Set("Webhook-Signature", sigs[i])
		if !specVerify(t, s, one, first.body) {
			t.Errorf("signature %d is not the one of secret %d (order)", i+1, i+1)
		}
	}
	if err := delivery.Verify([]string{s2}, h, first.body, clock(), 0); err != nil {
		t.Errorf("Verify(delivery) = %v", err)
	}
	unknown, _ := delivery.GenerateSecret()
	if specVerify(t, unknown, h, first.body) {
		t.Errorf("the spec verifier accepts an unknown secret")
	}

	// A retry, 90 s later: same id, new timestamp, signatures valid for it.
	mu.Lock()
	now = now.Add(90 * time.Second)
	mu.Unlock()
	if res := c.Send(t.Context(), req); res.Class != delivery.Success {
		t.Fatalf("retry: Send = %+v, want success", res)
	}
	second := <-got
	h2 := second.header
	if ts := h2.Get("Webhook-Timestamp"); ts != strconv.FormatInt(now.Unix(), 10) || ts == h.Get("Webhook-Timestamp") {
		t.Errorf("retry webhook-timestamp = %q, want %d (new)", ts, now.Unix())
	}
	if h2.Get("Webhook-Id") != h.Get("Webhook-Id") {
		t.Errorf("retry webhook-id = %q, want %q", h2.Get("Webhook-Id"), h.Get("Webhook-Id"))
	}
	if h2.Get("Webhook-Signature") == h.Get("Webhook-Signature") {
		t.Errorf("retry carries the first attempt's signature")
	}
	for i, s := range []string{s1, s2} {
		if !specVerify(t, s, h2, second.body) {
			t.Errorf("retry: secret %d does not verify", i+1)
		}
	}
	// The first attempt's signature does not verify with the retry's timestamp.
	stale := h2.Clone()
	stale.Set("Webhook-Signature", h.Get("Webhook-Signature"))
	if specVerify(t, s1, stale, second.body) {
		t.Errorf("the first signature verifies with the retry's timestamp")
	}

	// Unsigned requests carry neither header.
	c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping", ID: "events:43"})
	plain := (<-got).header
	for _, k := range []string{"Webhook-Timestamp", "Webhook-Signature"} {
		if v, ok := plain[k]; ok {
			t.Errorf("unsigned request has %s = %q", k, v)
		}
	}
}

func TestSendSignedInvalid(t *testing.T) {
	good, _ := delivery.GenerateSecret()
	short := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	c := delivery.New(delivery.Options{DialContext: noDial(t)})
	tests := []struct {
		name string
		req  delivery.Request
		note string
	}{
		{"no id", delivery.Request{URL: "http://x/", Secrets: []string{good}},
			"Invalid request: a signed delivery needs a webhook-id"},
		{"no prefix", delivery.Request{URL: "http://x/", ID: "e:1", Secrets: []string{good, strings.TrimPrefix(good, "whsec_")}},
			`Invalid request: secret 2 of 2: webhook secret does not start with "whsec_"`},
		{"short key", delivery.Request{URL: "http://x/", ID: "e:1", Secrets: []string{short}},
			"Invalid request: secret 1 of 1: webhook secret key is 16 bytes, want 24 to 64"},
		{"empty", delivery.Request{URL: "http://x/", ID: "e:1", Secrets: []string{""}},
			"Invalid request: secret 1 of 1: webhook secret is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.Send(t.Context(), tt.req)
			if res.Class != delivery.Permanent || res.StatusCode != 0 || res.Note != tt.note {
				t.Errorf("got (%v, %d, %q), want (permanent, 0, %q)", res.Class, res.StatusCode, res.Note, tt.note)
			}
			for _, s := range tt.req.Secrets {
				if body := strings.TrimPrefix(s, "whsec_"); body != "" && (strings.Contains(res.Note, body[:8]) || strings.Contains(res.Err.Error(), body[:8])) {
					t.Errorf("the note or error shows a secret: %q", res.Note)
				}
			}
		})
	}
}
