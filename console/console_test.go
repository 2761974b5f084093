package console_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"
	"github.com/dojo-webhooks/dojo-webhooks/console"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

const token = "t0ken-for-the-console-test"

func TestRootRedirectsToTheList(t *testing.T) {
	_, base := startSidecar(t, "")
	c := client(t)
	if r := do(t, c, "GET", base+"/ui/", nil, nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/endpoints" {
		t.Errorf("GET /ui/: %d to %q, want 303 to /ui/endpoints", r.status, r.header.Get("Location"))
	}
	if r := do(t, c, "GET", base+"/ui", nil, nil); r.status/100 != 3 || r.header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d to %q, want a redirect to /ui/", r.status, r.header.Get("Location"))
	}
	if r := do(t, c, "GET", base+"/ui/endpoints", nil, nil); r.status != http.StatusOK {
		t.Errorf("GET /ui/endpoints on loopback without a token: %d, want 200", r.status)
	}
}

func TestLoginWithTheToken(t *testing.T) {
	_, base := startSidecar(t, token)
	c := client(t)
	r := do(t, c, "GET", base+"/ui/endpoints?status=active", nil, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/login?next="+url.QueryEscape("/ui/endpoints?status=active") {
		t.Fatalf("GET without a session: %d to %q, want 303 to the login form", r.status, r.header.Get("Location"))
	}
	if r := do(t, c, "POST", base+"/ui/endpoints/x/activate", url.Values{"csrf": {"x"}}, nil); r.status != http.StatusSeeOther ||
		!strings.HasPrefix(r.header.Get("Location"), "/ui/login") {
		t.Errorf("POST without a session: %d to %q, want 303 to the login form", r.status, r.header.Get("Location"))
	}
	if r := do(t, c, "GET", base+"/ui/login", nil, nil); r.status != http.StatusOK || !strings.Contains(r.body, `name="token"`) {
		t.Fatalf("GET /ui/login: %d, no token field:\n%s", r.status, r.body)
	}
	// A forged cookie holding the token itself is not a session.
	forged := do(t, client(t), "GET", base+"/ui/endpoints", nil, map[string]string{"Cookie": console.SessionCookie + "=" + token})
	if forged.status != http.StatusSeeOther {
		t.Errorf("cookie holding the raw token: %d, want 303 to the login form", forged.status)
	}
	if r := do(t, c, "POST", base+"/ui/login", url.Values{"token": {"wrong"}, "next": {"/ui/overview"}}, nil); r.status != http.StatusUnauthorized ||
		!strings.Contains(r.body, "Wrong token") || r.header.Get("Set-Cookie") != "" {
		t.Errorf("wrong token: %d, Set-Cookie %q, want 401 and no cookie", r.status, r.header.Get("Set-Cookie"))
	}
	r = do(t, c, "POST", base+"/ui/login", url.Values{"token": {token}, "next": {"/ui/overview"}}, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/overview" {
		t.Fatalf("right token: %d to %q, want 303 to /ui/overview", r.status, r.header.Get("Location"))
	}
	ck := r.header.Get("Set-Cookie")
	for _, want := range []string{console.SessionCookie + "=", "HttpOnly", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(ck, want) {
			t.Errorf("session cookie %q lacks %s", ck, want)
		}
	}
	if strings.Contains(ck, token) {
		t.Errorf("the session cookie holds the token: %q", ck)
	}
	if r := do(t, c, "GET", base+"/ui/overview", nil, nil); r.status != http.StatusOK || !strings.Contains(r.body, "Log out") {
		t.Errorf("GET with the session: %d, want 200 with a logout button", r.status)
	}
	// The API's bearer header opens the console too (reading).
	if r := do(t, client(t), "GET", base+"/ui/endpoints", nil, map[string]string{"Authorization": "Bearer " + token}); r.status != http.StatusOK {
		t.Errorf("GET with the bearer token: %d, want 200", r.status)
	}
	// An open redirect through next is refused.
	r = do(t, client(t), "POST", base+"/ui/login", url.Values{"token": {token}, "next": {"//evil.example/ui/"}}, nil)
	if r.header.Get("Location") != "/ui/endpoints" {
		t.Errorf("next=//evil.example: redirected to %q, want /ui/endpoints", r.header.Get("Location"))
	}
	// Logging out clears the cookie.
	page := do(t, c, "GET", base+"/ui/endpoints", nil, nil)
	if r := do(t, c, "POST", base+"/ui/logout", url.Values{"csrf": {csrfOf(t, page.body)}}, nil); r.status != http.StatusSeeOther {
		t.Errorf("logout: %d, want 303", r.status)
	}
	if r := do(t, c, "GET", base+"/ui/endpoints", nil, nil); r.status != http.StatusSeeOther {
		t.Errorf("GET after the logout: %d, want 303 to the login form", r.status)
	}
}

