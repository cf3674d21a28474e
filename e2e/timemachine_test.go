package e2e

// End-to-end tests of the workspace time machine (DESIGN §4): real files
// in temporary workspaces, the real watcher, the real daemon binary.
// Every revert is checked against a full manifest of the tree (path, type,
// mode, content hash, link target), and what a revert must leave alone
// against its mtimes too.

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// TestTimeMachineRevertEachTurn: shell turns create, modify, chmod,
// rename and delete files, directories and links; reverting to each turn
// brings back the exact tree from before it, and unrevert the tree from
// before the revert. Files no turn touched keep their mtimes throughout,
// and .git is never written.
func TestTimeMachineRevertEachTurn(t *testing.T) {
	t.Parallel()
	tmEachKind(t, func(t *testing.T, git bool) {
		w := tmSetup(t, git, func(w *tmWorld) {
			w.write("keep.txt", "keep\n", 0o644)
			w.write("untouched.txt", "nobody touches me\n", 0o644)
			w.write("mod.txt", "one\ntwo\n", 0o644)
			w.write("exec.sh", "#!/bin/sh\necho hi\n", 0o755)
			w.write("ro.txt", "read only\n", 0o444)
			w.write("dir/a.txt", "a\n", 0o644)
			w.write("dir/deep/b.txt", "b\n", 0o644)
			w.symlink("link", "keep.txt")
		})
		w.age("untouched.txt")
		gitBefore := tmTreeSkip(t, filepath.Join(w.ws, ".git"), "index.lock")
		stamps := tmMtimes(t, w.ws, "untouched.txt")
		ses := w.newSession("revert each turn")

		turns := []string{
			// create and modify
			`mkdir -p new/sub && printf 'n1\n' > new/sub/n.txt && printf 'one\nTWO\nthree\n' > mod.txt && printf '\000\001\377bin' > blob.bin && mkdir -p emptydir/inner`,
			// chmod, rename, relink
			`chmod 600 exec.sh && chmod 755 mod.txt && chmod 644 ro.txt && printf 'rw\n' >> ro.txt && mv dir/a.txt dir/a2.txt && mv new renamed && ln -s renamed/sub/n.txt link2 && rm link && ln -s mod.txt link`,
			// delete files and directories; a file becomes a directory
			`rm keep.txt && rm -r dir emptydir && printf 'n2\n' > renamed/sub/n.txt && mkdir keep.txt && printf x > keep.txt/inside`,
			// a directory becomes a file, a file a link
			`rm -r renamed && printf 'now a file\n' > renamed && rm blob.bin && ln -s /etc/hostname blob.bin`,
		}
		states := []tmManifest{tmTree(t, w.ws)}
		var ids []string
		for _, cmd := range turns {
			m := w.shell(ses.ID, cmd)
			ids = append(ids, m.Info.ID)
			states = append(states, tmTree(t, w.ws))
		}
		last := states[len(states)-1]
		for i := 1; i < len(states); i++ {
			if len(tmDiffManifests(states[i], states[i-1])) == 0 {
				t.Fatalf("turn %d changed nothing: %s", i, turns[i-1])
			}
		}

		// Revert to each turn on its own, then undo the revert.
		for k := len(ids) - 1; k >= 0; k-- {
			rs := w.revert(ses.ID, ids[k], false)
			if len(rs.Revert.Files) == 0 {
				t.Errorf("revert to turn %d lists no files", k+1)
			}
			tmSameTree(t, fmt.Sprintf("after reverting to turn %d", k+1), w.ws, states[k])
			if got := tmIDs(w.messages(ses.ID, false)); !slices.Equal(got, ids[:k]) {
				t.Errorf("after reverting to turn %d, session/messages shows %v, want %v", k+1, got, ids[:k])
			}
			w.unrevert(ses.ID, false)
			tmSameTree(t, fmt.Sprintf("after unreverting turn %d", k+1), w.ws, last)
		}

		// Reverts stack: each goes one turn further back, and one
		// unrevert brings back the tree from before the first.
		for k := len(ids) - 1; k >= 0; k-- {
			w.revert(ses.ID, ids[k], false)
			tmSameTree(t, fmt.Sprintf("after stacking a revert to turn %d", k+1), w.ws, states[k])
		}
		if got := w.c.get(ses.ID); got.Revert == nil || got.Revert.MessageID != ids[0] {
			t.Fatalf("session/get after the stacked reverts: revert %s, want to %s", mustJSON(got.Revert), ids[0])
		}
		w.unrevert(ses.ID, false)
		tmSameTree(t, "after unreverting the stacked reverts", w.ws, last)
		if got := tmIDs(w.messages(ses.ID, false)); !slices.Equal(got, ids) {
			t.Errorf("after unrevert, session/messages shows %v, want %v", got, ids)
		}

		tmSameMtimes(t, "a file no turn touched", w.ws, stamps)
		if d := tmDiffManifests(tmTreeSkip(t, filepath.Join(w.ws, ".git"), "index.lock"), gitBefore); len(d) > 0 {
			t.Errorf(".git changed:\n  %s", strings.Join(d, "\n  "))
		}
		if st := w.c.status(); st.Watched != 1 || len(st.Degraded) != 0 {
			t.Errorf("daemon/status: watched %d, degraded %v", st.Watched, st.Degraded)
		}
	})
}

