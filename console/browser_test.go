package console_test

// Browser tests: Debian's chromium, headless, driven by chromedp. One browser
// serves every test of this file (a tab each). They skip when chromium cannot
// be started, unless CI is set: there they fail.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Browser limits.
const (
	// browserStartTimeout bounds the start of chromium.
	browserStartTimeout = 30 * time.Second
	// tabTimeout bounds one test's browser work.
	tabTimeout = 45 * time.Second
	// viewportWidth and viewportHeight are the window of every tab: a laptop screen.
	viewportWidth, viewportHeight = 1280, 800
)

// browser is the one chromium of this file, started by the first test that needs it.
var browser struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if browser.cancel != nil {
		browser.cancel()
	}
	os.Exit(code)
}

// chromiumPath finds the browser: Debian's chromium first.
func chromiumPath() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium, chromium-browser or google-chrome in PATH")
}

func startBrowser() {
	path, err := chromiumPath()
	if err != nil {
		browser.err = err
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(viewportWidth, viewportHeight), chromedp.Flag("hide-scrollbars", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	// The first Do's context owns the browser: no timeout on it, a timer instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err = <-started:
	case <-time.After(browserStartTimeout):
		err = fmt.Errorf("not started within %s", browserStartTimeout)
	}
	if err != nil {
		cancelCtx()
		cancelAlloc()
		browser.err = fmt.Errorf("start %s: %w", path, err)
		return
	}
	browser.ctx = ctx
	browser.cancel = func() { cancelCtx(); cancelAlloc() }
}

// tab is one browser tab of a test, watching for dialogs and script errors.
type tab struct {
	ctx     context.Context
	dialogs atomic.Int32
	mu      sync.Mutex
	errs    []string
}

// newTab opens a tab in the shared browser, or skips the test (fails it when
// CI is set) when chromium cannot be started.
func newTab(t *testing.T) *tab {
	t.Helper()
	browser.once.Do(startBrowser)
	if browser.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium cannot be started, and CI is set: %v", browser.err)
		}
		t.Skipf("skipped: chromium cannot be started (%v); install Debian's chromium (apt-get install chromium) to run the browser tests", browser.err)
	}
	tb := &tab{}
	dialogs := make(chan struct{}, 16)
	ctx, cancel := chromedp.NewContext(browser.ctx, chromedp.WithListener(func(ev any) {
		switch ev := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			tb.dialogs.Add(1)
			select {
			case dialogs <- struct{}{}:
			default:
			}
		case *runtime.EventExceptionThrown:
			tb.mu.Lock()
			tb.errs = append(tb.errs, fmt.Sprintf("%s at %s:%d", ev.ExceptionDetails.Text, ev.ExceptionDetails.URL, ev.ExceptionDetails.LineNumber))
			tb.mu.Unlock()
		}
	}))
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(viewportWidth, viewportHeight)); err != nil {
		cancel()
		t.Fatalf("open a tab: %v", err)
	}
	tctx, cancelT := context.WithTimeout(ctx, tabTimeout)
	tb.ctx = tctx
	// A dialog blocks the page: dismiss it (the test fails on the count).
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-tctx.Done():
				return
			case <-dialogs:
				_, _ = chromedp.Call(tctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			}
		}
	})
	t.Cleanup(func() {
		cancelT()
		wg.Wait()
		cancel()
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, e := range tb.errs {
			t.Errorf("script error in the page: %s", e)
		}
	})
	return tb
}

