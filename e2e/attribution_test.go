package e2e

// End-to-end tests of attribution: a turn claims only what it provably
// wrote, so a person's edits made while it runs are never reverted.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/session/provider"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// patchFiles lists the files of a message's patch parts, sorted.
func patchFiles(m session.MessageWithParts) []string {
	var out []string
	for _, p := range m.Parts {
		if p.Type == session.PartPatch {
			out = append(out, p.Files...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestShellTurnClaimsOnlyItsOwnWrites: while a shell command runs, a
// person edits one file and creates another. The turn's patch, its diff
// and its revert know only the file the command wrote.
func TestShellTurnClaimsOnlyItsOwnWrites(t *testing.T) {
	t.Parallel()
	w := tmSetup(t, true, func(w *tmWorld) {
		w.write("a.txt", "v0\n", 0o644)
		w.write("notes.txt", "my notes\n", 0o644)
	})
	fifo := filepath.Join(w.outside, "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ses := w.newSession("person edits while a command runs")

	done := make(chan session.MessageWithParts, 1)
	go func() {
		var m session.MessageWithParts
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		err := w.c.Call(ctx, "session/shell", session.ShellParams{SessionID: ses.ID, Command: "read x < " + fifo + "; echo v1 > a.txt"}, &m)
		if err != nil {
			t.Errorf("session/shell: %v", err)
		}
		done <- m
	}()
	// The command is blocked on the fifo: the person works meanwhile. (A
	// second connection asks: calls about one session are answered in
	// order on each connection.)
	c2 := w.s.dial()
	waitUntil(t, "the shell turn to start", func() bool {
		var ms []session.MessageWithParts
		c2.call("session/messages", map[string]any{"sessionID": ses.ID}, &ms)
		return len(ms) == 1
	})
	w.write("notes.txt", "my notes, edited while the command ran\n", 0o644)
	w.write("person_new.txt", "a file I made\n", 0o644)
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("go\n")
	f.Close()
	m := <-done
	if t.Failed() {
		return
	}

	if got, want := patchFiles(m), []string{"a.txt"}; !slices.Equal(got, want) {
		t.Errorf("the turn's patch lists %q, want %q: a person's files are not the turn's", got, want)
	}
	if m.Info.Snapshot == nil || len(m.Info.Snapshot.Unattributed) > 0 {
		t.Errorf("a traced command left unattributed paths: %s", mustJSON(m.Info.Snapshot))
	}
	if got, want := tmPaths(w.diff(ses.ID, "", false)), []string{"a.txt"}; !slices.Equal(got, want) {
		t.Errorf("session/diff lists %q, want %q", got, want)
	}

	w.revert(ses.ID, m.Info.ID, false)
	for rel, want := range map[string]string{
		"a.txt":          "v0\n",
		"notes.txt":      "my notes, edited while the command ran\n",
		"person_new.txt": "a file I made\n",
	} {
		if got := readFile(t, w.path(rel)); got != want {
			t.Errorf("after the revert %s holds %q, want %q", rel, got, want)
		}
	}
}

// TestAgentTurnClaimsOnlyItsOwnWrites: an agent turn writes a.txt with
// its write tool and b.txt with bash; while the model answers the next
// step, a person edits notes.txt, creates person_new.txt and edits a.txt
// after the agent wrote it. The turn claims a.txt and b.txt only, and its
// revert refuses to overwrite the person's a.txt unless forced; forced,
// it still never touches the person's own files.
func TestAgentTurnClaimsOnlyItsOwnWrites(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	w, srv := agSetup(t, provider.TypeOpenAI, "gpt-4o",
		pt.Reply(
			pt.Tool("c1", "write", `{"path":"a.txt","content":"agent\n"}`),
			pt.Tool("c2", "bash", `{"command":"echo agent > b.txt"}`),
			pt.Finish("tool_calls"),
		),
		pt.Reply(pt.Wait(release), pt.Text("done"), pt.Finish("stop")),
	)
	for rel, content := range map[string]string{"a.txt": "v0\n", "notes.txt": "my notes\n"} {
		if err := os.WriteFile(filepath.Join(w.ws, rel), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ses := w.session(session.CreateParams{})

	done := make(chan session.MessageWithParts, 1)
	go func() {
		var m session.MessageWithParts
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		if err := w.c.Call(ctx, "session/prompt", textPrompt(ses.ID, "write a and b"), &m); err != nil {
			t.Errorf("session/prompt: %v", err)
		}
		done <- m
	}()
	// The second model call starts after the first step is recorded.
	waitUntil(t, "the second model call", func() bool { return len(srv.Requests()) >= 2 })
	for rel, content := range map[string]string{
		"notes.txt":      "my notes, edited meanwhile\n",
		"person_new.txt": "a file I made\n",
		"a.txt":          "I fixed the agent's a.txt\n",
	} {
		if err := os.WriteFile(filepath.Join(w.ws, rel), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	m := <-done
	if t.Failed() {
		return
	}

	if got, want := patchFiles(m), []string{"a.txt", "b.txt"}; !slices.Equal(got, want) {
		t.Errorf("the turn's patches list %q, want %q", got, want)
	}
	var diffs []snapshot.FileDiff
	w.c.call("session/diff", session.DiffParams{SessionID: ses.ID}, &diffs)
	if got, want := tmPaths(diffs), []string{"a.txt", "b.txt"}; !slices.Equal(got, want) {
		t.Errorf("session/diff lists %q, want %q", got, want)
	}

	e := w.c.callErr("session/revert", session.RevertParams{SessionID: ses.ID, MessageID: m.Info.ParentID})
	errCheck(t, "session/revert", e, rpc.CodeConflict, "")
	if got, want := tmDataPaths(t, e), []string{"a.txt"}; !slices.Equal(got, want) {
		t.Errorf("the conflict lists %q, want %q", got, want)
	}
	if got := w.read("a.txt"); got != "I fixed the agent's a.txt\n" {
		t.Errorf("a refused revert wrote a.txt: %q", got)
	}

	var rs session.Session
	w.c.call("session/revert", session.RevertParams{SessionID: ses.ID, MessageID: m.Info.ParentID, Force: true}, &rs)
	for rel, want := range map[string]string{
		"a.txt":          "v0\n",
		"notes.txt":      "my notes, edited meanwhile\n",
		"person_new.txt": "a file I made\n",
	} {
		if got := w.read(rel); got != want {
			t.Errorf("after the forced revert %s holds %q, want %q", rel, got, want)
		}
	}
	if exists(filepath.Join(w.ws, "b.txt")) {
		t.Errorf("the forced revert left b.txt, which the agent's bash created")
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// TestTurnCutByKillStaysRevertible: the daemon is killed with SIGKILL
// while the model answers the step after the agent wrote two files. The
// restarted daemon marks the message aborted with the reason, and the
// turn's diff and revert work on what it wrote.
func TestTurnCutByKillStaysRevertible(t *testing.T) {
	t.Parallel()
	w, srv := agSetup(t, provider.TypeAnthropic, "claude-sonnet-4-5",
		pt.Reply(
			pt.Tool("c1", "write", `{"path":"one.txt","content":"agent one\n"}`),
			pt.Tool("c2", "edit", `{"path":"two.txt","old_string":"v0","new_string":"agent two"}`),
			pt.Finish("tool_use"),
		),
		pt.Reply(pt.Text("thinking it over"), pt.Hang()),
	)
	if err := os.WriteFile(filepath.Join(w.ws, "two.txt"), []byte("v0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ses := w.session(session.CreateParams{})
	var started struct {
		MessageID string `json:"messageID"`
	}
	w.c.call("session/promptAsync", textPrompt(ses.ID, "write one, edit two"), &started)
	waitUntil(t, "the second model call", func() bool { return len(srv.Requests()) >= 2 })
	o, err := owner(w.s.data)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(o.PID, syscall.SIGKILL) // mid-turn
	waitUntil(t, "the daemon to die", func() bool { return !dataDirHeld(t, w.s.data) })

	cmd := w.s.command("serve")
	d := w.s.start(cmd)
	w.s.waitListening(d)
	w.c = w.s.dial()

	var ms []session.MessageWithParts
	w.c.call("session/messages", map[string]any{"sessionID": ses.ID}, &ms)
	var asst *session.MessageWithParts
	for i := range ms {
		if ms[i].Info.Role == session.RoleAssistant {
			asst = &ms[i]
		}
	}
	if asst == nil {
		t.Fatalf("no assistant message after the restart: %s", mustJSON(ms))
	}
	if asst.Info.Time.Completed == 0 || asst.Info.Error == nil || asst.Info.Error.Kind != session.ErrorKindAborted ||
		!strings.Contains(asst.Info.Error.Message, "daemon stopped") {
		t.Errorf("the cut-off message is not marked aborted by the daemon's stop: completed %d, error %s",
			asst.Info.Time.Completed, mustJSON(asst.Info.Error))
	}
	var diffs []snapshot.FileDiff
	w.c.call("session/diff", session.DiffParams{SessionID: ses.ID}, &diffs)
	if got, want := tmPaths(diffs), []string{"one.txt", "two.txt"}; !slices.Equal(got, want) {
		t.Errorf("session/diff after the restart lists %q, want %q", got, want)
	}
	var rs session.Session
	w.c.call("session/revert", session.RevertParams{SessionID: ses.ID, MessageID: asst.Info.ParentID}, &rs)
	if exists(filepath.Join(w.ws, "one.txt")) {
		t.Errorf("the revert left one.txt, which the cut-off turn created")
	}
	if got := w.read("two.txt"); got != "v0\n" {
		t.Errorf("after the revert two.txt holds %q, want %q", got, "v0\n")
	}
	// The session takes new prompts: nothing is left marked running.
	var st map[string]session.Status
	w.c.call("session/status", map[string]any{"sessionID": ses.ID}, &st)
	if st[ses.ID].State != "idle" {
		t.Errorf("after the restart the session is %q, want idle", st[ses.ID].State)
	}
}

// TestUntracedTurnNeedsForce: with write tracing off, a shell turn's
// changes cannot be told from anyone else's. They are recorded as
// unattributed, with the reason; a revert lists them as a Conflict and
// writes them only when forced.
func TestUntracedTurnNeedsForce(t *testing.T) {
	t.Parallel()
	w := tmSetupEnv(t, false, func(w *tmWorld) {
		w.write("a.txt", "v0\n", 0o644)
	}, []string{"SESSIOND_TRACE_WRITES=off"})
	ses := w.newSession("untraced")
	m := w.shell(ses.ID, "echo v1 > a.txt")
	if got := m.Info.Snapshot.Unattributed; !slices.Equal(got, []string{"a.txt"}) {
		t.Errorf("unattributed = %q, want [a.txt]", got)
	}
	if r := m.Info.Snapshot.UnattributedReason; !strings.Contains(r, "SESSIOND_TRACE_WRITES") {
		t.Errorf("unattributedReason %q does not say how tracing was turned off", r)
	}
	if got := patchFiles(m); len(got) != 0 {
		t.Errorf("an untraced turn's patch claims %q", got)
	}

	e := w.callErr("session/revert", session.RevertParams{SessionID: ses.ID, MessageID: m.Info.ID}, rpc.CodeConflict, "")
	if got := tmDataPaths(t, e); !slices.Equal(got, []string{"a.txt"}) {
		t.Errorf("the conflict lists %q, want [a.txt]", got)
	}
	if u, _ := e.Data["unattributed"].([]any); len(u) != 1 || u[0] != "a.txt" {
		t.Errorf("data.unattributed = %v, want [a.txt]", e.Data["unattributed"])
	}
	if got := readFile(t, w.path("a.txt")); got != "v1\n" {
		t.Errorf("a refused revert wrote a.txt: %q", got)
	}
	w.revert(ses.ID, m.Info.ID, true)
	if got := readFile(t, w.path("a.txt")); got != "v0\n" {
		t.Errorf("after the forced revert a.txt holds %q, want %q", got, "v0\n")
	}
}

// TestIdleDaemonWaitsForTracedBackgroundProcesses: a shell turn leaves a
// process running that writes a file later. The calls the tracer stops
// need the daemon, so it does not exit for idleness while the process
// lives; the late write succeeds, and then the daemon exits.
func TestIdleDaemonWaitsForTracedBackgroundProcesses(t *testing.T) {
	t.Parallel()
	w := tmSetup(t, false, nil, "--idle-timeout", "300ms")
	fifo := filepath.Join(w.outside, "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ses := w.newSession("a server in the background")
	w.shell(ses.ID, "(read x < "+fifo+"; echo late > late.txt) > /dev/null 2>&1 &")
	w.c.Close()
	waitUntil(t, "the idle daemon to stay for the background process", func() bool {
		return strings.Contains(w.d.stderr.String(), "still need the daemon")
	})
	if w.d.exited() {
		t.Fatalf("the daemon exited while a traced process lived; stderr:\n%s", w.d.stderr.String())
	}
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("go\n")
	f.Close()
	waitUntil(t, "the background process to write late.txt", func() bool { return readFile(t, w.path("late.txt")) == "late\n" })
	if code := w.d.wait(); code != 0 {
		t.Errorf("the daemon exited with %d after its last traced process; stderr:\n%s", code, w.d.stderr.String())
	}
}
