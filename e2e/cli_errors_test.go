package e2e

// End-to-end tests of what the CLI says when something is wrong: a verb
// given the wrong arguments, a session that does not exist.

import (
	"strings"
	"testing"
)

// TestCLIArgumentErrors: a verb given the wrong arguments prints what is
// wrong, its usage line and where to read more, exits 1, and starts no
// daemon.
func TestCLIArgumentErrors(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	cases := []struct {
		args  []string
		usage string // the usage line, up to its flags
		want  string // what is wrong
	}{
		{[]string{"show"}, "sessiond show SESSION", "show needs SESSION; got no arguments"},
		{[]string{"rename", "ses_x"}, "sessiond rename SESSION TITLE", `rename needs SESSION TITLE; got 1 argument: "ses_x"`},
		{[]string{"rm"}, "sessiond rm SESSION...", "rm needs SESSION...; got no arguments"},
		{[]string{"ls", "extra"}, "sessiond ls", `ls takes no arguments; got 1 argument: "extra"`},
		{[]string{"log"}, "sessiond log SESSION", "log needs SESSION"},
		{[]string{"diff", "a", "b", "c"}, "sessiond diff SESSION [MESSAGE]", `diff needs SESSION [MESSAGE]; got 3 arguments: "a" "b" "c"`},
		{[]string{"revert", "ses_x"}, "sessiond revert SESSION MESSAGE", "revert needs SESSION MESSAGE"},
		{[]string{"unrevert"}, "sessiond unrevert SESSION", "unrevert needs SESSION"},
		{[]string{"fork"}, "sessiond fork SESSION [MESSAGE]", "fork needs SESSION [MESSAGE]"},
		{[]string{"status", "a", "b"}, "sessiond status [SESSION]", "status takes [SESSION]"},
		{[]string{"new", "title"}, "sessiond new", "new takes no arguments"},
		{[]string{"stop", "now"}, "sessiond stop", "stop takes no arguments"},
		{[]string{"restart", "now"}, "sessiond restart", "restart takes no arguments"},
		{[]string{"shell", "ses_x"}, "sessiond shell SESSION -- COMMAND...", "give a session and the command to run"},
		{[]string{"prompt"}, "sessiond prompt SESSION TEXT...", "give a session"},
		{[]string{"ls", "--bogus"}, "sessiond ls", "unknown flag: --bogus"},
	}
	for _, tc := range cases {
		out, stderr, code := s.run("", tc.args...)
		verb := tc.args[0]
		if code != 1 || out != "" {
			t.Errorf("%v: exit %d, stdout %q; want exit 1 and nothing on stdout", tc.args, code, out)
		}
		for _, want := range []string{"sessiond: " + tc.want, "Usage: " + tc.usage, "`sessiond " + verb + " --help`"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, want, stderr)
			}
		}
		if strings.Contains(stderr, "arg(s)") {
			t.Errorf("%v: cobra's bare message:\n%s", tc.args, stderr)
		}
	}
	_, stderr, code := s.run("", "frobnicate")
	if code != 1 || !strings.Contains(stderr, `unknown command "frobnicate"`) || !strings.Contains(stderr, "`sessiond --help`") {
		t.Errorf("unknown verb: exit %d, stderr:\n%s", code, stderr)
	}
	if exists(s.socket) || dataDirHeld(t, s.data) {
		t.Error("an argument error started a daemon")
	}
}

// TestCLINotFoundSuggestsLs: a verb naming a session that does not exist
// says how to find the sessions; one naming a message that does not exist
// says how to find the messages.
func TestCLINotFoundSuggestsLs(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	id, _, _ := strings.Cut(s.runOK(s.dir("ws"), "new"), "\t")
	for _, args := range [][]string{{"show", "ses_nope"}, {"log", "ses_nope"}, {"diff", "ses_nope"}, {"rm", "ses_nope"},
		{"revert", "ses_nope", "msg_nope"}, {"shell", "ses_nope", "--", "true"}, {"prompt", "ses_nope", "hi"}} {
		_, stderr, code := s.run("", args...)
		wantCode := 3
		if args[0] == "shell" {
			wantCode = 1 // shell keeps 3 and up for the command's own status
		}
		if code != wantCode || !strings.Contains(stderr, `session "ses_nope" not found`) ||
			!strings.Contains(stderr, "run `sessiond ls` (or `sessiond ls --all`) to see the sessions") {
			t.Errorf("%v: exit %d, stderr:\n%s", args, code, stderr)
		}
	}
	_, stderr, code := s.run("", "revert", id, "msg_01M80SVNET28NRZJT8ES5K1AA6")
	if code != 3 || !strings.Contains(stderr, "not found") || !strings.Contains(stderr, "`sessiond log "+id+"`") {
		t.Errorf("revert to a message that does not exist: exit %d, stderr:\n%s", code, stderr)
	}
}
