package docs

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// TestRepositoryLinks checks that every relative link in README.md and docs/*.md
// names a file or directory inside the repository (a clone has nothing beside
// it), and that every #anchor names a heading of the Markdown file it points to.
func TestRepositoryLinks(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := append([]string{filepath.Join(root, "README.md")}, docs...)
	if !slices.Contains(files, filepath.Join(root, "docs", "architecture.md")) {
		t.Errorf("docs/architecture.md is missing: README.md links to it")
	}
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range checkLinks(root, file, string(src)) {
			t.Error(p)
		}
	}
}

// TestCheckLinks runs the checker on inline documents in a temporary repository
// that has a sibling directory, as the team's shared folder is beside a checkout.
func TestCheckLinks(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "repo")
	write := func(path, text string) {
		t.Helper()
		path = filepath.Join(base, path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("shared/DESIGN.md", "# Design\n") // exists, but outside the repository
	write("repo/go.mod", "module example\n")
	write("repo/deploy/nats-server.conf", "")
	write("repo/docs/architecture.md", "# Architecture\n\n## The state machine\n\n## Who writes what\n")
	readme := filepath.Join(root, "README.md")

	tests := []struct {
		name string
		doc  string
		bad  []string // the links reported, in order
	}{
		{"the team reference beside the checkout", "See [`../shared/DESIGN.md`](../shared/DESIGN.md) for the team.\n", []string{"../shared/DESIGN.md"}},
		{"an image outside", "![x](../shared/DESIGN.md)\n", []string{"../shared/DESIGN.md"}},
		{"a reference definition outside", "[design]: ../shared/DESIGN.md\n", []string{"../shared/DESIGN.md"}},
		{"an HTML link outside", `<a href="../shared/DESIGN.md">design</a>` + "\n", []string{"../shared/DESIGN.md"}},
		{"a root-relative link", "[conf](/deploy/nats-server.conf)\n", nil},
		{"a file and a directory inside", "[conf](deploy/nats-server.conf), [deploy](deploy/), [docs](./docs)\n", nil},
		{"a missing file", "[gone](docs/missing.md)\n", []string{"docs/missing.md"}},
		{"a path that leaves and comes back", "[a](../repo/docs/architecture.md)\n", nil},
		{"an anchor in the same file", "# Title\n\n## Quick start\n\n[go](#quick-start)\n", nil},
		{"a missing anchor", "## Quick start\n\n[go](#quickstart)\n", []string{"#quickstart"}},
		{"an anchor in another file", "[sm](docs/architecture.md#the-state-machine) [w](docs/architecture.md#who-writes-what)\n", nil},
		{"a missing anchor in another file", "[sm](docs/architecture.md#state-machine)\n", []string{"docs/architecture.md#state-machine"}},
		{"absolute URLs", "[dd](https://github.com/DefectDojo/django-DefectDojo) <https://example.com> [m](mailto:a@b.c)\n", nil},
		{"links in code are not links", "`[x](../shared/DESIGN.md)`\n\n```\n[x](../shared/DESIGN.md)\n# not a heading\n```\n\n[y](#not-a-heading)\n", []string{"#not-a-heading"}},
		{"a link with a title", `[a](docs/architecture.md "the architecture") [b](<../shared/DESIGN.md> "x")` + "\n", []string{"../shared/DESIGN.md"}},
		{"an escaped link", `\[x](../shared/DESIGN.md)` + "\n", nil},
		{"a heading anchor written by hand", "<a id=\"held\"></a>\n\n[h](#held)\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range checkLinks(root, readme, tt.doc) {
				got = append(got, p.link)
			}
			if !slices.Equal(got, tt.bad) {
				t.Errorf("reported %q, want %q", got, tt.bad)
			}
		})
	}

	// The reason says why, so that a failure can be fixed without reading this test.
	ps := checkLinks(root, readme, "[d](../shared/DESIGN.md)\n")
	if len(ps) != 1 || !strings.Contains(ps[0].Error(), "outside the repository") || !strings.Contains(ps[0].Error(), "README.md:1") {
		t.Errorf("got %v, want one problem at README.md:1 saying the link leaves the repository", ps)
	}
}

