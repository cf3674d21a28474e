package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/session"
)

// tableRows splits a table printed by the CLI into its header and rows,
// checking that every row starts each column where the header does.
func tableRows(t *testing.T, out string, columns ...string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	header := lines[0]
	if got := strings.Fields(header); strings.Join(got, " ") != strings.Join(columns, " ") {
		t.Fatalf("table header %q, want columns %v", header, columns)
	}
	var rows []string
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "(more:") {
			break
		}
		rows = append(rows, l)
	}
	// The last column is where misalignment shows: every earlier cell
	// must have been padded to the same width.
	last := columns[len(columns)-1]
	col := utf8.RuneCountInString(header[:strings.Index(header, last)])
	for _, r := range rows {
		runes := []rune(r)
		if len(runes) <= col || runes[col] == ' ' || runes[col-1] != ' ' {
			t.Errorf("row %q does not start its %s column at %d like the header:\n%s", r, last, col, out)
		}
	}
	return rows
}

func rowWith(rows []string, s string) string {
	for _, r := range rows {
		if strings.Contains(r, s) {
			return r
		}
	}
	return ""
}

func TestCLI(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	alpha, beta, empty := s.dir("alpha"), s.dir("beta"), s.dir("empty")

	// Without a daemon, version and doctor report and start nothing.
	if out := s.runOK("", "version"); !strings.HasPrefix(out, "sessiond ") || strings.Count(out, "\n") != 1 {
		t.Errorf("version without a daemon: %q", out)
	}
	out := s.runOK("", "doctor")
	for _, want := range []string{"✓ data dir", s.data, "! daemon", "not running on " + s.socket, "→ nothing to do"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor without a daemon lacks %q:\n%s", want, out)
		}
	}
	if exists(s.socket) {
		t.Fatal("doctor or version started a daemon")
	}

	// new: in the current directory, with --dir, as a child.
	out = s.runOK(alpha, "new", "--title", "Alpha")
	alphaID, title, ok := strings.Cut(strings.TrimSpace(out), "\t")
	if !ok || !strings.HasPrefix(alphaID, "ses_") || title != "Alpha" {
		t.Fatalf("new: %q", out)
	}
	var betaSes session.Session
	if err := json.Unmarshal([]byte(s.runOK("", "new", "--dir", beta, "--title", "Beta", "--json")), &betaSes); err != nil {
		t.Fatal(err)
	}
	if betaSes.Directory != beta || betaSes.Title != "Beta" {
		t.Errorf("new --json: %+v", betaSes)
	}
	out = s.runOK("", "new", "--parent", alphaID, "--title", "Kid")
	kidID, _, _ := strings.Cut(strings.TrimSpace(out), "\t")

	// ls: this workspace's sessions, newest first, children indented.
	columns := []string{"ID", "TITLE", "MESSAGES", "UPDATED", "DIRECTORY"}
	for _, args := range [][]string{{"ls"}, {"ls", "--dir", alpha}} {
		rows := tableRows(t, s.runOK(alpha, args...), columns...)
		if len(rows) != 2 || !strings.HasPrefix(rows[0], kidID) || !strings.Contains(rows[0], "↳ Kid") ||
			!strings.HasPrefix(rows[1], alphaID) || !strings.Contains(rows[1], "just now") || !strings.HasSuffix(rows[1], alpha) {
			t.Errorf("%v: rows %q", args, rows)
		}
	}
	if rows := tableRows(t, s.runOK("", "ls", "--all"), columns...); len(rows) != 3 || !strings.HasPrefix(rows[0], kidID) ||
		!strings.HasPrefix(rows[1], betaSes.ID) || !strings.HasPrefix(rows[2], alphaID) {
		t.Errorf("ls --all: rows %q", rows)
	}
	var res session.ListResult
	if err := json.Unmarshal([]byte(s.runOK("", "ls", "--all", "--json")), &res); err != nil || len(res.Sessions) != 3 {
		t.Errorf("ls --all --json: %+v, %v", res, err)
	}
	if out := s.runOK("", "ls", "--dir", empty); !strings.Contains(out, "No sessions. Create one with `sessiond new`.") {
		t.Errorf("ls of an empty workspace: %q", out)
	}
	// Paging: the hint printed after a page gets the next one.
	out = s.runOK("", "ls", "--all", "--limit", "2")
	if rows := tableRows(t, out, columns...); len(rows) != 2 {
		t.Errorf("ls --limit 2: %q", out)
	}
	_, hint, ok := strings.Cut(out, "(more: ")
	if !ok {
		t.Fatalf("ls --limit 2 prints no hint for the next page:\n%s", out)
	}
	next := append([]string{"ls", "--all"}, strings.Fields(strings.TrimSuffix(strings.TrimSpace(hint), ")"))...)
	if rows := tableRows(t, s.runOK("", next...), columns...); len(rows) != 1 || !strings.HasPrefix(rows[0], alphaID) {
		t.Errorf("%v: rows %q", next, rows)
	}

	// show: the session and its conversation.
	c := s.dial()
	c.say(alphaID, "user", "hello from the test")
	c.say(alphaID, "planner", "a plan")
	out = s.runOK("", "show", alphaID)
	for _, want := range []string{"id         " + alphaID, "title      Alpha", "directory  " + alpha, "messages   2",
		"── user", "hello from the test", "── assistant (planner)", "a plan"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	var shown struct {
		Session  session.Session            `json:"session"`
		Messages []session.MessageWithParts `json:"messages"`
	}
	if err := json.Unmarshal([]byte(s.runOK("", "show", alphaID, "--json")), &shown); err != nil ||
		shown.Session.ID != alphaID || len(shown.Messages) != 2 || shown.Messages[1].Parts[0].Text != "a plan" {
		t.Errorf("show --json: %+v, %v", shown, err)
	}

	// rename
	if out := s.runOK("", "rename", alphaID, "Alpha two"); out != alphaID+"\tAlpha two\n" {
		t.Errorf("rename: %q", out)
	}
	if rows := tableRows(t, s.runOK("", "ls", "--dir", alpha), columns...); rowWith(rows, "Alpha two") == "" {
		t.Errorf("ls after rename: %q", rows)
	}

	// status: the daemon, then one session.
	o, err := owner(s.data)
	if err != nil {
		t.Fatal(err)
	}
	out = s.runOK("", "status")
	for _, want := range []string{"version", "pid          " + itoa(o.PID), "data dir     " + s.data, "socket       " + s.socket, "connections", "store"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	var st daemon.DaemonStatus
	if err := json.Unmarshal([]byte(s.runOK("", "status", "--json")), &st); err != nil || st.PID != o.PID || st.Projects != 2 {
		t.Errorf("status --json: %+v, %v", st, err)
	}
	if out := s.runOK("", "status", alphaID); !strings.Contains(out, alphaID+"\tidle\t") || !strings.Contains(out, "messages 2") {
		t.Errorf("status SESSION: %q", out)
	}
	var sst map[string]session.Status
	if err := json.Unmarshal([]byte(s.runOK("", "status", alphaID, "--json")), &sst); err != nil || sst[alphaID].State != "idle" || sst[alphaID].MessageCount != 2 {
		t.Errorf("status SESSION --json: %+v, %v", sst, err)
	}

	// With the daemon up, version and doctor report it.
	if out := s.runOK("", "version"); !strings.Contains(out, "\ndaemon   ") {
		t.Errorf("version with a daemon: %q", out)
	}
	out = s.runOK("", "doctor")
	if !strings.Contains(out, "✓ daemon") || !strings.Contains(out, "pid "+itoa(o.PID)) {
		t.Errorf("doctor with a daemon:\n%s", out)
	}
	var checks []struct{ Name, Status, Detail string }
	if err := json.Unmarshal([]byte(s.runOK("", "doctor", "--json")), &checks); err != nil || len(checks) < 3 ||
		checks[0].Name != "data dir" || checks[0].Status != "ok" || checks[1].Name != "daemon" || checks[1].Status != "ok" {
		t.Errorf("doctor --json: %+v, %v", checks, err)
	}

	// rm takes the children along.
	if out := s.runOK("", "rm", alphaID); out != "deleted "+alphaID+"\n" {
		t.Errorf("rm: %q", out)
	}
	if err := json.Unmarshal([]byte(s.runOK("", "ls", "--all", "--json")), &res); err != nil || len(res.Sessions) != 1 || res.Sessions[0].ID != betaSes.ID {
		t.Errorf("ls after rm: %+v, %v", res, err)
	}
	var deleted struct{ Deleted []string }
	if err := json.Unmarshal([]byte(s.runOK("", "rm", betaSes.ID, "--json")), &deleted); err != nil || len(deleted.Deleted) != 1 || deleted.Deleted[0] != betaSes.ID {
		t.Errorf("rm --json: %+v, %v", deleted, err)
	}

	// Errors: a protocol error exits 3 with the daemon's message; a usage
	// error exits 1 and says what is wrong.
	errCases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"rm", alphaID}, 3, `sessiond: session "` + alphaID + `" not found`},
		{[]string{"show", kidID}, 3, `session "` + kidID + `" not found`},
		{[]string{"rename", alphaID, "  "}, 3, "title cannot be empty"},
		{[]string{"new", "--dir", "no/such/dir"}, 3, filepath.Join(s.base, "no/such/dir")},
		{[]string{"show"}, 1, "show needs SESSION; got no arguments"},
		{[]string{"ls", "--bogus"}, 1, "unknown flag: --bogus"},
		{[]string{"frobnicate"}, 1, `unknown command "frobnicate"`},
	}
	for _, tc := range errCases {
		out, stderr, code := s.run("", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d and %q", tc.args, code, stderr, out, tc.code, tc.want)
		}
	}

	// A failing check makes doctor fail.
	file := filepath.Join(s.base, "a-file")
	os.WriteFile(file, nil, 0o600)
	out, stderr, code := s.run("", "doctor", "--data-dir", file)
	if code != 1 || !strings.Contains(out, "✗ data dir") || !strings.Contains(stderr, "1 check(s) failed") {
		t.Errorf("doctor with a bad data dir: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
