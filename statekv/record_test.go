package statekv_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// fullJSON is a record with every field set, as an operator would type it.
const fullJSON = `{
  "name": "Security alerts",
  "url": "https://hooks.example.com/dojo?team=sec",
  "header_name": "Authorization",
  "header_value": "Bearer s3cret",
  "owner": "alice",
  "events": ["product_added", "scan_added"],
  "status": "active_tmp",
  "first_error": "2025-03-14T11:00:00Z",
  "last_error": "2025-03-14T11:30:00.123Z",
  "note": "Response status code: 503",
  "created_at": "2025-03-01T08:00:00Z"
}`

// minimalJSON is the least a valid record needs.
const minimalJSON = `{"name":"Ops","url":"http://ops.internal:8080/hook","status":"active"}`

// decode unmarshals JSON into a generic value.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("written JSON does not decode: %v\n%s", err, b)
	}
	return m
}

// documented lists the fields of DESIGN.md section 3 (and created_at) that every written record has.
var documented = []string{"name", "url", "header_name", "header_value", "owner", "events", "status", "first_error", "last_error", "note", "created_at"}

// checkWritten checks a written record: the fields in set have those values,
// every documented field is present, and every other field is null ([] for events).
func checkWritten(t *testing.T, out []byte, set map[string]any) {
	t.Helper()
	doc := decode(t, out)
	for k, v := range set {
		if !reflect.DeepEqual(doc[k], v) {
			t.Errorf("field %s written as %#v, want %#v", k, doc[k], v)
		}
	}
	for _, k := range documented {
		if _, ok := doc[k]; !ok {
			t.Errorf("field %s not written", k)
		}
	}
	for k, v := range doc {
		if _, ok := set[k]; ok {
			continue
		}
		if k == "events" {
			if !reflect.DeepEqual(v, []any{}) {
				t.Errorf("unset events written as %#v, want []", v)
			}
		} else if v != nil {
			t.Errorf("unset field %s written as %#v, want null", k, v)
		}
	}
}

