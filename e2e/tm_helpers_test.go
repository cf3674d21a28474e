package e2e

// Helpers of the time machine tests (timemachine_test.go): a workspace
// with a daemon watching it, tree manifests to compare whole workspaces
// byte for byte, and typed calls of the time machine's methods.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/workspace"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// tmKinds are the two kinds of workspace every revert rule is checked in.
var tmKinds = []struct {
	name string
	git  bool
}{{"git", true}, {"plain", false}}

// tmEachKind runs fn as a parallel subtest for a git and a plain workspace.
func tmEachKind(t *testing.T, fn func(t *testing.T, git bool)) {
	t.Helper()
	for _, k := range tmKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			if k.git {
				if _, err := exec.LookPath("git"); err != nil {
					t.Skip("git not installed")
				}
			}
			fn(t, k.git)
		})
	}
}

// tmWorld is one test's workspace, a directory outside it, and a daemon
// with a client that opened the workspace.
type tmWorld struct {
	t       *testing.T
	s       *sandbox
	d       *proc
	c       *client
	ws      string // the workspace root, symlinks resolved
	outside string // a directory outside the workspace
	git     bool
	proj    workspace.Project
	// wait bounds each call of the helpers below: patience, longer for
	// the tests of large trees.
	wait time.Duration
}

// call makes a request that must succeed within w.wait.
func (w *tmWorld) call(method string, params, result any) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), w.wait)
	defer cancel()
	if err := w.c.Call(ctx, method, params, result); err != nil {
		w.t.Fatalf("%s %s: %v", method, mustJSON(params), err)
	}
}

// tmTempDir is t.TempDir with symlinks resolved, as the daemon reports
// paths.
func tmTempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// tmSetup makes a workspace (and, when git, a repository with every file
// setup wrote committed), then starts a daemon with serveArgs and opens
// the workspace. The workspace and outside dirs are made before the
// sandbox, so cleanup kills the daemon before they are removed.
func tmSetup(t *testing.T, git bool, setup func(w *tmWorld), serveArgs ...string) *tmWorld {
	t.Helper()
	return tmSetupEnv(t, git, setup, nil, serveArgs...)
}

// tmSetupEnv is tmSetup with extra environment for the daemon.
func tmSetupEnv(t *testing.T, git bool, setup func(w *tmWorld), env []string, serveArgs ...string) *tmWorld {
	t.Helper()
	w := &tmWorld{t: t, ws: tmTempDir(t), outside: tmTempDir(t), git: git, wait: patience}
	if git {
		tmGit(t, w.ws, "init", "-q")
	}
	if setup != nil {
		setup(w)
	}
	if git {
		tmGit(t, w.ws, "add", "-A")
		tmGit(t, w.ws, "commit", "-q", "--allow-empty", "-m", "initial")
	}
	w.s = newSandbox(t)
	cmd := w.s.command(append([]string{"serve"}, serveArgs...)...)
	cmd.Env = append(cmd.Env, env...)
	w.d = w.s.start(cmd)
	w.s.waitListening(w.d)
	w.c = w.s.dial()
	w.proj = w.c.open(w.ws)
	wantVCS := workspace.VCSNone
	if git {
		wantVCS = workspace.VCSGit
	}
	if w.proj.VCS != wantVCS || w.proj.Root != w.ws {
		t.Fatalf("workspace/open %s: project %+v, want vcs %s rooted there", w.ws, w.proj, wantVCS)
	}
	w.waitWatched(1)
	return w
}

// tmGit runs git in dir with a config of its own.
func tmGit(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@example.com", "-c", "init.defaultBranch=main", "-c", "core.fsmonitor=false"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// waitWatched waits until daemon/status counts n watched checkouts, none
// degraded: the watcher starts in the background after workspace/open.
func (w *tmWorld) waitWatched(n int) {
	w.t.Helper()
	waitUntil(w.t, "the workspace to be watched", func() bool { return w.c.status().Watched >= n })
	if st := w.c.status(); st.Watched != n || len(st.Degraded) != 0 {
		w.t.Fatalf("daemon/status: watched %d (want %d), degraded %v", st.Watched, n, st.Degraded)
	}
}

// path is the absolute path of a workspace-relative one.
func (w *tmWorld) path(rel string) string { return filepath.Join(w.ws, filepath.FromSlash(rel)) }

// write writes a file in the workspace as a person would, making parents.
func (w *tmWorld) write(rel, content string, mode fs.FileMode) {
	w.t.Helper()
	tmWriteFile(w.t, w.path(rel), content, mode)
}

func tmWriteFile(t *testing.T, p, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile keeps the mode of an existing file
		t.Fatal(err)
	}
}