// TestTimeMachinePersonEditsBetweenTurns: files a person writes, edits
// or deletes between a session's turns are not the session's: no revert
// or unrevert touches them (content and mtime), and the session's diff
// does not list them.
func TestTimeMachinePersonEditsBetweenTurns(t *testing.T) {
	t.Parallel()
	tmEachKind(t, func(t *testing.T, git bool) {
		w := tmSetup(t, git, func(w *tmWorld) {
			w.write("a.txt", "a0\n", 0o644)
			w.write("b.txt", "b0\n", 0o644)
			w.write("gone.txt", "to be deleted by a person\n", 0o644)
		})
		ses := w.newSession("person edits")
		before := tmTree(t, w.ws)
		m1 := w.shell(ses.ID, `printf 'a1\n' > a.txt`)

		// A person edits, creates and deletes files between the turns.
		w.write("b.txt", "b edited by a person\n", 0o644)
		w.write("notes/p.txt", "a person's new file\n", 0o600)
		if err := os.Remove(w.path("gone.txt")); err != nil {
			t.Fatal(err)
		}
		w.age("b.txt", "notes/p.txt")
		w.shell(ses.ID, `printf 'a2\n' > a.txt && printf 'c\n' > c.txt`)
		w.write("d.txt", "written after the last turn\n", 0o644)
		w.age("d.txt")
		personal := tmMtimes(t, w.ws, "b.txt", "notes/p.txt", "d.txt")

		if got := tmPaths(w.diff(ses.ID, "", false)); !slices.Equal(got, []string{"a.txt", "c.txt"}) {
			t.Errorf("session/diff lists %v, want only the session's a.txt and c.txt", got)
		}
		now := tmTree(t, w.ws)
		want := now.clone()
		want["a.txt"] = before["a.txt"]
		delete(want, "c.txt")
		w.revert(ses.ID, m1.Info.ID, false)
		tmSameTree(t, "after the revert", w.ws, want)
		tmSameMtimes(t, "the person's files after the revert", w.ws, personal)

		w.unrevert(ses.ID, false)
		tmSameTree(t, "after the unrevert", w.ws, now)
		tmSameMtimes(t, "the person's files after the unrevert", w.ws, personal)
	})
}

// TestTimeMachineOutsideEditConflicts: a file of the change set edited
// outside the session makes revert (and unrevert) refuse with Conflict,
// naming it, and write nothing; force overwrites.
func TestTimeMachineOutsideEditConflicts(t *testing.T) {
	t.Parallel()
	tmEachKind(t, func(t *testing.T, git bool) {
		w := tmSetup(t, git, func(w *tmWorld) {
			w.write("a.txt", "a0\n", 0o644)
			w.write("b.txt", "b0\n", 0o644)
		})
		ses := w.newSession("conflicts")
		m := w.shell(ses.ID, `printf 'a1\n' > a.txt && printf 'b1\n' > b.txt && printf 'n1\n' > n.txt`)

		w.write("a.txt", "a edited outside\n", 0o644)
		tree, stamps := tmTree(t, w.ws), tmMtimes(t, w.ws)
		e := w.callErr("session/revert", session.RevertParams{SessionID: ses.ID, MessageID: m.Info.ID}, rpc.CodeConflict, "")
		if got := tmDataPaths(t, e); !slices.Equal(got, []string{"a.txt"}) {
			t.Errorf("Conflict data.paths = %v, want [a.txt]", got)
		}
		tmSameTree(t, "after the refused revert", w.ws, tree)
		tmSameMtimes(t, "after the refused revert", w.ws, stamps)
		if got := w.c.get(ses.ID); got.Revert != nil {
			t.Fatalf("the refused revert left the session reverted: %s", mustJSON(got.Revert))
		}
		if n := len(w.messages(ses.ID, false)); n != 1 {
			t.Errorf("after the refused revert session/messages shows %d messages, want 1", n)
		}

		w.revert(ses.ID, m.Info.ID, true)
		want := tree.clone()
		want["a.txt"], want["b.txt"] = tmEntryOf(t, "a0\n", 0o644), tmEntryOf(t, "b0\n", 0o644)
		delete(want, "n.txt")
		tmSameTree(t, "after the forced revert", w.ws, want)

		// Unrevert checks the same way: the revert deleted n.txt, a
		// person made it again.
		w.write("n.txt", "n made again outside\n", 0o644)
		tree, stamps = tmTree(t, w.ws), tmMtimes(t, w.ws)
		e = w.callErr("session/unrevert", session.UnrevertParams{SessionID: ses.ID}, rpc.CodeConflict, "")
		if got := tmDataPaths(t, e); !slices.Equal(got, []string{"n.txt"}) {
			t.Errorf("Conflict data.paths = %v, want [n.txt]", got)
		}
		tmSameTree(t, "after the refused unrevert", w.ws, tree)
		tmSameMtimes(t, "after the refused unrevert", w.ws, stamps)
		w.unrevert(ses.ID, true)
		// Unrevert brings back the files as they were when the revert
		// began, the outside edit of a.txt included.
		want = tree.clone()
		want["a.txt"] = tmEntryOf(t, "a edited outside\n", 0o644)
		want["b.txt"] = tmEntryOf(t, "b1\n", 0o644)
		want["n.txt"] = tmEntryOf(t, "n1\n", 0o644)
		tmSameTree(t, "after the forced unrevert", w.ws, want)
	})
}

