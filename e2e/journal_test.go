package e2e

// Tests of the revert journal through the real binary: a journal finished
// after a crash keeps what a person wrote meanwhile, a revert that would
// write through an unsafe path is refused before it writes anything, and
// a journal that cannot finish at start-up is parked on its session
// instead of stopping the daemon.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

// jrSession is what these tests read of a session: the fields the
// journal adds, decoded here so the tests say what the wire carries.
type jrSession struct {
	ID              string               `json:"id"`
	Revert          *session.RevertState `json:"revert"`
	RevertConflicts *struct {
		Op    string `json:"op"`
		Time  int64  `json:"time"`
		Paths []struct {
			Path   string `json:"path"`
			Reason string `json:"reason"`
		} `json:"paths"`
	} `json:"revertConflicts"`
	PendingJournal *struct {
		Op    string `json:"op"`
		Files int    `json:"files"`
		Error string `json:"error"`
		Since int64  `json:"since"`
	} `json:"pendingJournal"`
}

func (s jrSession) conflictPaths() []string {
	if s.RevertConflicts == nil {
		return nil
	}
	var out []string
	for _, p := range s.RevertConflicts.Paths {
		out = append(out, p.Path)
	}
	slices.Sort(out)
	return out
}

func (w *tmWorld) jrGet(id string) jrSession {
	w.t.Helper()
	var s jrSession
	w.call("session/get", map[string]any{"sessionID": id}, &s)
	return s
}

// jrStatus is what these tests read of daemon/status.
type jrStatus struct {
	PendingJournals []struct {
		SessionID string `json:"sessionID"`
		Op        string `json:"op"`
		Error     string `json:"error"`
	} `json:"pendingJournals"`
}

func (w *tmWorld) jrStatus() jrStatus {
	w.t.Helper()
	var st jrStatus
	w.call("daemon/status", nil, &st)
	return st
}

// jrCrashRevert runs a revert of m that the daemon dies halfway through
// (the crash point), checks it died of SIGKILL with some files written and
// some not, and returns the paths it had written and those it had not.
func (w *tmWorld) jrCrashRevert(sesID, msgID string, start, after tmManifest) (written, left []string) {
	w.t.Helper()
	tmCallLost(w.t, w.c, "session/revert", session.RevertParams{SessionID: sesID, MessageID: msgID})
	w.d.wait()
	if ws, ok := w.d.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		w.t.Fatalf("the daemon did not die of SIGKILL at the crash point: %v", w.d.cmd.ProcessState)
	}
	mid := tmTree(w.t, w.ws)
	for p, e := range after {
		if e.Type == "dir" || start[p] == e {
			continue // not a file the turn changed
		}
		if mid[p] == start[p] {
			written = append(written, p)
		} else if mid[p] == e {
			left = append(left, p)
		}
	}
	slices.Sort(written)
	slices.Sort(left)
	if len(written) == 0 || len(left) == 0 {
		w.t.Fatalf("the daemon did not die halfway through the revert: %d files written, %d left", len(written), len(left))
	}
	return written, left
}