// symlink makes a link in the workspace.
func (w *tmWorld) symlink(rel, target string) {
	w.t.Helper()
	if err := os.MkdirAll(filepath.Dir(w.path(rel)), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Symlink(target, w.path(rel)); err != nil {
		w.t.Fatal(err)
	}
}

// tmOld is the mtime tests give files a person wrote, so that any later
// rewrite shows.
var tmOld = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

// age sets the mtime of workspace files to tmOld.
func (w *tmWorld) age(rels ...string) {
	w.t.Helper()
	for _, rel := range rels {
		if err := os.Chtimes(w.path(rel), tmOld, tmOld); err != nil {
			w.t.Fatal(err)
		}
	}
}

// newSession creates a session in the workspace.
func (w *tmWorld) newSession(title string) session.Session {
	w.t.Helper()
	return w.c.create(session.CreateParams{Directory: w.ws, Title: title})
}

// shell runs a shell turn that must exit 0.
func (w *tmWorld) shell(sessionID, command string) session.MessageWithParts {
	w.t.Helper()
	m := w.shellAny(sessionID, command, 0)
	if st := tmShellState(w.t, m); st.Status != "completed" {
		w.t.Fatalf("shell %q: status %s, error %q, output:\n%s", command, st.Status, st.Error, st.Output)
	}
	return m
}

// shellAny runs a shell turn whatever its outcome.
func (w *tmWorld) shellAny(sessionID, command string, timeoutMs int64) session.MessageWithParts {
	w.t.Helper()
	var m session.MessageWithParts
	w.call("session/shell", session.ShellParams{SessionID: sessionID, Command: command, TimeoutMs: timeoutMs}, &m)
	if m.Info.ID == "" || m.Info.SessionID != sessionID || m.Info.Snapshot == nil || m.Info.Snapshot.Before == "" || m.Info.Snapshot.After == "" {
		w.t.Fatalf("shell %q: a message without its snapshots: %s", command, mustJSON(m))
	}
	return m
}

// tmShellState is the tool state of a shell turn's message.
func tmShellState(t *testing.T, m session.MessageWithParts) session.ToolState {
	t.Helper()
	for _, p := range m.Parts {
		if p.Type == session.PartTool && p.Tool == "shell" && p.State != nil {
			return *p.State
		}
	}
	t.Fatalf("message %s has no shell part: %s", m.Info.ID, mustJSON(m))
	return session.ToolState{}
}

// tmShellMeta is the metadata of a shell turn's tool part.
func tmShellMeta(m session.MessageWithParts) map[string]any {
	for _, p := range m.Parts {
		if p.Type == session.PartTool && p.Tool == "shell" {
			return p.Metadata
		}
	}
	return nil
}

// revert reverts a session to a message; it must succeed.
func (w *tmWorld) revert(sessionID, messageID string, force bool) session.Session {
	w.t.Helper()
	var s session.Session
	w.call("session/revert", session.RevertParams{SessionID: sessionID, MessageID: messageID, Force: force}, &s)
	if s.Revert == nil || s.Revert.MessageID != messageID {
		w.t.Fatalf("session/revert to %s: the session's revert is %s", messageID, mustJSON(s.Revert))
	}
	return s
}

// unrevert unreverts a session; it must succeed.
func (w *tmWorld) unrevert(sessionID string, force bool) session.Session {
	w.t.Helper()
	var s session.Session
	w.call("session/unrevert", session.UnrevertParams{SessionID: sessionID, Force: force}, &s)
	if s.Revert != nil {
		w.t.Fatalf("session/unrevert: the session is still reverted: %s", mustJSON(s.Revert))
	}
	return s
}

// diff is session/diff of a whole session (messageID "") or one turn.
func (w *tmWorld) diff(sessionID, messageID string, patch bool) []snapshot.FileDiff {
	w.t.Helper()
	var ds []snapshot.FileDiff
	w.call("session/diff", session.DiffParams{SessionID: sessionID, MessageID: messageID, Patch: patch}, &ds)
	return ds
}

// messages is session/messages.
func (w *tmWorld) messages(sessionID string, includeReverted bool) []session.MessageWithParts {
	w.t.Helper()
	var ms []session.MessageWithParts
	w.call("session/messages", session.MessagesParams{SessionID: sessionID, IncludeReverted: includeReverted}, &ms)
	return ms
}

// tmIDs lists the IDs of messages.
func tmIDs(ms []session.MessageWithParts) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Info.ID)
	}
	return out
}