// TestTimeMachineTwoSessions: reverting one session leaves another
// session's changes in the same workspace alone; a file both changed is a
// conflict for the one that changed it first.
func TestTimeMachineTwoSessions(t *testing.T) {
	t.Parallel()
	tmEachKind(t, func(t *testing.T, git bool) {
		w := tmSetup(t, git, func(w *tmWorld) {
			w.write("a.txt", "a0\n", 0o644)
			w.write("b.txt", "b0\n", 0o644)
			w.write("gone.txt", "deleted by the second session\n", 0o644)
			w.write("common.txt", "c0\n", 0o644)
		})
		start := tmTree(t, w.ws)
		one, two := w.newSession("one"), w.newSession("two")
		m1 := w.shell(one.ID, `printf 's1\n' > s1.txt && printf 'a1\n' > a.txt`)
		m2 := w.shell(two.ID, `printf 's2\n' > s2.txt && printf 'b2\n' > b.txt && rm gone.txt`)
		w.shell(one.ID, `printf 's1 again\n' > s1.txt && mkdir s1dir && printf x > s1dir/x`)
		if got := tmPaths(w.diff(two.ID, "", false)); !slices.Equal(got, []string{"b.txt", "gone.txt", "s2.txt"}) {
			t.Errorf("the second session's diff lists %v", got)
		}
		if got := tmPaths(w.diff(one.ID, "", false)); !slices.Equal(got, []string{"a.txt", "s1.txt", "s1dir/x"}) {
			t.Errorf("the first session's diff lists %v", got)
		}

		now := tmTree(t, w.ws)
		twos := tmMtimes(t, w.ws, "b.txt", "s2.txt")
		w.revert(one.ID, m1.Info.ID, false)
		want := now.clone()
		want["a.txt"] = start["a.txt"]
		for _, p := range []string{"s1.txt", "s1dir", "s1dir/x"} {
			delete(want, p)
		}
		tmSameTree(t, "after reverting the first session", w.ws, want)
		tmSameMtimes(t, "the second session's files", w.ws, twos)

		w.revert(two.ID, m2.Info.ID, false)
		tmSameTree(t, "after reverting both sessions", w.ws, start)

		// Both change one file: the first session's revert would undo
		// the second's work there, so it is a conflict.
		w.unrevert(one.ID, false)
		w.unrevert(two.ID, false)
		tmSameTree(t, "after unreverting both sessions", w.ws, now)
		c1 := w.shell(one.ID, `printf 'from one\n' > common.txt`)
		c2 := w.shell(two.ID, `printf 'from two\n' > common.txt`)
		e := w.callErr("session/revert", session.RevertParams{SessionID: one.ID, MessageID: c1.Info.ID}, rpc.CodeConflict, "")
		if got := tmDataPaths(t, e); !slices.Equal(got, []string{"common.txt"}) {
			t.Errorf("Conflict data.paths = %v, want [common.txt]", got)
		}
		w.revert(two.ID, c2.Info.ID, false)
		if b, _ := os.ReadFile(w.path("common.txt")); string(b) != "from one\n" {
			t.Errorf("after reverting the second session common.txt holds %q, want the first session's", b)
		}
		w.revert(one.ID, c1.Info.ID, false)
		tmSameTree(t, "after reverting both sessions' last turns", w.ws, now)
	})
}

// TestTimeMachineLeavesIgnoredOversizeAndOutsideAlone: ignored files,
// files over the size cap and files outside the workspace reached through
// symlinks are never touched by a revert; a link pointing outside is
// restored as a link and never written through.
func TestTimeMachineLeavesIgnoredOversizeAndOutsideAlone(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("0123456789abcdef", 256) // 4 KiB, over the 1 KiB cap
	tmEachKind(t, func(t *testing.T, git bool) {
		var target, otherDir string
		w := tmSetup(t, git, func(w *tmWorld) {
			target = filepath.Join(w.outside, "target.txt")
			otherDir = filepath.Join(w.outside, "dir")
			tmWriteFile(t, target, "t0\n", 0o644)
			tmWriteFile(t, filepath.Join(otherDir, "o.txt"), "o0\n", 0o644)
			w.write(".gitignore", "build/\n*.log\n", 0o644)
			w.write("small.txt", "s0\n", 0o644)
			w.write("big.bin", big, 0o644)
			w.write("app.log", "l0\n", 0o644)
			w.write("build/x.o", "o0\n", 0o644)
			w.symlink("out", target)
			w.symlink("outdir", otherDir)
		}, "--max-file-size", "1024")
		ses := w.newSession("leave alone")
		start := tmTree(t, w.ws)
		m := w.shell(ses.ID, strings.Join([]string{
			`printf 's1\n' > small.txt`,
			`printf '%s' "$(cat big.bin)x" > big.bin`, // still oversize, changed
			`cp big.bin big2.bin`,                     // a new oversize file
			`printf 'l1\n' > app.log`,
			`printf 'o1\n' > build/x.o`,
			`printf 't1\n' > out`,          // writes the outside file through the link
			`printf 'p1\n' > outdir/p.txt`, // a new file outside, through a linked dir
			`rm out`,
			`ln -s ` + filepath.Join(w.outside, "dir", "o.txt") + ` out2`,
		}, " && "))
		after := tmTree(t, w.ws)
		outsideAfter := tmTree(t, w.outside)
		for _, p := range []string{"small.txt", "big.bin", "app.log", "build/x.o"} {
			if after[p] == start[p] {
				t.Fatalf("the turn did not change %s", p)
			}
		}
		if b, _ := os.ReadFile(target); string(b) != "t1\n" {
			t.Fatalf("the turn did not write through the link: %s holds %q", target, b)
		}
		stamps := tmMtimes(t, w.ws, "big.bin", "big2.bin", "app.log", "build/x.o")

		got := tmPaths(w.diff(ses.ID, m.Info.ID, false))
		for _, p := range []string{"small.txt", "out", "out2"} {
			if !slices.Contains(got, p) {
				t.Errorf("the turn's diff %v lacks %s", got, p)
			}
		}
		for _, p := range []string{"app.log", "build/x.o", "outdir/p.txt"} {
			if slices.Contains(got, p) {
				t.Errorf("the turn's diff %v lists %s", got, p)
			}
		}

		w.revert(ses.ID, m.Info.ID, false)
		want := start.clone()
		for _, p := range []string{"big.bin", "big2.bin", "app.log", "build/x.o"} {
			want[p] = after[p]
		}
		tmSameTree(t, "after the revert", w.ws, want)
		tmSameMtimes(t, "ignored and oversize files", w.ws, stamps)
		if d := tmDiffManifests(tmTree(t, w.outside), outsideAfter); len(d) > 0 {
			t.Errorf("the revert changed files outside the workspace:\n  %s", strings.Join(d, "\n  "))
		}
		if fi, err := os.Lstat(w.path("out")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("out is not restored as a symlink: %v, %v", fi, err)
		}
		w.unrevert(ses.ID, false)
		tmSameTree(t, "after the unrevert", w.ws, after)
		if d := tmDiffManifests(tmTree(t, w.outside), outsideAfter); len(d) > 0 {
			t.Errorf("the unrevert changed files outside the workspace:\n  %s", strings.Join(d, "\n  "))
		}
	})
}