func TestSlug(t *testing.T) {
	tests := []struct{ heading, want string }{
		{"Quick start", "quick-start"},
		{"Beside DefectDojo: docker compose and the ingest bridge", "beside-defectdojo-docker-compose-and-the-ingest-bridge"},
		{"Delivery: order, retries, dead letters, replay", "delivery-order-retries-dead-letters-replay"},
		{"Verifying deliveries (signatures)", "verifying-deliveries-signatures"},
		{"HTTP: health, metrics, ingest", "http-health-metrics-ingest"},
		{"The held pause (year 2999)", "the-held-pause-year-2999"},
		{"`statekv`: records, `Transition`, `Store`, `Watcher`", "statekv-records-transition-store-watcher"},
		{"Subjects `<prefix>.events.<event>`", "subjects-prefixeventsevent"},
		{"**At-least-once** and [dedup](#x)", "at-least-once-and-dedup"},
		{"inactive_tmp → active_tmp", "inactive_tmp--active_tmp"},
		{"Ünïcode Wörds", "ünïcode-wörds"},
	}
	for _, tt := range tests {
		if got := slug(headingText(tt.heading)); got != tt.want {
			t.Errorf("slug(%q) = %q, want %q", tt.heading, got, tt.want)
		}
	}
	got := anchors("# A\n## A\n## A\n```\n## A\n```\n### A ##\n")
	for _, want := range []string{"a", "a-1", "a-2", "a-3"} {
		if !got[want] {
			t.Errorf("anchors: %q missing from %v", want, got)
		}
	}
	if got["a-4"] {
		t.Errorf("anchors: a heading in a code block counted: %v", got)
	}
}

// problem is one link that does not resolve.
type problem struct {
	file string
	line int
	link string
	why  string
}

func (p problem) Error() string {
	return fmt.Sprintf("%s:%d: link %q: %s", p.file, p.line, p.link, p.why)
}

var (
	// inlineLink matches [text](target "title") and images; group 1 is the target.
	inlineLink = regexp.MustCompile(`!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^<>\n]*>|[^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)(?:\s+(?:"[^"]*"|'[^']*'|\([^()]*\)))?\s*\)`)
	// refDefinition matches a link reference definition: [label]: target.
	refDefinition = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*(<[^<>]*>|\S+)`)
	// htmlLink matches href and src attributes of raw HTML.
	htmlLink = regexp.MustCompile(`\b(?:href|src)\s*=\s*"([^"]*)"`)
	// htmlAnchor matches an anchor written by hand: <a id="x"> or <a name="x">.
	htmlAnchor = regexp.MustCompile(`<a\s+(?:[^>]*\s)?(?:id|name)\s*=\s*"([^"]+)"`)
	// scheme starts an absolute URL (https:, mailto:).
	scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	// atxHeading matches "## Heading ##"; group 1 is the text.
	atxHeading = regexp.MustCompile(`^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	// htmlTag matches a tag in heading text, which GitHub's slug leaves out.
	htmlTag = regexp.MustCompile(`<[^<>]*>`)
	// mdLink matches a link or image in heading text; group 1 is its text.
	mdLink = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
)

// checkLinks returns the links of the Markdown document file (content src)
// that do not resolve inside the repository at root: a target outside root, a
// missing file, or an #anchor that no heading of the target Markdown file has.
// Absolute URLs are not checked, nor anything in code.
func checkLinks(root, file, src string) []problem {
	var out []problem
	rel, err := filepath.Rel(root, file)
	if err != nil {
		rel = file
	}
	own := anchors(src)
	for n, line := range proseLines(src) {
		if line == "" {
			continue
		}
		text := stripCode(line)
		var targets []string
		for _, m := range inlineLink.FindAllStringSubmatchIndex(text, -1) {
			if m[0] > 0 && text[m[0]-1] == '\\' {
				continue // \[not a link](…)
			}
			targets = append(targets, text[m[2]:m[3]])
		}
		if m := refDefinition.FindStringSubmatch(text); m != nil {
			targets = append(targets, m[1])
		}
		for _, m := range htmlLink.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
		for _, target := range targets {
			if why := resolve(root, file, own, target); why != "" {
				out = append(out, problem{file: rel, line: n + 1, link: strings.Trim(target, "<>"), why: why})
			}
		}
	}
	return out
}

// resolve says why target, linked from file, does not resolve ("" when it does).
func resolve(root, file string, own map[string]bool, target string) string {
	target = strings.Trim(target, "<>")
	if target == "" {
		return "empty link"
	}
	if scheme.MatchString(target) || strings.HasPrefix(target, "//") {
		return "" // an absolute URL: not this repository's business
	}
	path, frag, _ := strings.Cut(target, "#")
	path, _, _ = strings.Cut(path, "?")
	if path == "" {
		if !own[frag] {
			return fmt.Sprintf("no heading of this file has the anchor #%s", frag)
		}
		return ""
	}
	p, err := url.PathUnescape(path)
	if err != nil {
		return fmt.Sprintf("not a valid path: %v", err)
	}
	var abs string
	if strings.HasPrefix(p, "/") {
		abs = filepath.Join(root, filepath.FromSlash(p)) // GitHub resolves it from the repository root
	} else {
		abs = filepath.Join(filepath.Dir(file), filepath.FromSlash(p))
	}
	inside, err := filepath.Rel(root, abs)
	if err != nil || inside == ".." || strings.HasPrefix(inside, ".."+string(filepath.Separator)) {
		return "points outside the repository (a clone has nothing there): link a file inside it"
	}
	info, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Sprintf("%s does not exist in the repository", filepath.ToSlash(inside))
	}
	if err != nil {
		return err.Error()
	}
	if frag == "" || info.IsDir() || !strings.EqualFold(filepath.Ext(abs), ".md") {
		return "" // anchors of other files (GitHub's #L10) are not checked
	}
	src, err := os.ReadFile(abs)
	if err != nil {
		return err.Error()
	}
	if !anchors(string(src))[frag] {
		return fmt.Sprintf("no heading of %s has the anchor #%s", filepath.ToSlash(inside), frag)
	}
	return ""
}

// proseLines returns the lines of src with those inside fenced code blocks
// blanked, so that line numbers stay right.
func proseLines(src string) []string {
	lines := strings.Split(src, "\n")
	var fence string // the opening fence while inside a block
	for i, line := range lines {
		trimmed := strings.TrimLeft(line, " ")
		indent := len(line) - len(trimmed)
		marker := ""
		if indent <= 3 && (strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~")) {
			marker = trimmed[:len(trimmed)-len(strings.TrimLeft(trimmed, trimmed[:1]))]
		}
		switch {
		case fence == "" && marker != "":
			fence = marker
			lines[i] = ""
		case fence != "":
			if marker != "" && marker[0] == fence[0] && len(marker) >= len(fence) && strings.TrimSpace(trimmed[len(marker):]) == "" {
				fence = ""
			}
			lines[i] = ""
		}
	}
	return lines
}

// stripCode removes the inline code spans of a line (their text is not Markdown).
func stripCode(line string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(line, '`')
		if i < 0 {
			b.WriteString(line)
			return b.String()
		}
		run := len(line[i:]) - len(strings.TrimLeft(line[i:], "`"))
		end := closingRun(line[i+run:], run)
		if end < 0 {
			b.WriteString(line) // an unmatched run is literal text
			return b.String()
		}
		b.WriteString(line[:i])
		b.WriteByte(' ')
		line = line[i+run+end+run:]
	}
}