// TestJournalReplayKeepsEditsMadeWhileDown: a daemon killed halfway
// through a 2,000-file revert finishes it at its next start, but a file a
// person edited while it was down, whether the revert had already written
// it or not, is left as the person wrote it and reported on the session.
func TestJournalReplayKeepsEditsMadeWhileDown(t *testing.T) {
	t.Parallel()
	const n = 2000
	w := tmSetupEnv(t, false, func(w *tmWorld) {
		for i := range n {
			w.write(fmt.Sprintf("f%04d.txt", i), fmt.Sprintf("f%04d before\n", i), 0o644)
		}
	}, []string{"SESSIOND_TEST_CRASH_POINT=revert-mid-apply"})
	w.wait = 3 * patience // two thousand files on a loaded machine
	ses := w.newSession("big revert")
	start := tmTree(t, w.ws)
	m := w.shell(ses.ID, `for f in f*.txt; do echo changed > "$f"; done`)
	after := tmTree(t, w.ws)
	changed := 0
	for p, e := range after {
		if start[p] != e {
			changed++
		}
	}
	if changed != n {
		t.Fatalf("the turn changed %d files, want %d", changed, n)
	}

	written, left := w.jrCrashRevert(ses.ID, m.Info.ID, start, after)
	if len(written)+len(left) != n {
		t.Fatalf("halfway: %d written + %d left, want %d in all", len(written), len(left), n)
	}
	// A person edits one file the revert had written and one it had not
	// reached, while no daemon runs.
	edited := []string{written[len(written)/2], left[len(left)/2]}
	want := start.clone()
	for _, p := range edited {
		w.write(p, "the person's edit of "+p+"\n", 0o644)
		want[p] = tmEntryOf(t, "the person's edit of "+p+"\n", 0o644)
	}

	w.d = w.s.serve()
	tmSameTree(t, "once the daemon is back", w.ws, want)
	w.c = w.s.dial()
	got := w.jrGet(ses.ID)
	if got.Revert == nil || got.Revert.MessageID != m.Info.ID {
		t.Fatalf("after the restart the session's revert is %s, want to %s", mustJSON(got.Revert), m.Info.ID)
	}
	slices.Sort(edited)
	if !slices.Equal(got.conflictPaths(), edited) {
		t.Fatalf("session/get revertConflicts = %s, want the edited paths %v", mustJSON(got.RevertConflicts), edited)
	}
	if got.RevertConflicts.Op != "revert" || got.RevertConflicts.Time == 0 {
		t.Errorf("revertConflicts = %s, want op revert and a time", mustJSON(got.RevertConflicts))
	}
	for _, p := range got.RevertConflicts.Paths {
		if !strings.Contains(p.Reason, "left as it is") {
			t.Errorf("the reason for %s does not say the file was left: %q", p.Path, p.Reason)
		}
	}
	if got.PendingJournal != nil {
		t.Errorf("the finished journal is still pending: %s", mustJSON(got.PendingJournal))
	}
	show := w.s.runOK("", "show", ses.ID)
	for _, p := range edited {
		if !slices.ContainsFunc(strings.Split(show, "\n"), func(l string) bool {
			return strings.HasPrefix(l, "left by revert") && strings.Contains(l, " "+p+": ")
		}) {
			t.Errorf("sessiond show does not list %s as left by the revert:\n%s", p, show)
		}
	}

	// The edits stay protected: an unrevert refuses to overwrite them.
	e := w.callErr("session/unrevert", session.UnrevertParams{SessionID: ses.ID}, rpc.CodeConflict, "")
	if got := tmDataPaths(t, e); !slices.Equal(got, edited) {
		t.Errorf("unrevert's Conflict lists %v, want %v", got, edited)
	}
	tmSameTree(t, "after the refused unrevert", w.ws, want)
}