func TestSecurityHeaders(t *testing.T) {
	_, base := startSidecar(t, token)
	for _, path := range []string{"/ui/login", "/ui/endpoints", "/ui/static/console.css", "/ui/nothing-here"} {
		r := do(t, client(t), "GET", base+path, nil, nil)
		policy := r.header.Get("Content-Security-Policy")
		if !strings.Contains(policy, "script-src 'self'") || strings.Contains(policy, "unsafe-inline") ||
			!strings.Contains(policy, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy %q, want script-src 'self' without 'unsafe-inline'", path, policy)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no X-Content-Type-Options: nosniff", path)
		}
	}
	if r := do(t, client(t), "GET", base+"/ui/static/console.js", nil, nil); r.status != http.StatusOK ||
		!strings.Contains(r.header.Get("Content-Type"), "javascript") {
		t.Errorf("console.js: %d, %s", r.status, r.header.Get("Content-Type"))
	}
}

// TestCSRFRefused: a form that changes something is refused without its
// session's token, with another session's, or from another origin; the state stays.
func TestCSRFRefused(t *testing.T) {
	sc, base := startSidecar(t, "")
	seed(t, sc, 4, receiver(t, http.StatusOK))
	const id = "ep-004" // inactive_permanent
	c := client(t)
	page := do(t, c, "GET", base+"/ui/endpoints/"+id, nil, nil)
	if page.status != http.StatusOK {
		t.Fatalf("GET the endpoint: %d", page.status)
	}
	tok := csrfOf(t, page.body)
	other := csrfOf(t, do(t, client(t), "GET", base+"/ui/endpoints/"+id, nil, nil).body)
	if other == tok {
		t.Fatal("two sessions share a CSRF token")
	}
	activate := base + "/ui/endpoints/" + id + "/activate"
	for name, tc := range map[string]struct {
		form url.Values
		hdr  map[string]string
	}{
		"no token":                {url.Values{}, nil},
		"a wrong token":           {url.Values{"csrf": {strings.Repeat("0", len(tok))}}, nil},
		"another session's token": {url.Values{"csrf": {other}}, nil},
		"another origin":          {url.Values{"csrf": {tok}}, map[string]string{"Origin": "http://evil.example"}},
	} {
		if r := do(t, c, "POST", activate, tc.form, tc.hdr); r.status != http.StatusForbidden || !strings.Contains(r.body, "CSRF") {
			t.Errorf("activate with %s: %d, want 403", name, r.status)
		}
	}
	if e, err := sc.Store().Get(context.Background(), id); err != nil || e.Record.Status != statekv.StatusInactivePermanent {
		t.Fatalf("after the refused forms: %v, %v; want still inactive_permanent", e.Record.Status, err)
	}
	r := do(t, c, "POST", activate, url.Values{"csrf": {tok}}, map[string]string{"Origin": base})
	if r.status != http.StatusSeeOther {
		t.Fatalf("activate with the token: %d\n%s", r.status, r.body)
	}
	if e, _ := sc.Store().Get(context.Background(), id); e.Record.Status != statekv.StatusActive {
		t.Errorf("after the activation: %s, want active", e.Record.Status)
	}
	if r := do(t, c, "GET", base+"/ui/endpoints/"+id, nil, nil); !strings.Contains(r.body, "Activated") ||
		!strings.Contains(r.body, `<span class="badge badge-active">active</span>`) {
		t.Errorf("the endpoint page after the activation shows neither the outcome nor the state:\n%s", r.body)
	}
}

