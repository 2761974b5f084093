package main

import (
	"reflect"
	"testing"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"

	"github.com/caarlos0/env/v11"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/ingest"
	"github.com/dojo-webhooks/dojo-webhooks/internal/embedded"
	"github.com/dojo-webhooks/dojo-webhooks/sidecar"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// TestEnvDefaultsAreThePackageDefaults: every envDefault tag, parsed as its
// variable is, equals the constant of the package that applies that default,
// so that `dojo-webhooks help` and the packages cannot drift apart.
func TestEnvDefaultsAreThePackageDefaults(t *testing.T) {
	want := map[string]any{
		"SubjectPrefix":   contract.DefaultPrefix,
		"Bucket":          statekv.DefaultBucket,
		"Replicas":        statekv.DefaultReplicas,
		"History":         statekv.DefaultHistory,
		"Timeout":         delivery.DefaultTimeout,
		"ReactivateAfter": statekv.DefaultReactivateAfter,
		"RecoverAfter":    statekv.DefaultRecoverAfter,
		"GiveUpAfter":     statekv.DefaultGiveUpAfter,
		"HTTPAddr":        sidecar.DefaultHTTPAddr,
		"HTTPReadTimeout": sidecar.DefaultHTTPReadTimeout,
		"HTTPIdleTimeout": sidecar.DefaultHTTPIdleTimeout,
		"HTTPMaxConns":    sidecar.DefaultHTTPMaxConns,
		"DataDir":         defaultDataDir,
		"NATSHost":        embedded.DefaultHost,
		"NATSPort":        embedded.DefaultPort,
		"ConnectWait":     sidecar.DefaultConnectWait,
		"UserAgent":       delivery.DefaultUserAgent,
		"MaxInFlight":     consumer.DefaultMaxInFlight,
		"EventsMaxAge":    consumer.DefaultEventsMaxAge,
		"EventsMaxBytes":  consumer.DefaultEventsMaxBytes,
		"DeadLetterAge":   consumer.DefaultDeadLetterMaxAge,
		"DedupWindow":     consumer.DefaultDedupWindow,
		"Attempts":        attempts.DefaultMode,
		"AttemptsMaxAge":  attempts.DefaultMaxAge,
		"AttemptsBytes":   attempts.DefaultMaxBytes,
		"AttemptBody":     attempts.DefaultBodyBytes,
		"ShutdownGrace":   consumer.DefaultShutdownGrace,
		"MaxRetryAfter":   statekv.DefaultMaxRetryAfter,
		"SecretOverlap":   statekv.DefaultSecretOverlap,
		"BlockPrivate":    delivery.Options{}.BlockPrivate,
		"FollowRedirects": !delivery.Options{}.NoRedirects,
		"IngestHeader":    ingest.DefaultTokenHeader,
		"IngestMaxBytes":  ingest.DefaultMaxBodyBytes,
		"IngestHold":      ingest.DefaultHold,
		"OpsEvents":       !sidecar.Config{}.NoOpsEvents,
		"LogLevel":        defaultLogLevel,
		"LogFormat":       defaultLogFormat,
	}
	if consumer.DefaultReplicas != statekv.DefaultReplicas {
		t.Errorf("the streams' default replicas %d differ from the bucket's %d", consumer.DefaultReplicas, statekv.DefaultReplicas)
	}
	// Parsing an empty environment yields exactly the envDefault values.
	var defaults Config
	if err := env.ParseWithOptions(&defaults, env.Options{Environment: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	v := reflect.ValueOf(defaults)
	typ := v.Type()
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag, ok := f.Tag.Lookup("envDefault")
		w, listed := want[f.Name]
		delete(want, f.Name)
		switch {
		case !ok && listed:
			t.Errorf("%s: listed here but has no envDefault", f.Tag.Get("env"))
		case !ok:
		case !listed:
			t.Errorf("%s: envDefault %q is not checked against a package constant", f.Tag.Get("env"), tag)
		default:
			got := v.Field(i)
			wv := reflect.ValueOf(w)
			if !wv.CanConvert(got.Type()) || !reflect.DeepEqual(got.Interface(), wv.Convert(got.Type()).Interface()) {
				t.Errorf("%s: envDefault %q, but the package default is %v", f.Tag.Get("env"), tag, w)
			}
		}
	}
	for name := range want {
		t.Errorf("%s: no such Config field", name)
	}
}