// tmCommands lists the commands of shell turns, in order.
func tmCommands(ms []session.MessageWithParts) []string {
	var out []string
	for _, m := range ms {
		for _, p := range m.Parts {
			if p.Type == session.PartTool && p.Tool == "shell" && p.State != nil {
				out = append(out, p.State.Title)
			}
		}
	}
	return out
}

// tmPaths lists the paths of file diffs.
func tmPaths(ds []snapshot.FileDiff) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.Path)
	}
	return out
}

// tmDataPaths is the data.paths of a Conflict error, sorted.
func tmDataPaths(t *testing.T, e *rpc.Error) []string {
	t.Helper()
	raw, ok := e.Data["paths"].([]any)
	if !ok {
		t.Fatalf("Conflict without data.paths: %s (data %v)", e.Message, e.Data)
	}
	var out []string
	for _, p := range raw {
		s, ok := p.(string)
		if !ok {
			t.Fatalf("data.paths holds a %T: %v", p, raw)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// tmEntry is what one path of a tree is: its type, and for a file its
// permission bits and content hash, for a link its target. Directory
// modes are left out: snapshots do not keep them, as git does not.
type tmEntry struct {
	Type   string
	Mode   fs.FileMode
	Hash   string
	Target string
}

func (e tmEntry) String() string {
	switch e.Type {
	case "file":
		return fmt.Sprintf("file %v %s", e.Mode, e.Hash[:12])
	case "symlink":
		return "symlink -> " + e.Target
	}
	return e.Type
}

// tmManifest is a whole tree: path (slash-separated, relative) → entry.
type tmManifest map[string]tmEntry

// tmTree reads the manifest of the tree at root, leaving out the root's
// .git directory (compared on its own where it matters).
func tmTree(t *testing.T, root string) tmManifest {
	t.Helper()
	return tmTreeSkip(t, root, ".git")
}

func tmTreeSkip(t *testing.T, root string, skip ...string) tmManifest {
	t.Helper()
	m := tmManifest{}
	if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
		return m // no tree: an empty manifest
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
		if slices.Contains(skip, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			m[rel] = tmEntry{Type: "dir"}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			m[rel] = tmEntry{Type: "symlink", Target: target}
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			m[rel] = tmEntry{Type: "file", Mode: fi.Mode().Perm(), Hash: hex.EncodeToString(sum[:])}
		default:
			m[rel] = tmEntry{Type: "other " + fi.Mode().Type().String()}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read tree %s: %v", root, err)
	}
	return m
}

// clone copies a manifest, to derive an expected one.
func (m tmManifest) clone() tmManifest {
	out := make(tmManifest, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// tmDiffManifests lists how got differs from want, a line per path, at
// most a screenful.
func tmDiffManifests(got, want tmManifest) []string {
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		switch {
		case !gok:
			out = append(out, fmt.Sprintf("%s: missing, want %s", k, w))
		case !wok:
			out = append(out, fmt.Sprintf("%s: %s, want absent", k, g))
		case g != w:
			out = append(out, fmt.Sprintf("%s: %s, want %s", k, g, w))
		}
	}
	if len(out) > 40 {
		out = append(out[:40], fmt.Sprintf("... and %d more", len(out)-40))
	}
	return out
}

// tmSameTree fails the test unless the tree at root is want.
func tmSameTree(t *testing.T, what, root string, want tmManifest) {
	t.Helper()
	if d := tmDiffManifests(tmTree(t, root), want); len(d) > 0 {
		t.Fatalf("%s: the workspace differs from what it should be:\n  %s", what, strings.Join(d, "\n  "))
	}
}

// tmEntryOf is the manifest entry of a file holding content.
func tmEntryOf(t *testing.T, content string, mode os.FileMode) tmEntry {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	tmWriteFile(t, p, content, mode)
	return tmTreeSkip(t, filepath.Dir(p))["f"]
}

// tmMissing lists what want holds and got lacks, at most ten.
func tmMissing(want, got []string) []string {
	var out []string
	for _, p := range want {
		if !slices.Contains(got, p) {
			out = append(out, p)
			if len(out) == 10 {
				break
			}
		}
	}
	return out
}

// tmMtimes reads the modification times of the files and links under
// root (directories left out: their times change whenever an entry does),
// or of the given paths only.
func tmMtimes(t *testing.T, root string, only ...string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	if len(only) > 0 {
		for _, rel := range only {
			fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(rel)))
			if err != nil {
				t.Fatalf("stat %s: %v", rel, err)
			}
			out[rel] = fi.ModTime()
		}
		return out
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
		if d.IsDir() {
			if rel == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[rel] = fi.ModTime()
		return nil
	})
	if err != nil {
		t.Fatalf("read mtimes of %s: %v", root, err)
	}
	return out
}

// tmSameMtimes fails the test unless every path of want has its mtime.
func tmSameMtimes(t *testing.T, what, root string, want map[string]time.Time) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	got := tmMtimes(t, root, keys...)
	var bad []string
	for _, k := range keys {
		if !got[k].Equal(want[k]) {
			bad = append(bad, fmt.Sprintf("%s: mtime %s, was %s", k, got[k].Format(time.RFC3339Nano), want[k].Format(time.RFC3339Nano)))
		}
	}
	slices.Sort(bad)
	if len(bad) > 0 {
		t.Fatalf("%s: files were rewritten:\n  %s", what, strings.Join(bad, "\n  "))
	}
}

// callErr makes a request that must fail with the given protocol error
// code, and checks data.kind.
func (w *tmWorld) callErr(method string, params any, code int64, field string) *rpc.Error {
	w.t.Helper()
	e := w.c.callErr(method, params)
	errCheck(w.t, method, e, code, field)
	return e
}

// tmCallLost makes a request the daemon dies during: the call must end
// with a connection error, not a protocol error.
func tmCallLost(t *testing.T, c *client, method string, params any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var res json.RawMessage
	err := c.Call(ctx, method, params, &res)
	var re *rpc.Error
	switch {
	case err == nil:
		t.Fatalf("%s: want the connection lost, got result %s", method, res)
	case errors.As(err, &re):
		t.Fatalf("%s: want the connection lost, got protocol error %d %s", method, re.Code, re.Message)
	case ctx.Err() != nil:
		t.Fatalf("%s: no answer and no lost connection within %s", method, patience)
	}
	return err
}

// tmRawEvent is a session/event with the properties of file.changed.
type tmRawEvent struct {
	Type       string `json:"type"`
	Properties struct {
		ProjectID string `json:"projectID"`
		Path      string `json:"path"`
		Kind      string `json:"kind"`
		SessionID string `json:"sessionID"`
	} `json:"properties"`
}

// tmExpectFileChanged waits for a file.changed event about rel in project.
func tmExpectFileChanged(t *testing.T, c *client, projectID, rel string) tmRawEvent {
	t.Helper()
	for {
		e := c.events.next(t)
		if e.Type != "file.changed" {
			continue
		}
		var r tmRawEvent
		if err := json.Unmarshal(e.Raw, &r); err != nil {
			t.Fatalf("file.changed is not JSON: %s", e.Raw)
		}
		if r.Properties.Path == rel && r.Properties.ProjectID == projectID {
			return r
		}
	}
}

// tmProcessGone reports whether pid has exited (or is a zombie nobody
// reaped yet: it runs no more).
func tmProcessGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses, which may itself
	// hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] == 'Z' || s[i+2] == 'X'
}