// TestRevertThroughSymlinkedDirRefused: a directory the revert must write
// into was replaced by a symlink to outside the workspace. Even forced,
// the revert answers Conflict naming the path and why, writes nothing
// (inside or outside the workspace), and leaves no journal behind: the
// daemon still starts.
func TestRevertThroughSymlinkedDirRefused(t *testing.T) {
	t.Parallel()
	for _, op := range []string{"revert", "unrevert"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			w := tmSetup(t, false, func(w *tmWorld) {
				w.write("sub/f.txt", "sub before\n", 0o644)
				w.write("other.txt", "other before\n", 0o644)
			})
			ses := w.newSession("symlinked dir")
			m := w.shell(ses.ID, `echo changed > sub/f.txt && echo changed > other.txt`)
			method, params := "session/revert", any(session.RevertParams{SessionID: ses.ID, MessageID: m.Info.ID, Force: true})
			if op == "unrevert" {
				w.revert(ses.ID, m.Info.ID, false)
				method, params = "session/unrevert", session.UnrevertParams{SessionID: ses.ID, Force: true}
			}
			// The person moves sub away and links it back from outside.
			real := filepath.Join(w.outside, "subreal")
			if err := os.Rename(w.path("sub"), real); err != nil {
				t.Fatal(err)
			}
			w.symlink("sub", real)
			inside, outside := tmTree(t, w.ws), tmTree(t, w.outside)
			before := w.jrGet(ses.ID)

			e := w.callErr(method, params, rpc.CodeConflict, "")
			if got := tmDataPaths(t, e); !slices.Equal(got, []string{"sub/f.txt"}) {
				t.Errorf("%s's Conflict lists %v, want [sub/f.txt]", op, got)
			}
			if e.Data["reason"] != "unsafePath" {
				t.Errorf("data.reason = %v, want unsafePath", e.Data["reason"])
			}
			conflicts, _ := e.Data["conflicts"].([]any)
			if len(conflicts) != 1 || !strings.Contains(mustJSON(conflicts[0]), "symlink") {
				t.Errorf("data.conflicts = %s, want sub/f.txt with a reason naming the symlink", mustJSON(e.Data["conflicts"]))
			}
			if !strings.Contains(e.Message, "nothing was written") {
				t.Errorf("the message does not say nothing was written: %q", e.Message)
			}
			tmSameTree(t, "the workspace after the refusal", w.ws, inside)
			tmSameTree(t, "outside after the refusal", w.outside, outside)
			if got := w.jrGet(ses.ID); mustJSON(got) != mustJSON(before) {
				t.Errorf("the refusal changed the session:\n  before %s\n  after  %s", mustJSON(before), mustJSON(got))
			}

			// No journal was left: a new daemon starts and serves the session.
			if err := w.d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := w.d.wait(); code != 0 {
				t.Fatalf("the daemon exited with %d on SIGTERM", code)
			}
			w.d = w.s.serve()
			w.c = w.s.dial()
			if got := w.jrGet(ses.ID); got.PendingJournal != nil {
				t.Errorf("after a restart the session has a pending journal: %s", mustJSON(got.PendingJournal))
			}
			tmSameTree(t, "outside after the restart", w.outside, outside)
		})
	}
}

// jrParked makes a revert that cannot finish at start-up: the daemon dies
// halfway through it, then, while no daemon runs, the directory holding
// the files it had not reached yet is replaced by a symlink to outside.
// The daemon started again must serve. It returns the world (daemon
// running, client connected), the session, the turn, the tree the revert
// wants (as before the turn, with a person's notes.txt written before the
// revert), and where the real directory went.
func jrParked(t *testing.T) (w *tmWorld, ses session.Session, m session.MessageWithParts, start tmManifest, real string) {
	t.Helper()
	w = tmSetupEnv(t, false, func(w *tmWorld) {
		for i := range 6 {
			w.write(fmt.Sprintf("a%d.txt", i), fmt.Sprintf("a%d before\n", i), 0o644)
		}
		w.write("z/f.txt", "z before\n", 0o644)
		w.write("z/g.txt", "g before\n", 0o644)
	}, []string{"SESSIOND_TEST_CRASH_POINT=revert-mid-apply"})
	ses = w.newSession("parked")
	start = tmTree(t, w.ws)
	m = w.shell(ses.ID, `for f in a*.txt z/f.txt z/g.txt; do echo changed > "$f"; done`)
	after := tmTree(t, w.ws)
	// A person's file from before the revert: only the capture the revert
	// keeps for unrevert holds it.
	w.write("notes.txt", "the person's notes\n", 0o644)
	start["notes.txt"] = tmEntryOf(t, "the person's notes\n", 0o644)
	_, left := w.jrCrashRevert(ses.ID, m.Info.ID, start, after)
	if !slices.Contains(left, "z/f.txt") {
		t.Fatalf("the crash left %v unwritten, want z/f.txt among them", left)
	}
	real = filepath.Join(w.outside, "zreal")
	if err := os.Rename(w.path("z"), real); err != nil {
		t.Fatal(err)
	}
	w.symlink("z", real)

	// Collections free at once what nothing names (no pin period).
	w.d = w.s.serve("--gc-pin", "-1s")
	w.c = w.s.dial()
	w.c.open(w.ws)
	return w, ses, m, start, real
}