// do runs browser actions, failing the test on an error.
func (tb *tab) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// load runs an action that navigates (a click on a link or a button) and waits for the new page's load.
func (tb *tab) load(t *testing.T, what string, trigger chromedp.Action[chromedp.Void]) {
	t.Helper()
	if _, err := chromedp.Run(tb.ctx, chromedp.WaitEvent(page.LoadEventFired, nil, trigger)); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// bodyText is the page's text, for failure messages.
func bodyText(t *testing.T, tb *tab) string {
	t.Helper()
	return get(t, tb, "body text", chromedp.Evaluate[string](`document.body.innerText`))
}

// get runs one browser action that reads a value, failing the test on an error.
func get[T any](t *testing.T, tb *tab, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(tb.ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshot saves the viewport as name.png under the test's temp dir, checks
// that it is not blank, and writes it to docs/doc too when UPDATE_SCREENSHOTS is
// set and doc is not empty.
func (tb *tab) screenshot(t *testing.T, name, doc string) {
	t.Helper()
	buf := get(t, tb, "screenshot "+name, chromedp.CaptureScreenshot())
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	colours, inked := inkOf(img)
	if colours < 8 || inked < 0.01 {
		t.Errorf("screenshot %s looks blank: %d colours, %.1f%% of the pixels not white", name, colours, 100*inked)
	}
	path := filepath.Join(t.TempDir(), name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s: %s (%d bytes, %d colours, %.0f%% inked)", name, path, len(buf), colours, 100*inked)
	if doc != "" && os.Getenv("UPDATE_SCREENSHOTS") != "" {
		if err := os.WriteFile(filepath.Join("..", "docs", doc), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// inkOf counts an image's distinct colours and the share of its pixels that are not white.
func inkOf(img image.Image) (colours int, inked float64) {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if r>>8 < 250 || g>>8 < 250 || bl>>8 < 250 {
				n++
			}
		}
	}
	return len(seen), float64(n) / float64(b.Dx()*b.Dy())
}

// idsJS reads the endpoint ids of the list's rows, in order.
const idsJS = `Array.from(document.querySelectorAll('#rows tr td:nth-child(2) code')).map(c => c.textContent)`

func TestBrowserListFilterPageActivate(t *testing.T) {
	sc, base := startSidecar(t, "")
	seed(t, sc, 120, receiver(t, http.StatusOK))
	tb := newTab(t)

	tb.do(t, "open /ui/", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("rows")))
	loc := get(t, tb, "location", chromedp.Location())
	ids := get(t, tb, "rows", chromedp.Evaluate[[]string](idsJS))
	if loc != base+"/ui/endpoints" || len(ids) != 50 || ids[0] != "ep-001" {
		t.Fatalf("/ui/ went to %s with %d rows from %v; want /ui/endpoints with ep-001 to ep-050", loc, len(ids), ids)
	}
	if !get(t, tb, "live toggle", chromedp.Evaluate[bool](`!document.querySelector('.live').hidden`)) {
		t.Error("the live-refresh toggle is hidden: console.js did not run under the CSP")
	}
	tb.screenshot(t, "endpoints", "console-endpoints.png")

	// Filter with the form: the filter goes into the URL, and only those endpoints are listed.
	tb.do(t, "choose a status", chromedp.SetValue(chromedp.ID("f-status"), "inactive_permanent"))
	tb.load(t, "apply the filter", chromedp.Click(chromedp.CSS(".filters button[type=submit]")))
	loc = get(t, tb, "location", chromedp.Location())
	ids = get(t, tb, "rows", chromedp.Evaluate[[]string](idsJS))
	statuses := get(t, tb, "badges", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#rows .badge')).map(b => b.textContent)`))
	if !strings.Contains(loc, "status=inactive_permanent") || len(ids) != 30 {
		t.Fatalf("after the filter: %s with %d rows, want status=inactive_permanent in the URL and 30 rows", loc, len(ids))
	}
	for i, s := range statuses {
		if s != "inactive_permanent" {
			t.Errorf("row %s is %s", ids[i], s)
		}
	}

	// Page 2 of the whole list at 50 a page: endpoints 51 to 100 of the id order.
	tb.do(t, "open the list", chromedp.Navigate(base+"/ui/endpoints"), chromedp.WaitVisible(chromedp.ID("rows")))
	tb.load(t, "page 2", chromedp.Click(chromedp.CSS(`nav.pager a[aria-label="Page 2"]`)))
	loc = get(t, tb, "location", chromedp.Location())
	ids = get(t, tb, "rows", chromedp.Evaluate[[]string](idsJS))
	if !strings.HasSuffix(loc, "/ui/endpoints?page=2") || len(ids) != 50 || ids[0] != "ep-051" || ids[49] != "ep-100" {
		t.Fatalf("page 2: %s with %d rows from %v, want ep-051 to ep-100", loc, len(ids), ids)
	}

	// Open one (ep-052 is inactive_permanent), activate it, see the state change.
	tb.load(t, "open ep-052", chromedp.Click(chromedp.CSS(`a[href="/ui/endpoints/ep-052"]`)))
	if status := get(t, tb, "status", chromedp.Text(chromedp.CSS(".status-line .badge"))); status != "inactive_permanent" {
		t.Fatalf("ep-052 shows %q, want inactive_permanent", status)
	}
	tb.load(t, "activate ep-052", chromedp.Click(chromedp.ID("activate")))
	flash := get(t, tb, "flash", chromedp.Text(chromedp.CSS("p.flash")))
	status := get(t, tb, "status", chromedp.Text(chromedp.CSS(".status-line .badge")))
	if !strings.Contains(flash, "Activated") || status != "active" {
		t.Fatalf("after Activate: flash %q, status %q; want Activated and active", flash, status)
	}
	timeline := get(t, tb, "timeline", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('ol.timeline .cause')).map(c => c.textContent)`))
	if len(timeline) < 2 || timeline[0] != "user:activate" {
		t.Errorf("the state history shows %v, want user:activate first", timeline)
	}
	if n := get(t, tb, "attempts", chromedp.Evaluate[int](`document.querySelectorAll('table.attempts tbody tr').length`)); n == 0 {
		t.Error("the attempt log shows no attempt after the activation's ping")
	}
	tb.screenshot(t, "endpoint", "console-endpoint.png")

	for _, p := range []struct{ name, path, ready string }{
		{"overview", "/ui/overview", `svg.chart`},
		{"add", "/ui/endpoints/new", `#n-id`},
		{"events", "/ui/events?webhook_id=none", `#e-id`},
	} {
		tb.do(t, "open "+p.name, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.ready)))
		tb.screenshot(t, p.name, "")
	}
}

func TestBrowserLogin(t *testing.T) {
	sc, base := startSidecar(t, token)
	seed(t, sc, 3, receiver(t, http.StatusOK))
	tb := newTab(t)
	tb.do(t, "open the list", chromedp.Navigate(base+"/ui/endpoints"), chromedp.WaitVisible(chromedp.ID("token")))
	if loc := get(t, tb, "location", chromedp.Location()); !strings.HasPrefix(loc, base+"/ui/login") {
		t.Fatalf("without a session the list went to %s, want the login form", loc)
	}
	tb.screenshot(t, "login", "")
	tb.do(t, "type the token", chromedp.SendKeys(chromedp.ID("token"), token))
	tb.load(t, "log in", chromedp.Click(chromedp.CSS(".login button[type=submit]")))
	loc := get(t, tb, "location", chromedp.Location())
	ids := get(t, tb, "rows", chromedp.Evaluate[[]string](idsJS))
	if loc != base+"/ui/endpoints" || len(ids) != 3 {
		t.Fatalf("after the login: %s with %v, want the list of 3; the page says:\n%s", loc, ids, bodyText(t, tb))
	}
	if get(t, tb, "document.cookie", chromedp.Evaluate[bool](`document.cookie.includes('dojo_webhooks_console')`)) {
		t.Error("the session cookie is readable from script (not HttpOnly)")
	}
}

func TestBrowserXSSProbeInert(t *testing.T) {
	sc, base := startSidecar(t, "")
	addXSS(t, sc, receiver(t, http.StatusOK))
	tb := newTab(t)
	const injectedJS = `document.querySelectorAll('main script, main img').length`
	tb.do(t, "open the list", chromedp.Navigate(base+"/ui/endpoints"), chromedp.WaitVisible(chromedp.ID("rows")))
	name := get(t, tb, "name", chromedp.Text(chromedp.CSS("#rows td a")))
	note := get(t, tb, "note", chromedp.Text(chromedp.CSS("#rows td.note")))
	if name != xssName || note != xssNote {
		t.Errorf("the list shows name %q and note %q, want them literally", name, note)
	}
	if n := get(t, tb, "injected", chromedp.Evaluate[int](injectedJS)); n != 0 {
		t.Errorf("%d script or img elements came from the values", n)
	}
	tb.screenshot(t, "xss-list", "")
	tb.do(t, "open the endpoint", chromedp.Navigate(base+"/ui/endpoints/xss"), chromedp.WaitVisible(chromedp.ID("activate")))
	title := get(t, tb, "title", chromedp.Text(chromedp.CSS("h1")))
	if n := get(t, tb, "injected", chromedp.Evaluate[int](injectedJS)); title != xssName+" (xss)" || n != 0 {
		t.Errorf("the endpoint page's title is %q with %d injected elements", title, n)
	}
	tb.screenshot(t, "xss-endpoint", "")
	if n := tb.dialogs.Load(); n != 0 {
		t.Errorf("%d dialogs opened: a value ran as script", n)
	}
}
