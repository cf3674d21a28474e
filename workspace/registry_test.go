package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/store"
)

func TestMain(m *testing.M) {
	// The git the Registry runs must not see the machine's configuration
	// either.
	os.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	os.Exit(m.Run())
}

// runGit runs git in dir with a fixed identity and no machine config, and
// returns its trimmed output.
func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git is needed for this test: %v", err)
	}
	full := append([]string{"-C", dir, "-c", "user.email=t@t", "-c", "user.name=t", "-c", "init.defaultBranch=main"}, args...)
	cmd := exec.Command(bin, full...)
	cmd.Env = append(gitEnv(os.Environ()), "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newRepo makes a repository with one commit in dir and returns the commit.
func newRepo(t *testing.T, dir string) string {
	t.Helper()
	mkdir(t, dir)
	runGit(t, dir, "init", "-q")
	runGit(t, dir, "commit", "-q", "--allow-empty", "-m", "first")
	return runGit(t, dir, "rev-parse", "HEAD")
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// canonical is what the Registry should report for dir.
func canonical(t *testing.T, dir string) string {
	t.Helper()
	c, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func openStore(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newTestRegistry(t *testing.T) (*Registry, *store.DB) {
	t.Helper()
	db := openStore(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	return NewRegistry(db, nil), db
}

// identityOwner returns the project ID stored under identity, or "".
func identityOwner(t *testing.T, db *store.DB, identity string) string {
	t.Helper()
	var id []byte
	err := db.View(context.Background(), func(txn *store.Txn) error {
		var err error
		id, err = txn.GetRaw(store.KeyProjectIdentity(identity))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(id)
}

func mustOpen(t *testing.T, r *Registry, dir string) Project {
	t.Helper()
	p, _, err := r.Open(context.Background(), dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return p
}

// testClock is a settable clock for Registry.now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestOpen(t *testing.T) {
	type want struct {
		dir       string   // canonical directory Open returns
		root      string   // Project.Root
		worktrees []string // Project.Worktrees
		vcs       string
		identity  string   // must map to the project
		sameAs    string   // a directory opened before that must map to the same project
		absent    []string // identities that must not exist
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, r *Registry, base string) (dir string, w want)
	}{
		{"non-git directory", func(t *testing.T, r *Registry, base string) (string, want) {
			d := mkdir(t, filepath.Join(base, "plain"))
			return d, want{dir: d, root: d, vcs: VCSNone, identity: "path:" + d}
		}},
		{"subdirectory of a non-git project", func(t *testing.T, r *Registry, base string) (string, want) {
			d := mkdir(t, filepath.Join(base, "plain"))
			sub := mkdir(t, filepath.Join(d, "a", "b"))
			mustOpen(t, r, d)
			return sub, want{dir: sub, root: d, vcs: VCSNone, identity: "path:" + d, sameAs: d, absent: []string{"path:" + sub}}
		}},
		{"the longest known root wins", func(t *testing.T, r *Registry, base string) (string, want) {
			outer := mkdir(t, filepath.Join(base, "outer"))
			inner := mkdir(t, filepath.Join(outer, "inner"))
			sub := mkdir(t, filepath.Join(inner, "sub"))
			mustOpen(t, r, inner)
			mustOpen(t, r, outer)
			return sub, want{dir: sub, root: inner, vcs: VCSNone, identity: "path:" + inner, sameAs: inner}
		}},
		{"subdirectory of a git repository", func(t *testing.T, r *Registry, base string) (string, want) {
			repo := filepath.Join(base, "repo")
			head := newRepo(t, repo)
			sub := mkdir(t, filepath.Join(repo, "src", "pkg"))
			return sub, want{dir: sub, root: repo, vcs: VCSGit, identity: "git:" + head}
		}},
		{"git repository inside a non-git project", func(t *testing.T, r *Registry, base string) (string, want) {
			plain := mkdir(t, filepath.Join(base, "plain"))
			mustOpen(t, r, plain)
			repo := filepath.Join(plain, "repo")
			head := newRepo(t, repo)
			return repo, want{dir: repo, root: repo, vcs: VCSGit, identity: "git:" + head}
		}},
		{"clone shares the project", func(t *testing.T, r *Registry, base string) (string, want) {
			repo := filepath.Join(base, "repo")
			head := newRepo(t, repo)
			mustOpen(t, r, repo)
			runGit(t, base, "clone", "-q", repo, "clone")
			clone := filepath.Join(base, "clone")
			mustOpen(t, r, clone) // twice: the worktree is added once
			return clone, want{dir: clone, root: repo, worktrees: []string{clone}, vcs: VCSGit, identity: "git:" + head, sameAs: repo}
		}},
		{"git worktree shares the project", func(t *testing.T, r *Registry, base string) (string, want) {
			repo := filepath.Join(base, "repo")
			head := newRepo(t, repo)
			mustOpen(t, r, repo)
			wt := filepath.Join(base, "wt")
			runGit(t, repo, "worktree", "add", "-q", wt)
			return wt, want{dir: wt, root: repo, worktrees: []string{wt}, vcs: VCSGit, identity: "git:" + head, sameAs: repo}
		}},
		{"several root commits: the smallest", func(t *testing.T, r *Registry, base string) (string, want) {
			repo := filepath.Join(base, "repo")
			first := newRepo(t, repo)
			runGit(t, repo, "checkout", "-q", "--orphan", "other")
			runGit(t, repo, "commit", "-q", "--allow-empty", "-m", "other root")
			second := runGit(t, repo, "rev-parse", "HEAD")
			runGit(t, repo, "checkout", "-q", "main")
			runGit(t, repo, "merge", "-q", "--allow-unrelated-histories", "-m", "join", "other")
			return repo, want{dir: repo, root: repo, vcs: VCSGit, identity: "git:" + min(first, second)}
		}},
		{"git repository without commits", func(t *testing.T, r *Registry, base string) (string, want) {
			repo := mkdir(t, filepath.Join(base, "repo"))
			runGit(t, repo, "init", "-q")
			return repo, want{dir: repo, root: repo, vcs: VCSGit, identity: "path:" + repo}
		}},
		{"first commit keeps the project", func(t *testing.T, r *Registry, base string) (string, want) {
			repo := mkdir(t, filepath.Join(base, "repo"))
			runGit(t, repo, "init", "-q")
			mustOpen(t, r, repo)
			runGit(t, repo, "commit", "-q", "--allow-empty", "-m", "first")
			head := runGit(t, repo, "rev-parse", "HEAD")
			r.now = func() time.Time { return time.Now().Add(2 * fallbackTTL) }
			return repo, want{dir: repo, root: repo, vcs: VCSGit, identity: "git:" + head, sameAs: repo, absent: []string{"path:" + repo}}
		}},
		{"git init in a known directory keeps the project", func(t *testing.T, r *Registry, base string) (string, want) {
			d := mkdir(t, filepath.Join(base, "plain"))
			mustOpen(t, r, d)
			head := newRepo(t, d)
			return d, want{dir: d, root: d, vcs: VCSGit, identity: "git:" + head, sameAs: d, absent: []string{"path:" + d}}
		}},
		{".git removed from a clone", func(t *testing.T, r *Registry, base string) (string, want) {
			repo := filepath.Join(base, "repo")
			newRepo(t, repo)
			runGit(t, base, "clone", "-q", repo, "clone")
			clone := filepath.Join(base, "clone")
			mustOpen(t, r, clone)
			if err := os.RemoveAll(filepath.Join(clone, ".git")); err != nil {
				t.Fatal(err)
			}
			return clone, want{dir: clone, root: clone, vcs: VCSNone, identity: "path:" + clone}
		}},
		{"symlink maps to the canonical directory", func(t *testing.T, r *Registry, base string) (string, want) {
			d := mkdir(t, filepath.Join(base, "real"))
			link := filepath.Join(base, "link")
			if err := os.Symlink(d, link); err != nil {
				t.Fatal(err)
			}
			return link + "/.", want{dir: d, root: d, vcs: VCSNone, identity: "path:" + d}
		}},
		{"git missing falls back to the path", func(t *testing.T, r *Registry, base string) (string, want) {
			repo := filepath.Join(base, "repo")
			newRepo(t, repo)
			t.Setenv("PATH", "")
			return repo, want{dir: repo, root: repo, vcs: VCSGit, identity: "path:" + repo}
		}},
		{"GIT_DIR of the daemon is ignored", func(t *testing.T, r *Registry, base string) (string, want) {
			repo := filepath.Join(base, "repo")
			other := filepath.Join(base, "other")
			newRepo(t, other)
			// Make the other repository's root differ for sure.
			runGit(t, other, "commit", "-q", "--amend", "--allow-empty", "-m", "other")
			head := newRepo(t, repo)
			t.Setenv("GIT_DIR", filepath.Join(other, ".git"))
			t.Setenv("GIT_WORK_TREE", other)
			return repo, want{dir: repo, root: repo, vcs: VCSGit, identity: "git:" + head}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, db := newTestRegistry(t)
			base := canonical(t, t.TempDir())
			dir, w := tt.setup(t, r, base)
			p, gotDir, err := r.Open(context.Background(), dir)
			if err != nil {
				t.Fatalf("Open(%s): %v", dir, err)
			}
			if gotDir != w.dir {
				t.Errorf("canonical dir = %q, want %q", gotDir, w.dir)
			}
			if p.Root != w.root || p.VCS != w.vcs || p.Name != filepath.Base(w.root) {
				t.Errorf("project root, vcs, name = %q, %q, %q; want %q, %q, %q", p.Root, p.VCS, p.Name, w.root, w.vcs, filepath.Base(w.root))
			}
			if !slices.Equal(p.Worktrees, w.worktrees) {
				t.Errorf("worktrees = %q, want %q", p.Worktrees, w.worktrees)
			}
			if !store.ValidID(store.KindProject, p.ID) {
				t.Errorf("project ID %q is not a project ID", p.ID)
			}
			if got := identityOwner(t, db, w.identity); got != p.ID {
				t.Errorf("identity %q maps to %q, want %q", w.identity, got, p.ID)
			}
			for _, id := range w.absent {
				if got := identityOwner(t, db, id); got != "" {
					t.Errorf("identity %q maps to %q, want nothing", id, got)
				}
			}
			if w.sameAs != "" {
				if prev := mustOpen(t, r, w.sameAs); prev.ID != p.ID {
					t.Errorf("%s maps to %s, want the project of %s, %s", dir, p.ID, w.sameAs, prev.ID)
				}
			}
			stored, err := r.Get(context.Background(), p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(stored.Worktrees, p.Worktrees) || stored.Root != p.Root || stored.VCS != p.VCS || stored.Time != p.Time {
				t.Errorf("stored project %+v differs from returned %+v", stored, p)
			}
			// Idempotent, whether served from the cache or not.
			again := mustOpen(t, r, dir)
			r.forget(w.dir)
			fresh := mustOpen(t, r, dir)
			if again.ID != p.ID || fresh.ID != p.ID || !slices.Equal(fresh.Worktrees, p.Worktrees) {
				t.Errorf("reopen gave %+v and %+v, want %+v", again, fresh, p)
			}
		})
	}
}

func TestOpenDirErrors(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		is   error
		msg  string
	}{
		{"empty", "", ErrNotAbsolute, "directory is empty"},
		{"relative", "some/dir", ErrNotAbsolute, "pass an absolute path"},
		{"dot", ".", ErrNotAbsolute, "pass an absolute path"},
		{"missing", filepath.Join(base, "missing"), fs.ErrNotExist, "does not exist"},
		{"file", file, ErrNotDirectory, "is not a directory"},
		{"beneath a file", filepath.Join(file, "sub"), fs.ErrNotExist, "does not exist"},
	}
	r, _ := newTestRegistry(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, canon, err := r.Open(context.Background(), tt.dir)
			var de *DirError
			if !errors.As(err, &de) {
				t.Fatalf("Open(%q) error = %v, want a *DirError", tt.dir, err)
			}
			if de.Dir != tt.dir || canon != "" {
				t.Errorf("DirError.Dir = %q, canonical = %q; want %q, \"\"", de.Dir, canon, tt.dir)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "pass ") {
				t.Errorf("error %q should say %q and what to pass", err, tt.msg)
			}
		})
	}
}

func TestOpenPersistsAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	base := canonical(t, t.TempDir())
	repo := filepath.Join(base, "repo")
	newRepo(t, repo)
	plain := mkdir(t, filepath.Join(base, "plain", "sub"))

	db := openStore(t, dataDir)
	r := NewRegistry(db, nil)
	p1 := mustOpen(t, r, repo)
	p2 := mustOpen(t, r, filepath.Dir(plain))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openStore(t, dataDir)
	defer db.Close()
	r = NewRegistry(db, nil)
	for _, c := range []struct {
		dir  string
		want Project
	}{{repo, p1}, {filepath.Join(repo, "."), p1}, {filepath.Dir(plain), p2}, {plain, p2}} {
		if got := mustOpen(t, r, c.dir); got.ID != c.want.ID || got.Time.Created != c.want.Time.Created {
			t.Errorf("after restart %s maps to %+v, want %+v", c.dir, got, c.want)
		}
	}
	ps, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Errorf("List after restart = %+v, want 2 projects", ps)
	}
}

func TestOpenConcurrent(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, base string) string
	}{
		{"non-git", func(t *testing.T, base string) string { return mkdir(t, filepath.Join(base, "plain")) }},
		{"git", func(t *testing.T, base string) string {
			repo := filepath.Join(base, "repo")
			newRepo(t, repo)
			return repo
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newTestRegistry(t)
			dir := tt.setup(t, canonical(t, t.TempDir()))
			const n = 20
			ids := make([]string, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					p, _, err := r.Open(context.Background(), dir)
					ids[i], errs[i] = p.ID, err
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			ps, err := r.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != 1 {
				t.Fatalf("%d projects after %d concurrent Opens, want 1: %+v", len(ps), n, ps)
			}
			for i, id := range ids {
				if id != ps[0].ID {
					t.Errorf("Open #%d returned %s, want %s", i, id, ps[0].ID)
				}
			}
		})
	}
}

func TestListOrderAndUpdated(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRegistry(t)
	clock := &testClock{t: time.UnixMilli(1_700_000_000_000)}
	r.now = clock.Now
	base := canonical(t, t.TempDir())
	dirs := map[string]string{}
	for _, name := range []string{"a", "b", "c"} {
		dirs[name] = mkdir(t, filepath.Join(base, name))
	}
	open := func(name string) Project {
		t.Helper()
		clock.Add(time.Second)
		return mustOpen(t, r, dirs[name])
	}
	names := func() string {
		ps, err := r.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, p := range ps {
			s = append(s, p.Name)
		}
		return strings.Join(s, ",")
	}

	a := open("a")
	open("b")
	open("c")
	if got := names(); got != "c,b,a" {
		t.Errorf("List = %s, want c,b,a", got)
	}

	// Within a minute a reopen writes nothing, so the order holds.
	if p := open("a"); p.Time.Updated != a.Time.Updated {
		t.Errorf("reopen after 3s moved Updated from %d to %d", a.Time.Updated, p.Time.Updated)
	}
	if got := names(); got != "c,b,a" {
		t.Errorf("List = %s, want c,b,a", got)
	}

	// After a minute it does.
	clock.Add(touchInterval)
	p := open("a")
	if want := clock.Now().UnixMilli(); p.Time.Updated != want || p.Time.Created != a.Time.Created {
		t.Errorf("reopen after a minute: time %+v, want created %d updated %d", p.Time, a.Time.Created, want)
	}
	if got := names(); got != "a,c,b" {
		t.Errorf("List = %s, want a,c,b", got)
	}
}

func TestWorktreeBumpsUpdated(t *testing.T) {
	r, _ := newTestRegistry(t)
	clock := &testClock{t: time.UnixMilli(1_700_000_000_000)}
	r.now = clock.Now
	base := canonical(t, t.TempDir())
	repo := filepath.Join(base, "repo")
	newRepo(t, repo)
	p := mustOpen(t, r, repo)
	runGit(t, base, "clone", "-q", repo, "clone")
	clock.Add(time.Second)
	q := mustOpen(t, r, filepath.Join(base, "clone"))
	if q.ID != p.ID || q.Time.Updated != clock.Now().UnixMilli() {
		t.Errorf("clone opened: %+v, want project %s updated at %d", q, p.ID, clock.Now().UnixMilli())
	}
}

func TestGet(t *testing.T) {
	ctx := context.Background()
	r, db := newTestRegistry(t)
	p := mustOpen(t, r, t.TempDir())
	tests := []struct {
		id      string
		wantErr error
	}{
		{p.ID, nil},
		{db.NewID(store.KindProject), store.ErrNotFound},
		{"", store.ErrNotFound},
		{"prj_nonsense", store.ErrNotFound},
		{db.NewID(store.KindSession), store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.id), func(t *testing.T) {
			got, err := r.Get(ctx, tt.id)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Get(%q) error = %v, want %v", tt.id, err, tt.wantErr)
			}
			if err == nil && got.ID != p.ID {
				t.Errorf("Get(%q) = %+v", tt.id, got)
			}
		})
	}
}

func TestContains(t *testing.T) {
	tests := []struct {
		root, path string
		want       bool
	}{
		{"/a/b", "/a/b", true},
		{"/a/b", "/a/b/", true},
		{"/a/b/", "/a/b", true},
		{"/a/b", "/a/b/c/d", true},
		{"/a/b", "/a/bc", false},
		{"/a/b", "/a", false},
		{"/a/b", "/a/b/../c", false},
		{"/a/b", "/x/a/b", false},
		{"/", "/a", true},
		{"/", "/", true},
	}
	for _, tt := range tests {
		if got := Contains(tt.root, tt.path); got != tt.want {
			t.Errorf("Contains(%q, %q) = %v, want %v", tt.root, tt.path, got, tt.want)
		}
	}
}