// TestValuesEscaped: a name, note and owner holding markup are written as text on every page.
func TestValuesEscaped(t *testing.T) {
	sc, base := startSidecar(t, "")
	addXSS(t, sc, receiver(t, http.StatusOK))
	c := client(t)
	for _, path := range []string{"/ui/endpoints", "/ui/endpoints/xss", "/ui/endpoints/xss/remove", "/ui/endpoints?q=" + url.QueryEscape(xssName),
		"/ui/events?webhook_id=" + url.QueryEscape(xssName), "/ui/overview"} {
		r := do(t, c, "GET", base+path, nil, nil)
		if r.status != http.StatusOK {
			t.Errorf("%s: %d", path, r.status)
		}
		if strings.Contains(r.body, "<script>alert") || strings.Contains(r.body, "<img src=x") {
			t.Errorf("%s: markup from a value is in the page unescaped", path)
		}
	}
	r := do(t, c, "GET", base+"/ui/endpoints/xss", nil, nil)
	for _, want := range []string{"&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;", "&lt;img src=x onerror=alert(&#34;note&#34;)&gt;"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the endpoint page lacks the escaped value %s", want)
		}
	}
}

var rowPattern = regexp.MustCompile(`<td><code>(ep-\d+)</code></td>`)

// rows are the endpoint ids of a list page, in order.
func rows(body string) []string {
	var ids []string
	for _, m := range rowPattern.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func TestListFiltersAndPages(t *testing.T) {
	sc, base := startSidecar(t, "")
	seed(t, sc, 120, receiver(t, http.StatusOK))
	c := client(t)
	r := do(t, c, "GET", base+"/ui/endpoints?status=inactive_permanent", nil, nil)
	got := rows(r.body)
	if len(got) != 30 {
		t.Fatalf("status=inactive_permanent: %d rows, want 30", len(got))
	}
	for _, id := range got {
		if e, _ := sc.Store().Get(context.Background(), id); e.Record.Status != statekv.StatusInactivePermanent {
			t.Errorf("status=inactive_permanent lists %s, which is %s", id, e.Record.Status)
		}
	}
	r = do(t, c, "GET", base+"/ui/endpoints?page=2", nil, nil)
	if got := rows(r.body); len(got) != 50 || got[0] != "ep-051" || got[49] != "ep-100" {
		t.Errorf("page 2 at 50: %d rows from %v, want ep-051 to ep-100", len(got), got)
	}
	if !strings.Contains(r.body, "Endpoints 51–100 of 120") {
		t.Errorf("page 2: no summary 51–100 of 120")
	}
	r = do(t, c, "GET", base+"/ui/endpoints?owner=bob&size=25&sort=name&q=endpoint+0", nil, nil)
	if got := rows(r.body); len(got) != 25 || got[0] != "ep-002" {
		t.Errorf("owner=bob size=25: %d rows from %v", len(got), got)
	}
	if !strings.Contains(r.body, `href="/ui/endpoints?owner=bob&amp;page=2&amp;q=endpoint&#43;0&amp;size=25&amp;sort=name"`) {
		t.Errorf("the pager's link to page 2 does not keep the filters")
	}
	if r := do(t, c, "GET", base+"/ui/endpoints?status=bogus", nil, nil); r.status != http.StatusBadRequest {
		t.Errorf("status=bogus: %d, want 400", r.status)
	}
}

// TestAddRefusalKeepsTheForm: an add whose ping fails shows why, with the form filled in; one that answers 2xx is stored.
func TestAddRefusalKeepsTheForm(t *testing.T) {
	sc, base := startSidecar(t, "")
	c := client(t)
	tok := csrfOf(t, do(t, c, "GET", base+"/ui/endpoints/new", nil, nil).body)
	failing := receiver(t, http.StatusInternalServerError)
	form := url.Values{"csrf": {tok}, "id": {"jira"}, "name": {"Jira bridge"}, "url": {failing + "/hook"}, "owner": {"alice"}, "events": {"product_added, test_added"}}
	r := do(t, c, "POST", base+"/ui/endpoints/new", form, nil)
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "Not added") || !strings.Contains(r.body, "500") {
		t.Errorf("add with a failing ping: %d\n%s", r.status, r.body)
	}
	for _, v := range []string{`value="jira"`, `value="Jira bridge"`, `value="alice"`, `value="product_added, test_added"`} {
		if !strings.Contains(r.body, v) {
			t.Errorf("the refused form lost %s", v)
		}
	}
	if _, err := sc.Store().Get(context.Background(), "jira"); err == nil {
		t.Error("a refused add stored the endpoint")
	}
	form.Set("url", receiver(t, http.StatusOK)+"/hook")
	form.Set("secret", "auto")
	r = do(t, c, "POST", base+"/ui/endpoints/new", form, nil)
	if r.status != http.StatusCreated || !strings.Contains(r.body, "whsec_") {
		t.Fatalf("add with a 2xx ping: %d, want 201 with the new secret\n%s", r.status, r.body)
	}
	e, err := sc.Store().Get(context.Background(), "jira")
	if err != nil || e.Record.Status != statekv.StatusActive || e.Record.Owner != "alice" || len(e.Record.Events) != 2 || e.Record.Secret == "" {
		t.Errorf("stored: %+v, %v", e.Record, err)
	}
	if r := do(t, c, "GET", base+"/ui/endpoints/jira", nil, nil); strings.Contains(r.body, e.Record.Secret) {
		t.Error("the endpoint page shows the signing secret")
	}
}

