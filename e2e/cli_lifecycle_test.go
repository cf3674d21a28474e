package e2e

// End-to-end tests of `sessiond stop` and `sessiond restart`, and of the
// hint a prompt prints when the caller's shell has a key the running
// daemon was started without.

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
)

// ownerPID is the pid daemon.json names, failing the test without one.
func ownerPID(t *testing.T, dataDir string) int {
	t.Helper()
	o, err := owner(dataDir)
	if err != nil {
		t.Fatalf("no running daemon for %s: %v", dataDir, err)
	}
	return o.PID
}

// TestCLIStopAndRestart: stop ends the daemon (its socket, its process
// and its hold on the data dir gone) and the next verb starts a new one
// on the same store; restart replaces the daemon and names the new one;
// stop with no daemon says so and succeeds.
func TestCLIStopAndRestart(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	ws := s.dir("ws")

	out, stderr, code := s.run("", "stop")
	if code != 0 || !strings.Contains(out, "no daemon is running for "+s.data) {
		t.Fatalf("stop with no daemon: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if exists(s.socket) || dataDirHeld(t, s.data) {
		t.Fatal("stop with no daemon started one")
	}

	id, _, _ := strings.Cut(s.runOK(ws, "new", "--title", "kept"), "\t")
	first := ownerPID(t, s.data)

	out = s.runOK("", "stop")
	if !strings.Contains(out, "stopped the daemon (pid "+strconv.Itoa(first)+")") {
		t.Errorf("stop: %q", out)
	}
	// stop returns once the daemon is gone: nothing to wait for here.
	if !tmProcessGone(first) || exists(s.socket) || dataDirHeld(t, s.data) {
		t.Fatalf("after stop: process gone %v, socket left %v, data dir held %v",
			tmProcessGone(first), exists(s.socket), dataDirHeld(t, s.data))
	}

	// The next verb starts a new daemon on the same store.
	rows := tableRows(t, s.runOK(ws, "ls"), "ID", "TITLE", "MESSAGES", "UPDATED", "DIRECTORY")
	if len(rows) != 1 || !strings.HasPrefix(rows[0], id) {
		t.Errorf("ls after stop: %q", rows)
	}
	second := ownerPID(t, s.data)
	if second == first {
		t.Fatalf("ls after stop talks to pid %d, the stopped daemon", first)
	}

	out = s.runOK("", "restart")
	third := ownerPID(t, s.data)
	if third == second || !tmProcessGone(second) {
		t.Fatalf("restart: daemon pid %d before, %d after (old one gone: %v)", second, third, tmProcessGone(second))
	}
	for _, want := range []string{"stopped the daemon (pid " + strconv.Itoa(second) + ")",
		"started the daemon (pid " + strconv.Itoa(third) + ", socket " + s.socket + ")"} {
		if !strings.Contains(out, want) {
			t.Errorf("restart prints no %q:\n%s", want, out)
		}
	}
	var st struct{ PID int }
	if err := json.Unmarshal([]byte(s.runOK("", "status", "--json")), &st); err != nil || st.PID != third {
		t.Errorf("status after restart: pid %d (%v), want %d", st.PID, err, third)
	}

	// restart with no daemon starts one.
	s.runOK("", "stop")
	out = s.runOK("", "restart")
	if fourth := ownerPID(t, s.data); !strings.Contains(out, "no daemon was running") ||
		!strings.Contains(out, "started the daemon (pid "+strconv.Itoa(fourth)) {
		t.Errorf("restart with no daemon:\n%s", out)
	}
}

// TestCLIStopOlderDaemon: a daemon from before daemon/shutdown is stopped
// with SIGTERM to the pid daemon.json names, which shuts it down as
// cleanly.
func TestCLIStopOlderDaemon(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	cmd := s.command("serve")
	cmd.Env = append(cmd.Env, "SESSIOND_TEST_HIDE_METHODS=daemon/shutdown")
	d := s.start(cmd)
	s.waitListening(d)
	pid := ownerPID(t, s.data)

	out := s.runOK("", "stop")
	if !strings.Contains(out, "stopped the daemon (pid "+strconv.Itoa(pid)+")") || !strings.Contains(out, "SIGTERM") ||
		!strings.Contains(out, "has no daemon/shutdown") {
		t.Errorf("stop of an older daemon: %q", out)
	}
	if code := d.wait(); code != 0 {
		t.Errorf("the daemon exited %d after SIGTERM; stderr:\n%s", code, d.stderr.String())
	}
	if exists(s.socket) || dataDirHeld(t, s.data) {
		t.Errorf("after stop: socket left %v, data dir held %v", exists(s.socket), dataDirHeld(t, s.data))
	}
}

// TestCLIStopRecordsARunningTurn: stopping the daemon in the middle of a
// shell turn stops the command and records the turn as stopped, so it is
// in the log of the next daemon.
func TestCLIStopRecordsARunningTurn(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	ws := s.dir("ws")
	id, _, _ := strings.Cut(s.runOK(ws, "new"), "\t")
	c := s.dial()
	shell := s.start(s.command("shell", id, "--", "sleep 600"))
	waitUntil(t, "the shell turn to start", func() bool {
		var st map[string]session.Status
		c.call("session/status", map[string]any{"sessionID": id}, &st)
		return st[id].State == "busy"
	})

	out := s.runOK("", "stop")
	if !strings.Contains(out, "stopped the daemon") {
		t.Errorf("stop: %q", out)
	}
	if code := shell.wait(); code == 0 {
		t.Errorf("shell whose daemon stopped exited 0")
	}

	var msgs []session.MessageWithParts
	if err := json.Unmarshal([]byte(s.runOK("", "log", id, "--json")), &msgs); err != nil || len(msgs) != 1 {
		t.Fatalf("log after stop: %d messages, %v", len(msgs), err)
	}
	meta := tmShellMeta(msgs[0])
	if st := tmShellState(t, msgs[0]); st.Status != "error" || meta["aborted"] != true {
		t.Errorf("the turn the stop cut: status %q, metadata %v", st.Status, meta)
	}
}

// TestCLINoProviderNamesRestart: a daemon started before the user exported
// a model key answers NoProvider; the CLI, which has the key, says so and
// names `sessiond restart`, and after a restart the prompt runs.
func TestCLINoProviderNamesRestart(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t, pt.Reply(pt.Text("hello from the model"), pt.Finish("stop")))
	s := newSandbox(t)
	ws := s.dir("ws")
	noKeys := slices.DeleteFunc(slices.Clone(s.env), func(kv string) bool {
		return strings.HasPrefix(kv, "OPENAI_") || strings.HasPrefix(kv, "ANTHROPIC_") || strings.HasPrefix(kv, "SESSIOND_MODEL=")
	})
	withKeys := append(slices.Clone(noKeys), "OPENAI_API_KEY="+pt.APIKey, "OPENAI_BASE_URL="+srv.URL, "SESSIOND_MODEL=openai/fake-model")

	// The daemon starts from a shell without the keys.
	out, stderr, code := s.runEnv(noKeys, ws, "new", "--title", "t")
	if code != 0 {
		t.Fatalf("new: exit %d: %s", code, stderr)
	}
	id, _, _ := strings.Cut(out, "\t")
	pid := ownerPID(t, s.data)

	// Without the key in the caller's shell either: the daemon's message
	// only.
	_, stderr, code = s.runEnv(noKeys, ws, "prompt", id, "hi")
	if code != 3 || !strings.Contains(stderr, "OPENAI_API_KEY") || strings.Contains(stderr, "restart") {
		t.Errorf("prompt with no key anywhere: exit %d, stderr:\n%s", code, stderr)
	}

	// The user exports the key; the daemon still lacks it.
	_, stderr, code = s.runEnv(withKeys, ws, "prompt", id, "hi")
	if code != 3 {
		t.Errorf("prompt with the key only in the shell: exit %d, want 3", code)
	}
	for _, want := range []string{"OPENAI_API_KEY", "set in your shell", "running daemon (pid " + strconv.Itoa(pid) + ", started ",
		"was started without", "sessiond restart"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("prompt with the key only in the shell: stderr lacks %q:\n%s", want, stderr)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("the provider got %d requests", n)
	}

	// The protocol names the variables it looked for.
	c := s.dial()
	e := c.callErr("session/prompt", textPrompt(id, "hi"))
	env, _ := e.Data["env"].([]any)
	if e.Code != rpc.CodeNoProvider || !slices.Contains(env, any("OPENAI_API_KEY")) || !slices.Contains(env, any("ANTHROPIC_API_KEY")) {
		t.Errorf("session/prompt error: %s", mustJSON(e))
	}
	c.Close()

	// restart from the shell with the key, and the prompt runs.
	if _, stderr, code := s.runEnv(withKeys, "", "restart"); code != 0 {
		t.Fatalf("restart: exit %d: %s", code, stderr)
	}
	out, stderr, code = s.runEnv(withKeys, ws, "prompt", id, "hi")
	if code != 0 || !strings.Contains(out, "hello from the model") {
		t.Errorf("prompt after restart: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
}
