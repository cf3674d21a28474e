package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

// TestCLIListsTheProjectsSessions: `sessiond ls` lists the sessions of the
// project holding the current directory, made in any clone or
// subdirectory of it, with their directories; --here narrows the list to
// the current directory; listing a directory of no project creates none.
func TestCLIListsTheProjectsSessions(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	s := newSandbox(t)
	repo := s.dir("repo")
	git(t, repo, "init", "-q")
	os.WriteFile(filepath.Join(repo, "README"), []byte("hi\n"), 0o644)
	sub := s.dir("repo/sub")
	os.WriteFile(filepath.Join(sub, "x.go"), []byte("package x\n"), 0o644)
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "first")
	clone := filepath.Join(s.base, "clone")
	git(t, s.base, "clone", "-q", repo, clone)
	plain := s.dir("plain")

	atRoot, _, _ := strings.Cut(s.runOK(repo, "new", "--title", "at the root"), "\t")
	inSub, _, _ := strings.Cut(s.runOK(sub, "new", "--title", "in sub"), "\t")

	columns := []string{"ID", "TITLE", "MESSAGES", "UPDATED", "DIRECTORY"}
	// From the clone, which no verb opened yet, and from the subdirectory:
	// both sessions, newest first, each with its directory.
	for _, dir := range []string{clone, sub, filepath.Join(clone, "sub")} {
		rows := tableRows(t, s.runOK(dir, "ls"), columns...)
		if len(rows) != 2 || !strings.HasPrefix(rows[0], inSub) || !strings.HasSuffix(rows[0], sub) ||
			!strings.HasPrefix(rows[1], atRoot) || !strings.HasSuffix(rows[1], repo) {
			t.Errorf("ls in %s: rows %q, want %s (%s) then %s (%s)", dir, rows, inSub, sub, atRoot, repo)
		}
	}
	var res session.ListResult
	if err := json.Unmarshal([]byte(s.runOK(clone, "ls", "--json")), &res); err != nil || len(res.Sessions) != 2 {
		t.Errorf("ls --json in the clone: %+v, %v", res, err)
	}

	// --here: the sessions of this directory (and below) only.
	if rows := tableRows(t, s.runOK(sub, "ls", "--here"), columns...); len(rows) != 1 || !strings.HasPrefix(rows[0], inSub) {
		t.Errorf("ls --here in the subdirectory: %q", rows)
	}
	if rows := tableRows(t, s.runOK("", "ls", "--here", "--dir", repo), columns...); len(rows) != 2 {
		t.Errorf("ls --here --dir repo: %q", rows)
	}
	for _, dir := range []string{clone, plain} {
		if out := s.runOK(dir, "ls", "--here"); !strings.Contains(out, "No sessions") {
			t.Errorf("ls --here in %s: %q", dir, out)
		}
	}

	// Listing never creates a project.
	var before, after daemon.DaemonStatus
	json.Unmarshal([]byte(s.runOK("", "status", "--json")), &before)
	if out := s.runOK(plain, "ls"); !strings.Contains(out, "No sessions") {
		t.Errorf("ls in a directory of no project: %q", out)
	}
	json.Unmarshal([]byte(s.runOK("", "status", "--json")), &after)
	if before.Projects != 1 || after.Projects != before.Projects {
		t.Errorf("projects before ls of a plain directory: %d, after: %d; want 1 and 1", before.Projects, after.Projects)
	}

	// The protocol: session/list {directory, project: true}.
	c := s.dial()
	var got session.ListResult
	c.call("session/list", map[string]any{"directory": clone, "project": true}, &got)
	var ids []string
	for _, ses := range got.Sessions {
		ids = append(ids, ses.ID)
	}
	if !slices.Equal(ids, []string{inSub, atRoot}) {
		t.Errorf("session/list {directory: clone, project: true}: %v", ids)
	}
	e := c.callErr("session/list", map[string]any{"project": true})
	errCheck(t, "session/list {project: true} without a directory", e, rpc.CodeInvalidParams, "project")
}