// TestActions runs every button of the endpoint page through its form.
func TestActions(t *testing.T) {
	sc, base := startSidecar(t, "")
	seed(t, sc, 1, receiver(t, http.StatusOK))
	const id = "ep-001"
	c := client(t)
	page := base + "/ui/endpoints/" + id
	post := func(action string, form url.Values) response {
		t.Helper()
		form.Set("csrf", csrfOf(t, do(t, c, "GET", page, nil, nil).body))
		return do(t, c, "POST", page+"/"+action, form, nil)
	}
	for _, tc := range []struct {
		action string
		form   url.Values
		want   string
	}{
		{"ping", url.Values{}, "Ping answered 200"},
		{"deactivate", url.Values{"note": {"maintenance <b>window</b>"}}, "Deactivated"},
		{"skip", url.Values{}, "Skipped 0 waiting events"},
		{"replay", url.Values{}, "Replayed 0 dead letters"},
		{"replay-since", url.Values{"since": {"1h"}}, "Replayed 0 events published since"},
		{"replay-since", url.Values{"since": {"yesterday"}}, "neither an RFC 3339 time nor a positive duration"},
	} {
		if r := post(tc.action, tc.form); r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/endpoints/"+id {
			t.Fatalf("%s: %d to %q, want 303 back to the endpoint", tc.action, r.status, r.header.Get("Location"))
		}
		if r := do(t, c, "GET", page, nil, nil); !strings.Contains(r.body, tc.want) {
			t.Errorf("after %s the page does not say %q", tc.action, tc.want)
		}
	}
	if e, _ := sc.Store().Get(context.Background(), id); e.Record.Status != statekv.StatusInactivePermanent || e.Record.Note != "maintenance <b>window</b>" {
		t.Errorf("after deactivate: %s %q", e.Record.Status, e.Record.Note)
	}
	r := post("rotate-secret", url.Values{})
	secret := regexp.MustCompile(`value="(whsec_[^"]+)"`).FindStringSubmatch(r.body)
	if r.status != http.StatusOK || secret == nil {
		t.Fatalf("rotate-secret: %d, no new secret shown\n%s", r.status, r.body)
	}
	if e, _ := sc.Store().Get(context.Background(), id); e.Record.Secret != html.UnescapeString(secret[1]) {
		t.Error("the shown secret is not the stored one")
	}
	if r := do(t, c, "GET", page, nil, nil); strings.Contains(r.body, secret[1]) {
		t.Error("the endpoint page shows the secret again")
	}
	if r := do(t, c, "GET", page+"/remove", nil, nil); !strings.Contains(r.body, `id="confirm-remove"`) {
		t.Fatalf("the remove step has no confirmation button:\n%s", r.body)
	}
	if r := post("remove", url.Values{}); r.status != http.StatusSeeOther {
		t.Fatalf("unconfirmed remove: %d", r.status)
	}
	if _, err := sc.Store().Get(context.Background(), id); err != nil {
		t.Fatalf("an unconfirmed remove removed the endpoint: %v", err)
	}
	if r := post("remove", url.Values{"confirm": {id}}); r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/endpoints" {
		t.Fatalf("confirmed remove: %d to %q", r.status, r.header.Get("Location"))
	}
	if _, err := sc.Store().Get(context.Background(), id); err == nil {
		t.Error("the confirmed remove kept the endpoint")
	}
	if r := do(t, c, "GET", base+"/ui/endpoints", nil, nil); !strings.Contains(r.body, "Endpoint ep-001 removed.") {
		t.Error("the list does not say the endpoint was removed")
	}
	if r := do(t, c, "GET", page, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("GET a removed endpoint: %d, want 404", r.status)
	}
}