func TestParseRecordFull(t *testing.T) {
	t.Parallel()
	r, err := statekv.ParseRecord("sec-alerts", []byte(fullJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := statekv.Record{
		ID:          "sec-alerts",
		Name:        "Security alerts",
		URL:         "https://hooks.example.com/dojo?team=sec",
		HeaderName:  "Authorization",
		HeaderValue: "Bearer s3cret",
		Owner:       "alice",
		Events:      []string{"product_added", "scan_added"},
		Status:      statekv.StatusActiveTmp,
		FirstError:  time.Date(2025, 3, 14, 11, 0, 0, 0, time.UTC),
		LastError:   time.Date(2025, 3, 14, 11, 30, 0, 123e6, time.UTC),
		Note:        "Response status code: 503",
		CreatedAt:   time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC),
	}
	if d := diffRecords(r, want); d != "" {
		t.Error(d)
	}
	if r.Extra() != nil {
		t.Errorf("Extra() = %v, want nil", r.Extra())
	}
	if r.FirstError.Location() != time.UTC || r.LastError.Location() != time.UTC {
		t.Error("timestamps not in UTC")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{"full": fullJSON, "minimal": minimalJSON} {
		t.Run(name, func(t *testing.T) {
			r, err := statekv.ParseRecord("ep", []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			out, err := r.MarshalJSON() // what the store writes
			if err != nil {
				t.Fatal(err)
			}
			viaPkg, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(decode(t, viaPkg), decode(t, out)) {
				t.Errorf("MarshalJSON and json.Marshal differ:\n%s\n%s", out, viaPkg)
			}
			// Same document, field for field (nulls where the input left a field out).
			checkWritten(t, out, decode(t, []byte(in)))
			back, err := statekv.ParseRecord("ep", out)
			if err != nil {
				t.Fatalf("written record does not parse: %v\n%s", err, out)
			}
			if d := diffRecords(back, r); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestRecordNulls(t *testing.T) {
	t.Parallel()
	r := validRecord("ep")
	r.HeaderName, r.HeaderValue, r.Owner, r.Note = "", "", "", ""
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	checkWritten(t, out, map[string]any{"name": "Endpoint ep", "url": "https://hooks.example.com/ep", "status": "active"})
	if strings.Contains(string(out), `""`) || strings.Contains(string(out), "0001-01-01") {
		t.Errorf("empty string or zero time written instead of null: %s", out)
	}

	// Reading: null, "" and absent all mean "none"; events null, [] and absent mean all events.
	for _, in := range []string{
		`{"name":"N","url":"https://x.example","status":"active","header_name":null,"header_value":null,"owner":null,"events":null,"first_error":null,"last_error":null,"note":null,"created_at":null}`,
		`{"name":"N","url":"https://x.example","status":"active","header_name":"","header_value":"","owner":"","events":[],"first_error":"","last_error":"","note":"","created_at":""}`,
		`{"name":"N","url":"https://x.example","status":"active"}`,
	} {
		r, err := statekv.ParseRecord("ep", []byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if r.HeaderName != "" || r.HeaderValue != "" || r.Owner != "" || len(r.Events) != 0 || !r.FirstError.IsZero() ||
			!r.LastError.IsZero() || r.Note != "" || !r.CreatedAt.IsZero() || r.Extra() != nil {
			t.Errorf("%s: parsed %+v, want every optional field empty", in, r)
		}
		if !r.Matches("anything", "") {
			t.Errorf("%s: an empty filter must match every event", in)
		}
	}

	// Times are written in UTC at millisecond precision.
	r.FirstError = time.Date(2025, 3, 14, 13, 0, 0, 123456789, time.FixedZone("CET", 3600))
	r.LastError = r.FirstError
	r.Status = statekv.StatusInactiveTmp
	out, _ = json.Marshal(r)
	if got := decode(t, out)["first_error"]; got != "2025-03-14T12:00:00.123Z" {
		t.Errorf("first_error written as %v, want 2025-03-14T12:00:00.123Z", got)
	}
}

func TestRecordUnknownFieldsKept(t *testing.T) {
	t.Parallel()
	in := `{"name":"Ops","url":"https://ops.example.com/hook","status":"active",
		"team":"sec","priority":3,"labels":{"env":["prod","eu"],"since":null},"enabled":true}`
	r, err := statekv.ParseRecord("ops", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := jsonValues(r.Extra()); !reflect.DeepEqual(got, map[string]any{
		"team": "sec", "priority": float64(3), "labels": map[string]any{"env": []any{"prod", "eu"}, "since": nil}, "enabled": true,
	}) {
		t.Errorf("Extra() = %v", got)
	}
	// Rewrite after a transition, as the store does.
	next, changed := statekv.Transition(r, statekv.Event{Input: statekv.TemporaryFailure, Note: note500}, now, policy)
	if !changed {
		t.Fatal("changed = false")
	}
	out, err := json.Marshal(next)
	if err != nil {
		t.Fatal(err)
	}
	orig, got := decode(t, []byte(in)), decode(t, out)
	for _, f := range []string{"team", "priority", "labels", "enabled"} {
		if !reflect.DeepEqual(got[f], orig[f]) {
			t.Errorf("unknown field %s written as %v, want %v", f, got[f], orig[f])
		}
	}
	if got["status"] != "inactive_tmp" || got["note"] != note500 {
		t.Errorf("status/note written as %v/%v", got["status"], got["note"])
	}
	// And again: a second rewrite still has them.
	again, err := statekv.ParseRecord("ops", out)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffRecords(again, next); d != "" {
		t.Error(d)
	}
}

// TestRecordRewriteSize: a record near the size limit stays within it when
// rewritten: '<', '>' and '&' are not expanded to \u003c escapes.
func TestRecordRewriteSize(t *testing.T) {
	t.Parallel()
	html := strings.Repeat("<b>&amp;</b>", (statekv.MaxRecordBytes-2000)/12) // room for the null fields and note a rewrite adds
	in := `{"name":"<Ops & Sec>","url":"https://x.example/?a=1&b=2","status":"active","html":"` + html + `"}`
	if len(in) > statekv.MaxRecordBytes {
		t.Fatalf("test input is %d bytes", len(in))
	}
	r, err := statekv.ParseRecord("ep", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	next, _ := statekv.Transition(r, statekv.Event{Input: statekv.TemporaryFailure, Note: "<html>502 Bad Gateway & more</html>"}, now, policy)
	out, err := next.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := statekv.ParseRecord("ep", out)
	if err != nil {
		t.Fatalf("rewritten record (%d bytes, from %d) does not parse: %v", len(out), len(in), err)
	}
	if d := diffRecords(back, next); d != "" {
		t.Error(d)
	}
	if strings.Contains(string(out), `\u003c`) {
		t.Errorf("rewritten record has \\u003c escapes")
	}
}

func TestParseRecordInvalid(t *testing.T) {
	t.Parallel()
	// with returns minimalJSON with one field set to a raw JSON value.
	with := func(field, raw string) string {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(minimalJSON), &m); err != nil {
			panic(err)
		}
		m[field] = json.RawMessage(raw)
		b, err := json.Marshal(m)
		if err != nil {
			panic(err)
		}
		return string(b)
	}
	without := func(field string) string {
		var m map[string]json.RawMessage
		_ = json.Unmarshal([]byte(minimalJSON), &m)
		delete(m, field)
		b, _ := json.Marshal(m)
		return string(b)
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	big := `{"name":"N","url":"https://x.example","status":"active","padding":"` + strings.Repeat("p", statekv.MaxRecordBytes) + `"}`

	cases := []struct {
		name, id, data string
		field          string // must appear in the error; "" when no field is to blame
		secret         string // must not appear in the error
	}{
		{name: "id uppercase", id: "Ops", data: minimalJSON, field: "id"},
		{name: "id too long", id: strings.Repeat("a", statekv.MaxIDLength+1), data: minimalJSON, field: "id"},
		{name: "id with a dot", id: "ops.hook", data: minimalJSON, field: "id"},
		{name: "id empty", id: "", data: minimalJSON, field: "id"},
		{name: "id with a space", id: "ops hook", data: minimalJSON, field: "id"},
		{name: "id with a wildcard", id: "ops*", data: minimalJSON, field: "id"},
		{name: "name missing", data: without("name"), field: "name"},
		{name: "name null", data: with("name", "null"), field: "name"},
		{name: "name blank", data: with("name", `"   "`), field: "name"},
		{name: "name 101 chars", data: with("name", q(strings.Repeat("n", 101))), field: "name"},
		{name: "url missing", data: without("url"), field: "url"},
		{name: "url ftp", data: with("url", `"ftp://files.example.com/hook"`), field: "url"},
		{name: "url javascript", data: with("url", `"javascript:alert(1)"`), field: "url"},
		{name: "url file", data: with("url", `"file:///etc/passwd"`), field: "url"},
		{name: "url no host", data: with("url", `"https:///hook"`), field: "url"},
		{name: "url relative", data: with("url", `"/hook"`), field: "url"},
		{name: "url port without host", data: with("url", `"https://:8443/hook"`), field: "url"}, // the client refuses it: so does the record
		{name: "url not parseable", data: with("url", `"http://exa mple.com/%zz"`), field: "url"},
		{name: "url bad port", data: with("url", `"http://example.com:port/"`), field: "url"},
		{name: "url too long", data: with("url", q("https://x.example/"+strings.Repeat("a", statekv.MaxURLLength))), field: "url"},
		{name: "header_name with a space", data: with("header_name", `"X Token"`), field: "header_name"},
		{name: "header_name with a colon", data: with("header_name", `"X-Token:"`), field: "header_name"},
		{name: "header_name with CR LF", data: with("header_name", `"X-Token\r\nInjected"`), field: "header_name"},
		{name: "header_value with CR LF", data: strings.Replace(with("header_name", `"Authorization"`), "{", `{"header_value":"Bearer s3cret\r\nX-Evil: 1",`, 1),
			field: "header_value", secret: "s3cret"},
		{name: "header_value with LF", data: strings.Replace(with("header_name", `"Authorization"`), "{", `{"header_value":"tok\nen-s3cret",`, 1),
			field: "header_value", secret: "s3cret"},
		{name: "header_value with DEL", data: strings.Replace(with("header_name", `"Authorization"`), "{", `{"header_value":"tok\u007fen-s3cret",`, 1),
			field: "header_value", secret: "s3cret"}, // the client refuses it: so does the record
		{name: "header_value not a string", data: strings.Replace(with("header_name", `"Authorization"`), "{", `{"header_value":["s3cret"],`, 1),
			field: "header_value", secret: "s3cret"},
		{name: "header_value without header_name", data: with("header_value", `"Bearer s3cret"`), field: "header_value", secret: "s3cret"},
		{name: "status unknown", data: with("status", `"paused"`), field: "status"},
		{name: "status missing", data: without("status"), field: "status"},
		{name: "status wrong case", data: with("status", `"Active"`), field: "status"},
		{name: "note 1001 chars", data: with("note", q(strings.Repeat("x", statekv.MaxNoteLength+1))), field: "note"},
		{name: "owner too long", data: with("owner", q(strings.Repeat("o", statekv.MaxOwnerLength+1))), field: "owner"},
		{name: "events with a dot", data: with("events", `["product.added"]`), field: "events"},
		{name: "events wildcard *", data: with("events", `["*"]`), field: "events"},
		{name: "events wildcard >", data: with("events", `[">"]`), field: "events"},
		{name: "events with a space", data: with("events", `["scan added"]`), field: "events"},
		{name: "events empty name", data: with("events", `["product_added",""]`), field: "events"},
		{name: "events too many", data: with("events", `["e`+strings.Repeat(`","e`, statekv.MaxEvents)+`"]`), field: "events"},
		{name: "status: 5", data: with("status", "5"), field: "status"},
		{name: `events: "x"`, data: with("events", `"x"`), field: "events"},
		{name: "events: [1]", data: with("events", `[1]`), field: "events"},
		{name: `first_error: "yesterday"`, data: with("first_error", `"yesterday"`), field: "first_error"},
		{name: "last_error: 1710417600", data: with("last_error", `1710417600`), field: "last_error"},
		{name: "created_at without zone", data: with("created_at", `"2025-03-14T12:00:00"`), field: "created_at"},
		{name: "url: {}", data: with("url", `{}`), field: "url"},
		{name: "name: true", data: with("name", `true`), field: "name"},
		{name: "note: []", data: with("note", `[]`), field: "note"},
		{name: "not JSON", data: `name: Ops`},
		{name: "empty value", data: ``},
		{name: "JSON array", data: `[` + minimalJSON + `]`},
		{name: "JSON null", data: `null`},
		{name: "JSON string", data: `"active"`},
		{name: "truncated JSON", data: minimalJSON[:len(minimalJSON)-1]},
		{name: "trailing garbage", data: minimalJSON + ` x`},
		{name: "two objects", data: minimalJSON + minimalJSON},
		{name: "trailing brace", data: minimalJSON + `}`},
		{name: "trailing bracket", data: minimalJSON + `]`},
		{name: "more than 64 KiB", data: big},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id
			if id == "" && !strings.HasPrefix(tc.name, "id ") {
				id = "ep"
			}
			_, err := statekv.ParseRecord(id, []byte(tc.data))
			if err == nil {
				t.Fatalf("ParseRecord(%q, %.200s) = nil error", id, tc.data)
			}
			if !errors.Is(err, statekv.ErrInvalidRecord) {
				t.Errorf("error %q does not wrap ErrInvalidRecord", err)
			}
			if tc.field != "" && !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q reveals the header value", err)
			}
		})
	}
}

// TestParseRecordLimits: values exactly at the limits are accepted.
func TestParseRecordLimits(t *testing.T) {
	t.Parallel()
	r := statekv.Record{
		ID:          strings.Repeat("a", statekv.MaxIDLength-3) + "-_9",
		Name:        strings.Repeat("ñ", statekv.MaxNameLength),
		URL:         "https://[2001:db8::1]:8443/hook?x=1#frag",
		HeaderName:  "X-Api_Key!#$%&'*+.^`|~",
		HeaderValue: "value with spaces: and colons",
		Owner:       "bob@example.com",
		Events:      []string{"product_type_added", "SLA-breach", "ping"},
		Status:      statekv.StatusInactivePermanent,
		Note:        strings.Repeat("ü", statekv.MaxNoteLength),
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := statekv.ParseRecord(r.ID, out)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffRecords(back, r); d != "" {
		t.Error(d)
	}
	// Timestamps with an offset are read as the same instant.
	b, err := statekv.ParseRecord("ep", []byte(`{"name":"N","url":"https://x.example","status":"inactive_tmp","first_error":"2025-03-14T13:00:00+01:00"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !b.FirstError.Equal(time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("first_error = %s", b.FirstError)
	}
}

func TestRecordMatches(t *testing.T) {
	t.Parallel()
	system := validRecord("sys")
	personal := validRecord("alice-hook")
	personal.Owner = "alice"
	filtered := validRecord("scans")
	filtered.Events = []string{"scan_added", "scan_added_empty"}
	filteredPersonal := filtered
	filteredPersonal.Owner = "alice"
	cases := []struct {
		name             string
		r                statekv.Record
		event, recipient string
		want             bool
	}{
		{"system endpoint, system notification", system, "product_added", "", true},
		{"system endpoint, unknown future event", system, "sla_breached", "", true},
		{"system endpoint, personal notification", system, "product_added", "alice", false},
		{"personal endpoint, its owner's notification", personal, "product_added", "alice", true},
		{"personal endpoint, another user's notification", personal, "product_added", "bob", false},
		{"personal endpoint, system notification", personal, "product_added", "", false},
		{"owner match is case-sensitive", personal, "product_added", "Alice", false},
		{"filter lets a listed event through", filtered, "scan_added", "", true},
		{"filter lets the other listed event through", filtered, "scan_added_empty", "", true},
		{"filter holds back an unlisted event", filtered, "product_added", "", false},
		{"filter holds back ping when not listed", filtered, "ping", "", false},
		{"filter is exact, not a prefix", filtered, "scan", "", false},
		{"filter and owner both match", filteredPersonal, "scan_added", "alice", true},
		{"filter matches but owner does not", filteredPersonal, "scan_added", "", false},
		{"owner matches but filter does not", filteredPersonal, "test_added", "alice", false},
	}
	for _, tc := range cases {
		if got := tc.r.Matches(tc.event, tc.recipient); got != tc.want {
			t.Errorf("%s: Matches(%q, %q) = %v, want %v", tc.name, tc.event, tc.recipient, got, tc.want)
		}
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s                  statekv.Status
		valid, deliverable bool
	}{
		{statekv.StatusActive, true, true},
		{statekv.StatusActiveTmp, true, true},
		{statekv.StatusInactiveTmp, true, false},
		{statekv.StatusInactivePermanent, true, false},
		{"", false, false},
		{"paused", false, false},
	} {
		if tc.s.Valid() != tc.valid || tc.s.Deliverable() != tc.deliverable {
			t.Errorf("%q: Valid %v Deliverable %v, want %v %v", tc.s, tc.s.Valid(), tc.s.Deliverable(), tc.valid, tc.deliverable)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add("sec-alerts", []byte(fullJSON))
	f.Add("ops", []byte(minimalJSON))
	f.Add("ops", []byte(`{"name":"Ops","url":"https://ops.example.com/hook","status":"active","team":"<sec & ops>","n":1e400,"x":{"y":[null,true,"\u2028"]}}`))
	f.Add("a_b-9", []byte(`{"name":"N","url":"https://x.example","status":"inactive_tmp","first_error":"2025-03-14T13:00:00.123456789+01:00","last_error":"2025-03-14T12:00:00.0005Z","events":null,"owner":""}`))
	f.Add("ep", []byte(`{"name":"N","url":"https://x.example","status":"active_tmp","first_error":"9999-12-31T23:30:00-01:00"}`))
	f.Add("ep", []byte(`{"name":"N","url":"https://x.example","status":"active_tmp","last_error":"0000-01-01T00:30:00+01:00"}`))
	f.Add("ep", []byte(`{"name":"N","url":"https://x.example","status":"active","note":"\xff\xfe invalid UTF-8","\xffkey":"\xff"}`))
	f.Add("ep", []byte(`{"name":"N","url":"https://x.example","status":"active","name":"twice"}`))
	f.Add("ep", []byte(`{"name":"N","url":"https://x.example","status":"active"}}`))
	f.Add("ep", []byte(`{"name":"N","url":"ftp://x.example","status":"active"}`))
	f.Add("ep", []byte(`{"name":"N","url":"https://x.example","status":"active","header_value":"s3cret"}`))
	f.Add("ep", []byte(`{"name":"N","url":"https://x.example","status":5,"events":"x"}`))
	f.Add("ep", []byte(`{"name":"N","url":"https://x.example","status":"active","html":"`+strings.Repeat("<&>", 20000)+`"}`))
	f.Add("Bad.ID", []byte(minimalJSON))
	f.Add("ep", []byte(`null`))
	f.Add("ep", []byte(`[]`))
	f.Add("ep", []byte(``))
	f.Fuzz(func(t *testing.T, id string, data []byte) {
		r, err := statekv.ParseRecord(id, data)
		if err != nil {
			if !errors.Is(err, statekv.ErrInvalidRecord) {
				t.Fatalf("error %q does not wrap ErrInvalidRecord", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("parsed record does not validate: %v", err)
		}
		out, err := r.MarshalJSON() // what the store writes
		if err != nil {
			t.Fatalf("parsed record does not marshal: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("MarshalJSON wrote invalid JSON: %q", out)
		}
		back, err := statekv.ParseRecord(id, out)
		if err != nil {
			t.Fatalf("re-marshalled record does not parse: %v\ninput:  %q\noutput: %q", err, data, out)
		}
		if d := diffRecords(back, r); d != "" {
			t.Fatalf("re-parsed record differs: %s\ninput:  %q\noutput: %q", d, data, out)
		}
		again, err := back.MarshalJSON()
		if err != nil || string(again) != string(out) {
			t.Fatalf("second rewrite differs (err %v):\n%q\n%q", err, out, again)
		}
	})
}

// TestRecordRulesAreTheClients: a record validates exactly when the delivery
// client accepts its URL, header and secret (the rules are delivery's).
func TestRecordRulesAreTheClients(t *testing.T) {
	t.Parallel()
	secret := delivery.SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, delivery.MinSecretBytes))
	short := delivery.SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, delivery.MinSecretBytes-1))
	for _, u := range []string{"https://x.example/h", "http://10.0.0.1:8080/", "https://:8443/h", "ftp://x/", "x.example/h", "http://", "::", "http://u:pw@x/"} {
		_, clientErr := delivery.ParseURL(u)
		recErr := statekv.Record{ID: "ep", Name: "ep", URL: u, Status: statekv.StatusActive}.Validate()
		if (clientErr == nil) != (recErr == nil) {
			t.Errorf("url %q: client says %v, record says %v", u, clientErr, recErr)
		}
	}
	for _, h := range []struct{ name, value string }{{"Authorization", "Bearer x"}, {"X Auth", "x"}, {"X-Auth", "a\tb"}, {"X-Auth", "a\x01b"}, {"X-Auth", "a\x7fb"}, {"X-Auth", "a\nb"}} {
		clientOK := delivery.ValidHeaderName(h.name) && delivery.ValidHeaderValue(h.value)
		recErr := statekv.Record{ID: "ep", Name: "ep", URL: "https://x.example/h", HeaderName: h.name, HeaderValue: h.value, Status: statekv.StatusActive}.Validate()
		if clientOK != (recErr == nil) {
			t.Errorf("header %q: %q: client accepts %v, record says %v", h.name, h.value, clientOK, recErr)
		}
	}
	for _, s := range []string{secret, short, "whsec_", "secret"} {
		_, clientErr := delivery.ParseSecret(s)
		recErr := statekv.Record{ID: "ep", Name: "ep", URL: "https://x.example/h", Secret: s, Status: statekv.StatusActive}.Validate()
		if (clientErr == nil) != (recErr == nil) {
			t.Errorf("secret: client says %v, record says %v", clientErr, recErr)
		}
	}
}

// TestCheckTimesRefusesFutureTimes: each time field may be ahead of now by the
// clock-skew allowance (plus, for retry_after and previous_secret_until, the
// longest hold and overlap the code writes), never more.
func TestCheckTimesRefusesFutureTimes(t *testing.T) {
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	skew := statekv.MaxClockSkew
	for _, c := range []struct {
		field string
		ahead time.Duration // the most that is accepted
		set   func(*statekv.Record, time.Time)
	}{
		{"created_at", skew, func(r *statekv.Record, t time.Time) { r.CreatedAt = t }},
		{"first_error", skew, func(r *statekv.Record, t time.Time) { r.FirstError = t }},
		{"last_error", skew, func(r *statekv.Record, t time.Time) { r.LastError = t }},
		{"deliver_from", skew, func(r *statekv.Record, t time.Time) { r.DeliverFrom = t }},
		{"retry_after", statekv.MaxRetryAfterLimit + skew, func(r *statekv.Record, t time.Time) { r.RetryAfter = t }},
		{"previous_secret_until", statekv.MaxSecretOverlap + skew, func(r *statekv.Record, t time.Time) { r.PreviousSecretUntil = t }},
	} {
		ok := validRecord("ep")
		c.set(&ok, now.Add(c.ahead))
		if err := ok.CheckTimes(now); err != nil {
			t.Errorf("%s %s ahead: %v", c.field, c.ahead, err)
		}
		for _, bad := range []time.Time{now.Add(c.ahead + time.Second), time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)} {
			r := validRecord("ep")
			c.set(&r, bad)
			err := r.CheckTimes(now)
			if !errors.Is(err, statekv.ErrInvalidRecord) || !strings.Contains(err.Error(), c.field) {
				t.Errorf("%s = %s: %v, want an invalid-record error naming the field", c.field, bad, err)
			}
			data, _ := r.MarshalJSON()
			if _, err := statekv.ParseRecordAt("ep", data, now); !errors.Is(err, statekv.ErrInvalidRecord) {
				t.Errorf("ParseRecordAt with %s = %s: %v", c.field, bad, err)
			}
		}
	}
}