// TestTimeMachineRevertSurvivesCrash: a daemon killed halfway through
// writing a revert's files finishes the revert when it starts again,
// before it serves anything.
func TestTimeMachineRevertSurvivesCrash(t *testing.T) {
	t.Parallel()
	tmEachKind(t, func(t *testing.T, git bool) {
		w := tmSetupEnv(t, git, func(w *tmWorld) {
			for i := range 8 {
				w.write(fmt.Sprintf("f%d.txt", i), fmt.Sprintf("f%d before\n", i), 0o644)
			}
			w.write("dir/d.txt", "d before\n", 0o644)
		}, []string{"SESSIOND_TEST_CRASH_POINT=revert-mid-apply"})
		ses := w.newSession("crash")
		start := tmTree(t, w.ws)
		m := w.shell(ses.ID, `for i in 0 1 2 3; do printf 'changed\n' > f$i.txt; done && rm f5.txt f6.txt && chmod 600 f7.txt && `+
			`for i in 0 1 2; do printf 'new\n' > n$i.txt; done && mkdir -p newdir/sub && printf 'x\n' > newdir/sub/x.txt && rm -r dir`)
		after := tmTree(t, w.ws)

		tmCallLost(t, w.c, "session/revert", session.RevertParams{SessionID: ses.ID, MessageID: m.Info.ID})
		w.d.wait()
		if ws, ok := w.d.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("the daemon did not die of SIGKILL at the crash point: %v", w.d.cmd.ProcessState)
		}
		mid := tmTree(t, w.ws)
		if len(tmDiffManifests(mid, start)) == 0 || len(tmDiffManifests(mid, after)) == 0 {
			t.Fatalf("the daemon did not die halfway through the revert:\n  %s", strings.Join(tmDiffManifests(mid, start), "\n  "))
		}

		w.d = w.s.serve()
		tmSameTree(t, "once the daemon is back", w.ws, start)
		w.c = w.s.dial()
		got := w.c.get(ses.ID)
		if got.Revert == nil || got.Revert.MessageID != m.Info.ID {
			t.Fatalf("after the restart the session's revert is %s, want to %s", mustJSON(got.Revert), m.Info.ID)
		}
		if n := len(w.messages(ses.ID, false)); n != 0 {
			t.Errorf("after the restart session/messages shows %d messages, want the reverted one hidden", n)
		}
		w.unrevert(ses.ID, false)
		tmSameTree(t, "after the unrevert", w.ws, after)
	})
}

// TestTimeMachineThousandDirectories: one `mkdir -p` making a thousand
// directories, and a file in each, is captured whole: the diff lists
// every file, and the revert removes them all.
func TestTimeMachineThousandDirectories(t *testing.T) {
	t.Parallel()
	tmEachKind(t, func(t *testing.T, git bool) {
		w := tmSetup(t, git, func(w *tmWorld) { w.write("README", "r\n", 0o644) })
		w.wait = 3 * patience // three thousand paths on a loaded machine
		ses := w.newSession("a thousand dirs")
		start := tmTree(t, w.ws)
		m := w.shell(ses.ID, `mkdir -p $(seq -f 'a/b%g/c' 1 1000) && for i in $(seq 1 1000); do echo "$i" > "a/b$i/c/f.txt"; done`)
		var want []string
		for i := 1; i <= 1000; i++ {
			want = append(want, fmt.Sprintf("a/b%d/c/f.txt", i))
		}
		slices.Sort(want)
		for _, scope := range []string{m.Info.ID, ""} {
			ds := w.diff(ses.ID, scope, false)
			got := tmPaths(ds)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("session/diff %q lists %d paths, want the 1000 files; missing %v", scope, len(got), tmMissing(want, got))
			}
			for _, d := range ds {
				if d.Status != snapshot.StatusAdded || d.Additions != 1 {
					t.Fatalf("session/diff %q: %s is %s with %d additions, want added with 1", scope, d.Path, d.Status, d.Additions)
				}
			}
		}
		w.revert(ses.ID, m.Info.ID, false)
		tmSameTree(t, "after the revert", w.ws, start)
	})
}