// TestEventLookupAndOverview: an event delivered to an endpoint is found by its
// stream sequence and its webhook-id, and counted on the overview's chart.
func TestEventLookupAndOverview(t *testing.T) {
	sc, base := startSidecar(t, "")
	ctx := context.Background()
	if _, err := sc.Store().Create(ctx, statekv.Record{ID: "hook", Name: "hook", URL: receiver(t, http.StatusOK),
		Status: statekv.StatusActive, CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the watcher sees the endpoint", func() bool { _, ok := sc.Watcher().Get("hook"); return ok })
	msg := nats.NewMsg(sc.Names().EventSubject("finding_added"))
	msg.Header.Set(nats.MsgIdHdr, "evt-lookup-1")
	msg.Data = []byte(`{"title":"x"}`)
	ack, err := sc.JetStream().PublishMsg(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the delivery is in the attempt log", func() bool {
		recs, _ := attempts.ForWebhookID(ctx, sc.JetStream(), sc.Names(), "evt-lookup-1")
		return len(recs) > 0
	})
	c := client(t)
	r := do(t, c, "GET", base+"/ui/events?seq="+strconv.FormatUint(ack.Sequence, 10), nil, nil)
	for _, want := range []string{"evt-lookup-1", `href="/ui/endpoints/hook"`, "finding_added", "success"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the lookup by sequence lacks %s", want)
		}
	}
	if r := do(t, c, "GET", base+"/ui/events?seq=999", nil, nil); r.status != http.StatusNotFound {
		t.Errorf("an absent sequence: %d, want 404", r.status)
	}
	if r := do(t, c, "GET", base+"/ui/events?webhook_id=evt-lookup-1", nil, nil); !strings.Contains(r.body, `href="/ui/endpoints/hook"`) {
		t.Error("the lookup by webhook-id does not list the endpoint's attempt")
	}
	if r := do(t, c, "GET", base+"/ui/overview", nil, nil); !strings.Contains(r.body, "1 attempts, 0 failed") {
		t.Errorf("the overview does not count the delivery:\n%s", r.body)
	}
}