// closingRun returns the offset in s of the first run of exactly n backticks, or -1.
func closingRun(s string, n int) int {
	for off := 0; off < len(s); {
		i := strings.IndexByte(s[off:], '`')
		if i < 0 {
			return -1
		}
		start := off + i
		run := len(s[start:]) - len(strings.TrimLeft(s[start:], "`"))
		if run == n {
			return start
		}
		off = start + run
	}
	return -1
}

// anchors returns the anchors GitHub gives the headings of a Markdown document
// (duplicates get -1, -2, …), plus the ids of <a id="…"> written by hand.
func anchors(src string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range proseLines(src) {
		for _, m := range htmlAnchor.FindAllStringSubmatch(stripCode(line), -1) {
			out[m[1]] = true
		}
		m := atxHeading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		// As github-slugger does: a generated "a-1" is taken too.
		base := slug(headingText(m[1]))
		s := base
		for _, taken := seen[s]; taken; _, taken = seen[s] {
			seen[base]++
			s = fmt.Sprintf("%s-%d", base, seen[base])
		}
		seen[s] = 0
		out[s] = true
	}
	return out
}

// headingText is the text GitHub renders for a heading's source: code spans
// keep their content, links their text, tags and emphasis marks go.
func headingText(h string) string {
	var b strings.Builder
	for i, part := range strings.Split(h, "`") {
		if i%2 == 1 {
			b.WriteString(part) // inside a code span: literal
			continue
		}
		part = mdLink.ReplaceAllString(part, "$1")
		part = htmlTag.ReplaceAllString(part, "")
		b.WriteString(strings.ReplaceAll(part, "*", ""))
	}
	return b.String()
}

// slug is GitHub's anchor of a heading text: lower case, spaces as hyphens,
// every character but letters, digits, marks, hyphens and underscores dropped.
func slug(text string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(text)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