// TestTimeMachineInotifyOverflow: more inotify events than the kernel
// queue holds (fs.inotify.max_queued_events, 16384 by default), between
// two turns and within one, lose the events of the edits made after them;
// diffs, reverts and conflict checks must still be exact, through the
// watcher's full-scan fallback. To overflow the queue for sure without
// touching a global sysctl, the daemon is stopped (SIGSTOP) while the
// events are made, so nothing reads the queue, and continued after.
func TestTimeMachineInotifyOverflow(t *testing.T) {
	t.Parallel()
	queue := 16384
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			queue = n
		}
	}
	if queue > 1<<20 {
		t.Skipf("fs.inotify.max_queued_events is %d: too many events to make here", queue)
	}
	w := tmSetup(t, false, func(w *tmWorld) {
		w.write("y.txt", "y0\n", 0o644)
	})
	ses := w.newSession("overflow")
	pid := w.d.cmd.Process.Pid
	stopped := false
	stop := func() {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped = true
	}
	cont := func() {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		stopped = false
	}
	t.Cleanup(func() {
		if stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	// flood makes more events than the queue holds: attribute changes
	// to the files of many/ in turn (the kernel merges only an event
	// identical to the one before it), leaving their contents alone.
	const files = 1000
	flood := func() {
		t.Helper()
		for i := range queue/files + 2 {
			stamp := tmOld.Add(time.Duration(i) * time.Second)
			for f := range files {
				if err := os.Chtimes(w.path(fmt.Sprintf("many/f%d", f)), stamp, stamp); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	m1 := w.shell(ses.ID, fmt.Sprintf(`mkdir many && (cd many && seq -f 'f%%g' 0 %d | xargs touch) && printf 'x1\n' > x.txt`, files-1))
	if ds := w.diff(ses.ID, m1.Info.ID, false); len(ds) != files+1 {
		t.Fatalf("the first turn's diff lists %d files, want %d", len(ds), files+1)
	}

	// Between the turns: the flood, then a person's edit of a file the
	// session made, whose event the full queue drops.
	stop()
	flood()
	w.write("x.txt", "a person's edit\n", 0o644)
	cont()
	m2 := w.shell(ses.ID, `printf 'y2\n' > y.txt`)
	if got := tmPaths(w.diff(ses.ID, m2.Info.ID, false)); !slices.Equal(got, []string{"y.txt"}) {
		t.Errorf("the second turn's diff lists %v, want [y.txt]", got)
	}

	// Within a turn: the flood, then the turn's own changes, whose
	// events the full queue drops. (The turn's writes wait for the daemon,
	// which traces them: they happen once it runs again, while the queue
	// still holds the overflow.)
	out := w.outside
	done := make(chan error, 1)
	go func() {
		var m session.MessageWithParts
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		done <- w.c.Call(ctx, "session/shell", session.ShellParams{SessionID: ses.ID, Command: fmt.Sprintf(
			`touch %[1]s/started && while [ ! -e %[1]s/go ]; do sleep 0.01; done && printf 'z\n' > z.txt && rm y.txt && printf 'x3\n' > many/f7 && touch %[1]s/done`, out)}, &m)
	}()
	waitUntil(t, "the third turn to start", func() bool { return exists(filepath.Join(out, "started")) })
	stop()
	flood()
	tmWriteFile(t, filepath.Join(out, "go"), "", 0o644)
	cont()
	waitUntil(t, "the third turn's command to finish", func() bool { return exists(filepath.Join(out, "done")) })
	if err := <-done; err != nil {
		t.Fatalf("the third turn: %v", err)
	}
	waitUntil(t, "the daemon to report the inotify queue overflow", func() bool { return strings.Contains(w.d.stderr.String(), "overflow") })
	ms := w.messages(ses.ID, false)
	if len(ms) != 3 {
		t.Fatalf("session/messages shows %d messages, want 3", len(ms))
	}
	m3 := ms[2]
	byPath := map[string]string{}
	for _, d := range w.diff(ses.ID, m3.Info.ID, false) {
		byPath[d.Path] = d.Status
	}
	want := map[string]string{"z.txt": snapshot.StatusAdded, "y.txt": snapshot.StatusDeleted, "many/f7": snapshot.StatusModified}
	if !maps.Equal(byPath, want) {
		t.Fatalf("the third turn's diff is %v, want %v", byPath, want)
	}

	s3 := tmTree(t, w.ws)
	w.revert(ses.ID, m2.Info.ID, false)
	want2 := s3.clone()
	delete(want2, "z.txt")
	want2["y.txt"] = tmEntryOf(t, "y0\n", 0o644)
	want2["many/f7"] = tmEntryOf(t, "", 0o644)
	tmSameTree(t, "after reverting the last two turns", w.ws, want2)
	// The person's edit of x.txt was seen, though its event was lost:
	// reverting the turn that made x.txt would delete the edit.
	e := w.callErr("session/revert", session.RevertParams{SessionID: ses.ID, MessageID: m1.Info.ID}, rpc.CodeConflict, "")
	if got := tmDataPaths(t, e); !slices.Equal(got, []string{"x.txt"}) {
		t.Errorf("Conflict data.paths = %v, want [x.txt]", got)
	}
	tmSameTree(t, "after the refused revert", w.ws, want2)
	w.unrevert(ses.ID, false)
	tmSameTree(t, "after the unrevert", w.ws, s3)
	if st := w.c.status(); st.Watched != 1 || len(st.Degraded) != 0 {
		t.Errorf("daemon/status after the overflows: watched %d, degraded %v", st.Watched, st.Degraded)
	}
}

// TestTimeMachineRevertedMessagesMoveToFork: a revert hides its messages
// unless includeReverted; a new turn on the reverted session moves them
// into a fork (nothing is lost), which can still be unreverted, and goes
// on from the reverted files.
func TestTimeMachineRevertedMessagesMoveToFork(t *testing.T) {
	t.Parallel()
	w := tmSetup(t, true, func(w *tmWorld) { w.write("README", "r\n", 0o644) })
	ses := w.newSession("main line")
	cmds := []string{`printf '1\n' > f1`, `printf '2\n' > f2`, `printf '3\n' > f3`}
	var ids []string
	for _, c := range cmds {
		ids = append(ids, w.shell(ses.ID, c).Info.ID)
	}
	w.revert(ses.ID, ids[1], false)
	if got := tmIDs(w.messages(ses.ID, false)); !slices.Equal(got, ids[:1]) {
		t.Errorf("session/messages of the reverted session: %v, want %v", got, ids[:1])
	}
	if got := tmIDs(w.messages(ses.ID, true)); !slices.Equal(got, ids) {
		t.Errorf("session/messages includeReverted: %v, want %v", got, ids)
	}
	if exists(w.path("f2")) || exists(w.path("f3")) || !exists(w.path("f1")) {
		t.Fatalf("the revert did not leave f1 alone and remove f2 and f3")
	}

	m4 := w.shell(ses.ID, `test ! -e f2 && printf '4\n' > f4`)
	got := w.c.get(ses.ID)
	if got.Revert != nil {
		t.Errorf("after a new turn the session is still reverted: %s", mustJSON(got.Revert))
	}
	if got := tmIDs(w.messages(ses.ID, true)); !slices.Equal(got, []string{ids[0], m4.Info.ID}) {
		t.Errorf("the session's messages after the new turn: %v, want %v", got, []string{ids[0], m4.Info.ID})
	}
	var fork session.Session
	for _, s := range w.c.list(session.ListParams{ProjectID: w.proj.ID}).Sessions {
		if s.ID != ses.ID {
			fork = s
		}
	}
	// The fork names its source; the message it was cut at moved into
	// the fork, so the source no longer has it to name.
	if fork.ForkedFrom == nil || fork.ForkedFrom.SessionID != ses.ID {
		t.Fatalf("session/list shows no fork of %s: %s", ses.ID, mustJSON(w.c.list(session.ListParams{ProjectID: w.proj.ID})))
	}
	if got := tmCommands(w.messages(fork.ID, true)); !slices.Equal(got, cmds) {
		t.Errorf("the fork's messages hold %q, want the three turns %q", got, cmds)
	}
	if got := tmCommands(w.messages(fork.ID, false)); !slices.Equal(got, cmds[:1]) {
		t.Errorf("the fork shows %q, want only %q: it keeps the revert", got, cmds[:1])
	}

	// The undone work can be had back from the fork; the main line's
	// new file is not the fork's and stays.
	before := tmTree(t, w.ws)
	w.unrevert(fork.ID, false)
	want := before.clone()
	want["f2"], want["f3"] = tmEntryOf(t, "2\n", 0o644), tmEntryOf(t, "3\n", 0o644)
	tmSameTree(t, "after unreverting the fork", w.ws, want)
}

// TestTimeMachineForkAtMessage: session/fork {messageID} copies the
// messages before it into a new session and touches no file.
func TestTimeMachineForkAtMessage(t *testing.T) {
	t.Parallel()
	w := tmSetup(t, false, nil)
	ses := w.newSession("source")
	cmds := []string{`printf '1\n' > f1`, `printf '2\n' > f2`, `printf '3\n' > f3`}
	var ids []string
	for _, c := range cmds {
		ids = append(ids, w.shell(ses.ID, c).Info.ID)
	}
	tree, stamps := tmTree(t, w.ws), tmMtimes(t, w.ws)

	for _, tc := range []struct {
		at   string
		want []string
	}{
		{ids[1], cmds[:1]},
		{ids[0], nil},
		{"", cmds},
	} {
		var f session.Session
		w.c.call("session/fork", session.ForkParams{SessionID: ses.ID, MessageID: tc.at}, &f)
		if f.ID == ses.ID || f.ProjectID != ses.ProjectID || f.Directory != ses.Directory || f.ForkedFrom == nil ||
			f.ForkedFrom.SessionID != ses.ID || f.ForkedFrom.MessageID != tc.at || f.Revert != nil {
			t.Errorf("fork at %q: %s", tc.at, mustJSON(f))
		}
		if got := tmCommands(w.messages(f.ID, true)); !slices.Equal(got, tc.want) {
			t.Errorf("fork at %q holds %q, want %q", tc.at, got, tc.want)
		}
		if f.MessageCount != len(tc.want) {
			t.Errorf("fork at %q: messageCount %d, want %d", tc.at, f.MessageCount, len(tc.want))
		}
	}
	tmSameTree(t, "after forking", w.ws, tree)
	tmSameMtimes(t, "after forking", w.ws, stamps)
	if got := tmIDs(w.messages(ses.ID, true)); !slices.Equal(got, ids) {
		t.Errorf("the source's messages after forking: %v, want %v", got, ids)
	}
	w.callErr("session/fork", session.ForkParams{SessionID: ses.ID, MessageID: "msg_01M80000000000000000000000"}, rpc.CodeNotFound, "")
}

// TestTimeMachineDiff: session/diff of one turn and of the whole session,
// with line counts and patches; the session's summary agrees.
func TestTimeMachineDiff(t *testing.T) {
	t.Parallel()
	w := tmSetup(t, true, func(w *tmWorld) {
		w.write("old.txt", "o1\no2\no3\no4\n", 0o644)
	})
	ses := w.newSession("diff")
	m1 := w.shell(ses.ID, `printf 'l1\nl2\nl3\n' > a.txt`)
	m2 := w.shell(ses.ID, `printf 'l1\nL2\nl3\nl4\n' > a.txt && printf 'b1\nb2\n' > b.txt && rm old.txt && printf 'x\000y' > bin.dat`)
	m3 := w.shell(ses.ID, `echo nothing changes`)

	type row struct {
		status     string
		add, del   int
		binary     bool
		patchParts []string
	}
	check := func(what string, ds []snapshot.FileDiff, want map[string]row) {
		t.Helper()
		got := map[string]snapshot.FileDiff{}
		for _, d := range ds {
			got[d.Path] = d
		}
		if len(got) != len(want) || len(ds) != len(want) {
			t.Errorf("%s lists %v, want %d files", what, tmPaths(ds), len(want))
		}
		for p, r := range want {
			d, ok := got[p]
			if !ok {
				t.Errorf("%s lacks %s", what, p)
				continue
			}
			if d.Status != r.status || d.Additions != r.add || d.Deletions != r.del || d.Binary != r.binary {
				t.Errorf("%s: %s is %s +%d -%d binary %v, want %s +%d -%d binary %v", what, p, d.Status, d.Additions, d.Deletions, d.Binary, r.status, r.add, r.del, r.binary)
			}
			for _, part := range r.patchParts {
				if !strings.Contains(d.Patch, part) {
					t.Errorf("%s: the patch of %s lacks %q:\n%s", what, p, part, d.Patch)
				}
			}
			if len(r.patchParts) == 0 && d.Patch != "" {
				t.Errorf("%s: %s has a patch it should not:\n%s", what, p, d.Patch)
			}
		}
	}
	check("the first turn's diff", w.diff(ses.ID, m1.Info.ID, true), map[string]row{
		"a.txt": {snapshot.StatusAdded, 3, 0, false, []string{"--- /dev/null", "+++ b/a.txt", "+l1\n+l2\n+l3\n"}},
	})
	check("the second turn's diff", w.diff(ses.ID, m2.Info.ID, true), map[string]row{
		"a.txt":   {snapshot.StatusModified, 2, 1, false, []string{"--- a/a.txt", "+++ b/a.txt", "@@", "-l2\n+L2\n", "+l4\n"}},
		"b.txt":   {snapshot.StatusAdded, 2, 0, false, []string{"+b1\n+b2\n"}},
		"old.txt": {snapshot.StatusDeleted, 0, 4, false, []string{"+++ /dev/null", "-o1\n-o2\n-o3\n-o4\n"}},
		"bin.dat": {snapshot.StatusAdded, 0, 0, true, nil},
	})
	check("the second turn's diff without patches", w.diff(ses.ID, m2.Info.ID, false), map[string]row{
		"a.txt":   {snapshot.StatusModified, 2, 1, false, nil},
		"b.txt":   {snapshot.StatusAdded, 2, 0, false, nil},
		"old.txt": {snapshot.StatusDeleted, 0, 4, false, nil},
		"bin.dat": {snapshot.StatusAdded, 0, 0, true, nil},
	})
	check("a turn that changed nothing", w.diff(ses.ID, m3.Info.ID, true), nil)
	whole := w.diff(ses.ID, "", true)
	check("the session's diff", whole, map[string]row{
		"a.txt":   {snapshot.StatusAdded, 4, 0, false, []string{"--- /dev/null", "+l1\n+L2\n+l3\n+l4\n"}},
		"b.txt":   {snapshot.StatusAdded, 2, 0, false, []string{"+b1\n+b2\n"}},
		"old.txt": {snapshot.StatusDeleted, 0, 4, false, []string{"-o1\n"}},
		"bin.dat": {snapshot.StatusAdded, 0, 0, true, nil},
	})
	sum := w.c.get(ses.ID).Summary
	if sum == nil || sum.Files != 4 || sum.Additions != 6 || sum.Deletions != 4 {
		t.Errorf("the session's summary is %s, want 4 files, +6 -4", mustJSON(sum))
	}

	// After a revert the session's diff covers the visible turns only.
	w.revert(ses.ID, m2.Info.ID, false)
	check("the session's diff after reverting the second turn", w.diff(ses.ID, "", false), map[string]row{
		"a.txt": {snapshot.StatusAdded, 3, 0, false, nil},
	})
	w.callErr("session/diff", session.DiffParams{SessionID: ses.ID, MessageID: "msg_01M80000000000000000000000"}, rpc.CodeNotFound, "")
}

// TestTimeMachineUpload: session/upload writes a file as a recorded,
// revertible turn, and refuses any path that leaves the workspace or
// enters .git, writing nothing.
func TestTimeMachineUpload(t *testing.T) {
	t.Parallel()
	tmEachKind(t, func(t *testing.T, git bool) {
		var outDir string
		w := tmSetup(t, git, func(w *tmWorld) {
			outDir = filepath.Join(w.outside, "dir")
			tmWriteFile(t, filepath.Join(outDir, "keep.txt"), "outside\n", 0o644)
			w.write("README", "r\n", 0o644)
			w.symlink("linkdir", outDir)
		})
		ses := w.newSession("upload")
		start := tmTree(t, w.ws)
		b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

		var m session.MessageWithParts
		w.c.call("session/upload", session.UploadParams{SessionID: ses.ID, Path: "docs/new.md", Content: b64("# new\n")}, &m)
		if b, err := os.ReadFile(w.path("docs/new.md")); err != nil || string(b) != "# new\n" {
			t.Fatalf("the upload wrote %q, %v", b, err)
		}
		if len(m.Parts) == 0 || m.Parts[0].Type != session.PartFile || m.Parts[0].Path != "docs/new.md" {
			t.Errorf("the upload's message: %s", mustJSON(m))
		}
		if got := tmPaths(w.diff(ses.ID, m.Info.ID, false)); !slices.Equal(got, []string{"docs/new.md"}) {
			t.Errorf("the upload's diff lists %v", got)
		}
		var abs session.MessageWithParts
		w.c.call("session/upload", session.UploadParams{SessionID: ses.ID, Path: w.path("abs.bin"), Content: b64("\x00\x01")}, &abs)
		if b, _ := os.ReadFile(w.path("abs.bin")); string(b) != "\x00\x01" {
			t.Errorf("an upload to an absolute path inside the workspace wrote %q", b)
		}
		uploaded := tmTree(t, w.ws)

		outsideBefore := tmTree(t, w.outside)
		gitBefore := tmTree(t, filepath.Join(w.ws, ".git"))
		for _, bad := range []string{
			"../x",
			"docs/../../x",
			filepath.Join(w.outside, "x"),
			"linkdir/x",
			"linkdir/sub/x",
			".git/x",
			".git",
			"",
		} {
			w.callErr("session/upload", session.UploadParams{SessionID: ses.ID, Path: bad, Content: b64("bad\n")}, rpc.CodeInvalidParams, "path")
		}
		w.callErr("session/upload", session.UploadParams{SessionID: ses.ID, Path: "ok.txt", Content: "not base64!"}, rpc.CodeInvalidParams, "content")
		tmSameTree(t, "after the refused uploads", w.ws, uploaded)
		if d := tmDiffManifests(tmTree(t, w.outside), outsideBefore); len(d) > 0 {
			t.Errorf("a refused upload wrote outside the workspace:\n  %s", strings.Join(d, "\n  "))
		}
		if d := tmDiffManifests(tmTree(t, filepath.Join(w.ws, ".git")), gitBefore); len(d) > 0 {
			t.Errorf("a refused upload wrote into .git:\n  %s", strings.Join(d, "\n  "))
		}
		if n := len(w.messages(ses.ID, true)); n != 2 {
			t.Errorf("the session has %d messages, want the 2 uploads only", n)
		}

		w.revert(ses.ID, m.Info.ID, false)
		tmSameTree(t, "after reverting the uploads", w.ws, start)
	})
}

// TestTimeMachineShellTimeout: a shell turn past its timeout is reported
// as timed out, and its whole process group is killed.
func TestTimeMachineShellTimeout(t *testing.T) {
	t.Parallel()
	w := tmSetup(t, false, nil)
	ses := w.newSession("timeout")
	out := w.outside
	m := w.shellAny(ses.ID, fmt.Sprintf(`echo $$ > %[1]s/shell.pid; sleep 30 & echo $! > %[1]s/child.pid; sleep 30`, out), 500)
	st, meta := tmShellState(t, m), tmShellMeta(m)
	if st.Status != "error" || !strings.Contains(st.Error, "timed out") || meta["timedOut"] != true || meta["exitCode"] != float64(-1) {
		t.Errorf("the timed-out turn: status %q, error %q, metadata %v", st.Status, st.Error, meta)
	}
	for _, name := range []string{"shell.pid", "child.pid"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatalf("the command did not start: %v", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %q", name, b)
		}
		waitUntil(t, fmt.Sprintf("process %d (%s) to be killed", pid, name), func() bool { return tmProcessGone(pid) })
	}
	if got := tmIDs(w.messages(ses.ID, false)); !slices.Equal(got, []string{m.Info.ID}) {
		t.Errorf("session/messages: %v, want the timed-out turn", got)
	}
	w.shell(ses.ID, `true`) // the session is free again
}

// TestTimeMachineRevertWhileBusy: revert and unrevert answer Busy while a
// turn of the session runs, and work once it is over.
func TestTimeMachineRevertWhileBusy(t *testing.T) {
	t.Parallel()
	w := tmSetup(t, false, nil)
	ses := w.newSession("busy")
	m1 := w.shell(ses.ID, `printf '1\n' > f1`)
	out := w.outside
	t.Cleanup(func() { os.WriteFile(filepath.Join(out, "release"), nil, 0o644) })
	other := w.s.dial()
	done := make(chan error, 1)
	go func() {
		var m session.MessageWithParts
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		done <- other.Call(ctx, "session/shell", session.ShellParams{SessionID: ses.ID, TimeoutMs: patience.Milliseconds(), Command: fmt.Sprintf(
			`touch %[1]s/started; while [ ! -e %[1]s/release ]; do sleep 0.02; done; printf '2\n' > f2`, out)}, &m)
	}()
	waitUntil(t, "the turn to start", func() bool { return exists(filepath.Join(out, "started")) })
	tree := tmTree(t, w.ws)
	w.callErr("session/revert", session.RevertParams{SessionID: ses.ID, MessageID: m1.Info.ID}, rpc.CodeBusy, "")
	w.callErr("session/revert", session.RevertParams{SessionID: ses.ID, MessageID: m1.Info.ID, Force: true}, rpc.CodeBusy, "")
	w.callErr("session/unrevert", session.UnrevertParams{SessionID: ses.ID}, rpc.CodeBusy, "")
	tmSameTree(t, "after the refused revert", w.ws, tree)
	if got := w.c.get(ses.ID); got.Revert != nil {
		t.Errorf("the refused revert left the session reverted: %s", mustJSON(got.Revert))
	}

	tmWriteFile(t, filepath.Join(out, "release"), "", 0o644)
	if err := <-done; err != nil {
		t.Fatalf("the running turn: %v", err)
	}
	w.revert(ses.ID, m1.Info.ID, false)
	if exists(w.path("f1")) || exists(w.path("f2")) {
		t.Errorf("the revert after the turn left f1 or f2")
	}
}

// TestTimeMachineFileChanged: a client that opened the project hears of
// files written outside any turn.
func TestTimeMachineFileChanged(t *testing.T) {
	t.Parallel()
	w := tmSetup(t, true, nil)
	w.write("hello.txt", "hi\n", 0o644)
	e := tmExpectFileChanged(t, w.c, w.proj.ID, "hello.txt")
	if e.Properties.Kind == "" {
		t.Errorf("file.changed without a kind: %+v", e)
	}
	if err := os.Remove(w.path("hello.txt")); err != nil {
		t.Fatal(err)
	}
	// Under load the write's events may come in two batches: skip to
	// the deletion.
	for e.Properties.Kind != "deleted" {
		e = tmExpectFileChanged(t, w.c, w.proj.ID, "hello.txt")
	}
	// A second client opening the workspace hears of changes too.
	other := w.s.dial()
	other.open(w.ws)
	w.write("sub/two.txt", "2\n", 0o644)
	tmExpectFileChanged(t, other, w.proj.ID, "sub/two.txt")
	tmExpectFileChanged(t, w.c, w.proj.ID, "sub/two.txt")
}

// TestTimeMachineLargeTurn: a turn that changes more files than one store
// transaction can record (12,000 here) is recorded, diffed, reverted and
// forked like any other.
func TestTimeMachineLargeTurn(t *testing.T) {
	t.Parallel()
	w := tmSetup(t, false, func(w *tmWorld) { w.write("README", "r\n", 0o644) })
	w.wait = 3 * patience // twelve thousand files on a loaded machine
	ses := w.newSession("large turn")
	start := tmTree(t, w.ws)
	const dirs, per = 3, 4000
	m := w.shell(ses.ID, fmt.Sprintf(`for d in $(seq 1 %d); do mkdir -p big/d$d && (cd big/d$d && seq -f 'f%%g' 1 %d | xargs touch); done`, dirs, per))
	if ds := w.diff(ses.ID, "", false); len(ds) != dirs*per {
		t.Fatalf("the session's diff lists %d files, want %d", len(ds), dirs*per)
	}
	var f session.Session
	w.call("session/fork", session.ForkParams{SessionID: ses.ID}, &f)
	w.revert(ses.ID, m.Info.ID, false)
	tmSameTree(t, "after the revert", w.ws, start)
	// A new turn moves the reverted one into a fork of its own.
	w.shell(ses.ID, `true`)
	if n := len(w.c.list(session.ListParams{ProjectID: w.proj.ID}).Sessions); n != 3 {
		t.Errorf("session/list shows %d sessions, want the session and its two forks", n)
	}
}

// TestTimeMachineShellOutput: a shell turn records its exit code and
// output; output over the inline cap is cut in the message and kept whole
// for session/output.
func TestTimeMachineShellOutput(t *testing.T) {
	t.Parallel()
	w := tmSetup(t, false, nil)
	ses := w.newSession("output")

	m := w.shellAny(ses.ID, `echo to stdout; echo to stderr >&2; exit 3`, 0)
	st, meta := tmShellState(t, m), tmShellMeta(m)
	if st.Status != "error" || meta["exitCode"] != float64(3) || st.Output != "to stdout\nto stderr\n" {
		t.Errorf("a failing command: status %q, exit code %v, output %q", st.Status, meta["exitCode"], st.Output)
	}

	m = w.shell(ses.ID, `seq 1 50000`)
	var want strings.Builder
	for i := 1; i <= 50000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	st, meta = tmShellState(t, m), tmShellMeta(m)
	if meta["truncated"] != true || len(st.Output) >= want.Len() || !strings.HasPrefix(st.Output, "1\n2\n3\n") || !strings.HasSuffix(st.Output, "49999\n50000\n") {
		t.Errorf("a long output: truncated %v, %d of %d bytes inline", meta["truncated"], len(st.Output), want.Len())
	}
	var full session.OutputResult
	w.c.call("session/output", session.OutputParams{SessionID: ses.ID, PartID: m.Parts[0].ID}, &full)
	if full.Output != want.String() {
		t.Errorf("session/output returned %d bytes, want the whole %d", len(full.Output), want.Len())
	}
	w.callErr("session/output", session.OutputParams{SessionID: ses.ID, PartID: "prt_01M80000000000000000000000"}, rpc.CodeNotFound, "")
}
