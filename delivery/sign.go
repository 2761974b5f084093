package delivery

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every Standard Webhooks secret; base64 (standard encoding) of the key follows.
const SecretPrefix = "whsec_"

// SecretBytes is the number of random key bytes in a secret made by GenerateSecret.
const SecretBytes = 32

// MinSecretBytes is the smallest key accepted for signing (ParseSecret, Sign, Request.Secrets).
const MinSecretBytes = 24

// MaxSecretBytes is the largest key accepted for signing (ParseSecret, Sign, Request.Secrets).
const MaxSecretBytes = 64

// DefaultTolerance is how far a webhook-timestamp may be from now when Verify is given a zero tolerance.
const DefaultTolerance = 5 * time.Minute

// The Standard Webhooks headers, as Send writes them (net/http canonicalizes them on the wire).
const (
	// HeaderID is the webhook-id header: the event's id, the same on every retry.
	HeaderID = "webhook-id"
	// HeaderTimestamp is the webhook-timestamp header: Unix seconds of the attempt.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature is the webhook-signature header: space-separated "v1,<base64>" signatures.
	HeaderSignature = "webhook-signature"
)

// signatureVersion prefixes each signature in the webhook-signature header.
const signatureVersion = "v1,"

// ErrNoSignature says a request has no webhook-id, webhook-timestamp or v1 webhook-signature to check.
var ErrNoSignature = errors.New("no webhook signature")

// ErrBadSignature says none of a request's signatures matches any of the secrets.
var ErrBadSignature = errors.New("webhook signature mismatch")

// ErrTimestamp says a request's webhook-timestamp is not Unix seconds or is too far from now.
var ErrTimestamp = errors.New("invalid webhook timestamp")

// GenerateSecret returns a new secret: SecretPrefix + base64 of SecretBytes random bytes.
func GenerateSecret() (string, error) {
	key := make([]byte, SecretBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generating webhook secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// ParseSecret returns the key of a secret for signing: SecretPrefix + base64 of MinSecretBytes to MaxSecretBytes bytes.
// It is the rule for a record's secret and previous_secret as well as for Request.Secrets.
// Its errors say what is wrong without repeating the secret.
func ParseSecret(s string) ([]byte, error) {
	key, err := decodeSecret(s)
	if err != nil {
		return nil, err
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("webhook secret key is %d bytes, want %d to %d", len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// decodeSecret returns the key of a secret of any non-empty length (what Verify accepts).
func decodeSecret(s string) ([]byte, error) {
	switch {
	case s == "":
		return nil, errors.New("webhook secret is empty")
	case !strings.HasPrefix(s, SecretPrefix):
		return nil, fmt.Errorf("webhook secret does not start with %q", SecretPrefix)
	case len(s) == len(SecretPrefix):
		return nil, fmt.Errorf("webhook secret has no key after %q", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(s[len(SecretPrefix):])
	if err != nil {
		// base64.CorruptInputError gives an offset only, never the input.
		return nil, fmt.Errorf("webhook secret is not valid base64 (standard encoding, padded) after %q: %w", SecretPrefix, err)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("webhook secret has no key after %q", SecretPrefix)
	}
	return key, nil
}

// Sign returns the Standard Webhooks v1 signature ("v1,<base64>") of body sent with webhook-id id at time ts.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", errors.New("signing needs a webhook-id")
	}
	return signatureVersion + base64.StdEncoding.EncodeToString(mac(key, id, strconv.FormatInt(ts.Unix(), 10), body)), nil
}

// signatures returns the webhook-signature header value for keys, one v1 signature per key, in order.
func signatures(keys [][]byte, id, ts string, body []byte) string {
	var b strings.Builder
	b.Grow(len(keys) * (len(signatureVersion) + base64.StdEncoding.EncodedLen(sha256.Size) + 1))
	for i, key := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(signatureVersion)
		b.WriteString(base64.StdEncoding.EncodeToString(mac(key, id, ts, body)))
	}
	return b.String()
}

// mac returns HMAC-SHA256(key, id + "." + ts + "." + body), the Standard Webhooks signed content.
func mac(key []byte, id, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a received Standard Webhooks request (for Go receivers): its webhook-timestamp must be
// within tolerance of now (DefaultTolerance when tolerance <= 0) and one of its v1 signatures must match
// one of secrets (compared in constant time). Errors wrap ErrNoSignature, ErrTimestamp or ErrBadSignature,
// or say which secret is invalid; they never contain a secret.
func Verify(secrets []string, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secrets) == 0 {
		return errors.New("verifying a webhook signature needs at least one secret")
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		key, err := decodeSecret(s)
		if err != nil {
			return fmt.Errorf("secret %d of %d: %w", i+1, len(secrets), err)
		}
		keys[i] = key
	}
	id := headerValue(header, HeaderID)
	ts := headerValue(header, HeaderTimestamp)
	sigHeader := strings.Join(headerValues(header, HeaderSignature), " ")
	switch {
	case id == "":
		return fmt.Errorf("%w: missing %s header", ErrNoSignature, HeaderID)
	case ts == "":
		return fmt.Errorf("%w: missing %s header", ErrNoSignature, HeaderTimestamp)
	case strings.TrimSpace(sigHeader) == "":
		return fmt.Errorf("%w: missing %s header", ErrNoSignature, HeaderSignature)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not Unix seconds", ErrTimestamp, HeaderTimestamp)
	}
	// Clamped so that time.Unix cannot overflow: Sub then saturates with the right sign.
	const far = 1 << 40 // seconds, about 35,000 years
	secs = min(max(secs, now.Unix()-far), now.Unix()+far)
	sent := time.Unix(secs, 0)
	if age := now.Sub(sent); age > tolerance {
		return fmt.Errorf("%w: %s is %s old, tolerance %s", ErrTimestamp, HeaderTimestamp, age.Round(time.Second), tolerance)
	}
	if ahead := sent.Sub(now); ahead > tolerance {
		return fmt.Errorf("%w: %s is %s in the future, tolerance %s", ErrTimestamp, HeaderTimestamp, ahead.Round(time.Second), tolerance)
	}
	expected := make([][]byte, len(keys))
	for i, key := range keys {
		expected[i] = mac(key, id, ts, body)
	}
	found := 0
	for _, sig := range strings.Fields(sigHeader) {
		enc, ok := strings.CutPrefix(sig, signatureVersion)
		if !ok {
			continue // another version or scheme: not ours to check
		}
		found++
		got, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			continue
		}
		for _, want := range expected {
			if hmac.Equal(got, want) {
				return nil
			}
		}
	}
	if found == 0 {
		return fmt.Errorf("%w: no v1 signature in %s", ErrNoSignature, HeaderSignature)
	}
	return fmt.Errorf("%w: none of %d v1 signatures matches any of %d secrets", ErrBadSignature, found, len(keys))
}

// headerValue returns the first value of name in h, also when h was built with non-canonical keys.
func headerValue(h http.Header, name string) string {
	if vs := headerValues(h, name); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// headerValues returns the values of name in h, also when h was built with non-canonical keys.
func headerValues(h http.Header, name string) []string {
	if vs := h.Values(name); len(vs) > 0 {
		return vs
	}
	return h[name]
}
