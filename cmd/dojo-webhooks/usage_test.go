package main

import (
	"encoding/json"
	"flag"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
)

// TestUsageListsEveryCommandAndFlag: `help`, `endpoint` without a subcommand
// and each command's -h list every command and flag that is registered.
func TestUsageListsEveryCommandAndFlag(t *testing.T) {
	help := runCmd(t, nil, "", "help")
	group := runCmd(t, nil, "", "endpoint")
	if help.code != 0 || group.code != 2 {
		t.Fatalf("help: exit %d; endpoint: exit %d, want 0 and 2", help.code, group.code)
	}
	for _, cmd := range commands {
		var defined []string
		flagsOf(cmd).VisitAll(func(f *flag.Flag) { defined = append(defined, "--"+f.Name) })
		if !strings.Contains(help.stdout, "dojo-webhooks "+cmd.name) {
			t.Errorf("help does not list %q", cmd.name)
		}
		res := runCmd(t, nil, "", append(strings.Fields(cmd.name), "-h")...)
		if res.code != 0 || !strings.HasPrefix(res.stdout, "Usage: dojo-webhooks "+cmd.name) || !strings.Contains(res.stdout, cmd.summary) {
			t.Errorf("%s -h: exit %d, %q", cmd.name, res.code, res.stdout)
		}
		inGroup := strings.HasPrefix(cmd.name, "endpoint ")
		if inGroup && !strings.Contains(group.stderr, "dojo-webhooks "+cmd.name) {
			t.Errorf("`endpoint` does not list %q", cmd.name)
		}
		for _, f := range defined {
			if !strings.Contains(res.stdout, f) {
				t.Errorf("%s -h does not mention %s", cmd.name, f)
			}
			if !strings.Contains(help.stdout, f) {
				t.Errorf("help does not mention %s of %s", f, cmd.name)
			}
			if inGroup && !strings.Contains(group.stderr, f) {
				t.Errorf("`endpoint` does not mention %s of %s", f, cmd.name)
			}
		}
	}
	for _, name := range []string{"skip", "rotate-secret"} {
		if !strings.Contains(group.stderr, "endpoint "+name) {
			t.Errorf("`endpoint` does not list %s", name)
		}
	}
}

// TestUsageErrorsNameTheCommand: a usage error names the command as it is typed.
func TestUsageErrorsNameTheCommand(t *testing.T) {
	if res := runCmd(t, nil, "", "replay"); res.code != 2 || !strings.Contains(res.stderr, "replay: expected one endpoint id") || strings.Contains(res.stderr, "endpoint replay") {
		t.Errorf("replay without an id: exit %d, %q", res.code, res.stderr)
	}
	if res := runCmd(t, nil, "", "publish"); res.code != 2 || !strings.Contains(res.stderr, "usage") || !strings.Contains(res.stderr, "--instance") {
		t.Errorf("publish without an event: exit %d, %q", res.code, res.stderr)
	}
	if res := runCmd(t, nil, "", "endpoint", "list", "--nope"); res.code != 2 || !strings.Contains(res.stderr, "-nope") || !strings.Contains(res.stderr, "Usage: dojo-webhooks endpoint list") {
		t.Errorf("an unknown flag: exit %d, %q", res.code, res.stderr)
	}
}

// TestHeaderNameNeedsHeaderValue: --header-name alone would send an empty
// header: it is a usage error naming both flags, and nothing is pinged.
func TestHeaderNameNeedsHeaderValue(t *testing.T) {
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	r := newReceiver(t, 200)
	for _, c := range []struct{ stdin, value string }{{"", ""}, {"\n", "-"}} {
		args := []string{"endpoint", "add", "hook", "--url", r.URL, "--header-name", "X-Token"}
		if c.value != "" {
			args = append(args, "--header-value", c.value)
		}
		res := runCmd(t, env, c.stdin, args...)
		if res.code != 2 || !strings.Contains(res.stderr, "--header-name") || !strings.Contains(res.stderr, "--header-value") {
			t.Errorf("%v: exit %d, %q; want 2 naming both flags", args, res.code, res.stderr)
		}
	}
	if _, bodies := r.requests(); len(bodies) != 0 {
		t.Errorf("a refused add pinged the endpoint %d times", len(bodies))
	}
}

// TestBacklogIsANumber: endpoint list --json and status --json give the
// backlog as a number, null before the endpoint has a consumer; status lists
// as many streams as it counts.
func TestBacklogIsANumber(t *testing.T) {
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	r := newReceiver(t, 200)
	if res := runCmd(t, env, "", "endpoint", "add", "hook", "--url", r.URL); res.code != 0 {
		t.Fatal(res.stderr)
	}
	backlogs := func() (list, status any) {
		var listed []map[string]any
		if err := json.Unmarshal([]byte(runCmd(t, env, "", "endpoint", "list", "--json").stdout), &listed); err != nil || len(listed) != 1 {
			t.Fatalf("endpoint list --json: %v, %v", listed, err)
		}
		var rep struct{ Endpoints []map[string]any }
		res := runCmd(t, env, "", "status", "--json")
		if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil || len(rep.Endpoints) != 1 {
			t.Fatalf("status --json: %v, %v %q", rep, err, res.stderr)
		}
		return listed[0]["backlog"], rep.Endpoints[0]["backlog"]
	}
	startServe(t, env) // makes the streams; the consumer follows
	waitFor(t, 10*time.Second, "the endpoint's consumer", func() bool {
		list, status := backlogs()
		return list != nil && status != nil
	})
	list, status := backlogs()
	if l, ok := list.(float64); !ok || l != 0 {
		t.Errorf("endpoint list --json: backlog %#v, want the number 0", list)
	}
	if s, ok := status.(float64); !ok || s != 0 {
		t.Errorf("status --json: backlog %#v, want the number 0", status)
	}
	var show map[string]any
	if err := json.Unmarshal([]byte(runCmd(t, env, "", "endpoint", "show", "hook").stdout), &show); err != nil {
		t.Fatal(err)
	}
	if b, ok := show["backlog"].(float64); !ok || b != 0 {
		t.Errorf("endpoint show: backlog %#v, want the number 0", show["backlog"])
	}

	out := runCmd(t, env, "", "status").stdout
	m := regexp.MustCompile(`JetStream  (\d+) streams`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("status: no stream count:\n%s", out)
	}
	counted, _ := strconv.Atoi(m[1])
	table := out[strings.Index(out, "STREAM"):]
	table = table[:strings.Index(table, "\n\n")]
	if listed := strings.Count(table, "\n"); listed != counted {
		t.Errorf("status counts %d streams and lists %d:\n%s", counted, listed, out)
	}
}

// TestBacklogNullWithoutConsumer: before any sidecar ran, the backlog is null.
func TestBacklogNullWithoutConsumer(t *testing.T) {
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	r := newReceiver(t, 200)
	if res := runCmd(t, env, "", "endpoint", "add", "hook", "--url", r.URL); res.code != 0 {
		t.Fatal(res.stderr)
	}
	var listed []map[string]any
	if err := json.Unmarshal([]byte(runCmd(t, env, "", "endpoint", "list", "--json").stdout), &listed); err != nil || len(listed) != 1 {
		t.Fatalf("endpoint list --json: %v, %v", listed, err)
	}
	if b, ok := listed[0]["backlog"]; !ok || b != nil {
		t.Errorf("backlog %#v (present %v), want null", b, ok)
	}
	if res := runCmd(t, env, "", "endpoint", "list"); !strings.Contains(res.stdout, "active  -") {
		t.Errorf("the table does not show - for an unknown backlog:\n%s", res.stdout)
	}
}