// jrCheckParked checks that the session shows its parked journal and that
// what would add to the session or write its files answers Conflict
// naming retry and abandon.
func jrCheckParked(t *testing.T, w *tmWorld, ses session.Session, m session.MessageWithParts) {
	t.Helper()
	got := w.jrGet(ses.ID)
	pj := got.PendingJournal
	if pj == nil {
		t.Fatalf("session/get shows no pending journal: %s", mustJSON(got))
	}
	if pj.Op != "revert" || pj.Files == 0 || pj.Since == 0 || !strings.Contains(pj.Error, "z/f.txt") || !strings.Contains(pj.Error, "symlink") {
		t.Errorf("pendingJournal = %s, want a revert with files, since, and an error naming z/f.txt and the symlink", mustJSON(pj))
	}
	if got.Revert != nil {
		t.Errorf("a parked revert is recorded as done: %s", mustJSON(got.Revert))
	}
	calls := []struct {
		method string
		params any
	}{
		{"session/shell", session.ShellParams{SessionID: ses.ID, Command: "echo hi > hi.txt"}},
		{"session/revert", session.RevertParams{SessionID: ses.ID, MessageID: m.Info.ID, Force: true}},
		{"session/prompt", map[string]any{"sessionID": ses.ID, "parts": []any{map[string]any{"type": "text", "text": "hi"}}}},
	}
	for _, c := range calls {
		e := w.callErr(c.method, c.params, rpc.CodeConflict, "")
		if e.Data["reason"] != "pendingJournal" || !strings.Contains(e.Message, "session/journal/retry") || !strings.Contains(e.Message, "session/journal/abandon") {
			t.Errorf("%s on a parked session: %q (data %v), want reason pendingJournal and a message naming retry and abandon", c.method, e.Message, e.Data)
		}
	}
	if _, err := os.Lstat(w.path("hi.txt")); err == nil {
		t.Error("a shell turn ran on a parked session")
	}
}

// TestJournalParkedAtStartRetry: a journal that cannot finish at start-up
// no longer stops the daemon. It is parked: the daemon serves other
// sessions, session/get, daemon/status and `sessiond doctor` show it, the
// session refuses turns and reverts, and session/journal/retry finishes it
// once the person has put the directory back, keeping a file they edited
// meanwhile and saying so in the session.reverted event.
func TestJournalParkedAtStartRetry(t *testing.T) {
	t.Parallel()
	w, ses, m, start, real := jrParked(t)

	// Other sessions work as usual.
	other := w.newSession("other")
	w.shell(other.ID, "echo fine > other.txt")
	jrCheckParked(t, w, ses, m)

	st := w.jrStatus()
	if len(st.PendingJournals) != 1 || st.PendingJournals[0].SessionID != ses.ID {
		t.Errorf("daemon/status pendingJournals = %s, want the session", mustJSON(st.PendingJournals))
	}
	out, _, _ := w.s.run("", "doctor")
	if !strings.Contains(out, ses.ID) || !strings.Contains(out, "sessiond journal retry "+ses.ID) || !strings.Contains(out, "sessiond journal abandon "+ses.ID) {
		t.Errorf("sessiond doctor does not list the parked journal with its fixes:\n%s", out)
	}

	// Retrying before the path is fixed fails the same way and keeps it.
	e := w.callErr("session/journal/retry", map[string]any{"sessionID": ses.ID}, rpc.CodeConflict, "")
	if e.Data["reason"] != "pendingJournal" || !strings.Contains(e.Message, "symlink") {
		t.Errorf("retry of an unfixed journal: %q (data %v), want reason pendingJournal naming the symlink", e.Message, e.Data)
	}
	if got := w.jrGet(ses.ID); got.PendingJournal == nil {
		t.Fatal("a failed retry dropped the parked journal")
	}

	// The person puts the directory back, and edits one file meanwhile.
	if err := os.Remove(w.path("z")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(real, w.path("z")); err != nil {
		t.Fatal(err)
	}
	w.write("z/g.txt", "the person's g\n", 0o644)
	// A collection while the journal is parked keeps what it will need.
	w.call("daemon/gc", nil, nil)
	want := start.clone()
	want["z/g.txt"] = tmEntryOf(t, "the person's g\n", 0o644)
	want["other.txt"] = tmEntryOf(t, "fine\n", 0o644)

	var res jrSession
	w.call("session/journal/retry", map[string]any{"sessionID": ses.ID}, &res)
	if res.PendingJournal != nil || res.Revert == nil || res.Revert.MessageID != m.Info.ID {
		t.Errorf("retry answered %s, want the session reverted with no pending journal", mustJSON(res))
	}
	if !slices.Equal(res.conflictPaths(), []string{"z/g.txt"}) {
		t.Errorf("retry's revertConflicts = %s, want z/g.txt", mustJSON(res.RevertConflicts))
	}
	tmSameTree(t, "after the retry", w.ws, want)
	ev := w.c.events.expect(t, "session.reverted", ses.ID)
	var props struct {
		Properties struct {
			SessionID string `json:"sessionID"`
			Conflicts []struct {
				Path   string `json:"path"`
				Reason string `json:"reason"`
			} `json:"conflicts"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(ev.Raw, &props); err != nil {
		t.Fatal(err)
	}
	if props.Properties.SessionID != ses.ID || len(props.Properties.Conflicts) != 1 || props.Properties.Conflicts[0].Path != "z/g.txt" {
		t.Errorf("session.reverted = %s, want the session with conflicts [z/g.txt]", ev.Raw)
	}
	if st := w.jrStatus(); len(st.PendingJournals) != 0 {
		t.Errorf("daemon/status still lists %s", mustJSON(st.PendingJournals))
	}
	// The session works again, and its unrevert has what it needs.
	w.unrevert(ses.ID, true)
	for _, p := range []string{"a0.txt", "a5.txt", "z/g.txt"} {
		want[p] = tmEntryOf(t, "changed\n", 0o644)
	}
	for _, p := range []string{"a1.txt", "a2.txt", "a3.txt", "a4.txt", "z/f.txt"} {
		want[p] = want["a0.txt"]
	}
	tmSameTree(t, "after the unrevert", w.ws, want)
}

// TestJournalParkedAtStartAbandon: `sessiond journal abandon` gives a
// parked journal up. The files stay as they are; the session is as before
// the revert and takes turns again; a later revert finds the files the
// abandoned one wrote to be the session's own.
func TestJournalParkedAtStartAbandon(t *testing.T) {
	t.Parallel()
	w, ses, m, start, real := jrParked(t)
	jrCheckParked(t, w, ses, m)
	inside, outside := tmTree(t, w.ws), tmTree(t, w.outside)

	out := w.s.runOK("", "journal", "abandon", ses.ID)
	if !strings.Contains(out, "Abandoned") {
		t.Errorf("sessiond journal abandon printed %q", out)
	}
	tmSameTree(t, "the workspace after abandoning", w.ws, inside)
	tmSameTree(t, "outside after abandoning", w.outside, outside)
	got := w.jrGet(ses.ID)
	if got.PendingJournal != nil || got.Revert != nil {
		t.Fatalf("after abandoning: %s, want no pending journal and no revert", mustJSON(got))
	}
	if out, _, _ := w.s.run("", "doctor"); strings.Contains(out, ses.ID) {
		t.Errorf("sessiond doctor still lists the abandoned journal:\n%s", out)
	}
	e := w.c.callErr("session/journal/retry", map[string]any{"sessionID": ses.ID})
	errCheck(t, "retry with no journal", e, rpc.CodeInvalidParams, "sessionID")

	// Put the directory back; the revert then goes through without force.
	if err := os.Remove(w.path("z")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(real, w.path("z")); err != nil {
		t.Fatal(err)
	}
	w.revert(ses.ID, m.Info.ID, false)
	tmSameTree(t, "after reverting again", w.ws, start)
}
