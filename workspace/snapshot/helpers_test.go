package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/store"
)

// env is a real store on disk, an engine over it and a workspace root.
type env struct {
	t       testing.TB
	dataDir string
	root    string
	opts    Options
	db      *store.DB
	e       *Engine
}

// newEnv opens a store under a temp dir with its data dir inside the
// workspace, as when a user runs the daemon with --data-dir ./.sessiond,
// so every test also checks the data dir is never captured.
func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	root := t.TempDir()
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	v := &env{t: t, root: root, dataDir: filepath.Join(root, ".sessiond-data"), opts: opts}
	v.opts.Exclude = append(v.opts.Exclude, v.dataDir)
	v.open()
	t.Cleanup(v.close)
	return v
}

func (v *env) open() {
	v.t.Helper()
	db, err := store.Open(context.Background(), store.Options{Dir: v.dataDir})
	if err != nil {
		v.t.Fatal(err)
	}
	e, err := New(db, v.opts)
	if err != nil {
		v.t.Fatal(err)
	}
	v.db, v.e = db, e
	v.noRacy()
}

// noRacy moves the engine's clock an hour ahead, so files written by the
// test just now are not "racily clean" and counts of rehashed files are
// exact. Tests of the racy rule use the real clock.
func (v *env) noRacy() { v.e.now = func() time.Time { return time.Now().Add(time.Hour) } }

func (v *env) close() {
	if v.e == nil {
		return
	}
	v.e.Close()
	if err := v.db.Close(); err != nil {
		v.t.Error(err)
	}
	v.e, v.db = nil, nil
}

// reopen closes and reopens store and engine: a daemon restart.
func (v *env) reopen() {
	v.t.Helper()
	v.close()
	v.open()
}

func (v *env) capture(dirty []string, ign Ignorer) ID {
	v.t.Helper()
	return v.captureAt(v.root, dirty, ign)
}

func (v *env) captureAt(root string, dirty []string, ign Ignorer) ID {
	v.t.Helper()
	id, err := v.e.Capture(context.Background(), root, dirty, ign)
	if err != nil {
		v.t.Fatalf("Capture(%v): %v", dirty, err)
	}
	return id
}

// counts returns and resets the engine's hash and tree counters.
func (v *env) counts() (hashed, trees int64) {
	return v.e.hashed.Swap(0), v.e.treesBuilt.Swap(0)
}

func (v *env) lookup(snap ID, p string) Entry {
	v.t.Helper()
	ent, err := v.e.Lookup(context.Background(), snap, p)
	if err != nil {
		v.t.Fatalf("Lookup(%s): %v", p, err)
	}
	return ent
}

func (v *env) read(snap ID, p string) Content {
	v.t.Helper()
	c, err := v.e.ReadEntry(context.Background(), snap, p)
	if err != nil {
		v.t.Fatalf("ReadEntry(%s): %v", p, err)
	}
	return c
}

func (v *env) changed(a, b ID) []string {
	v.t.Helper()
	ps, err := v.e.Changed(context.Background(), a, b)
	if err != nil {
		v.t.Fatal(err)
	}
	return ps
}

// objects counts the stored blobs and trees.
func (v *env) objects() (blobs, trees int) {
	v.t.Helper()
	err := v.db.View(context.Background(), func(txn *store.Txn) error {
		return store.ScanObjects(txn, func(k store.ObjectKind, _ store.Hash) (bool, error) {
			if k == store.ObjectBlob {
				blobs++
			} else {
				trees++
			}
			return true, nil
		})
	})
	if err != nil {
		v.t.Fatal(err)
	}
	return blobs, trees
}

// write creates root/rel with content and mode, and its parents.
func write(t testing.TB, root, rel, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func symlink(t testing.TB, root, rel, target string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t testing.TB, root, rel string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(rel)), 0o755); err != nil {
		t.Fatal(err)
	}
}

func remove(t testing.TB, root, rel string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(root, filepath.FromSlash(rel))); err != nil {
		t.Fatal(err)
	}
}

func readDisk(t testing.TB, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ignoreNames ignores any path with one of its names as a component.
type ignoreNames []string

func (ig ignoreNames) Ignored(rel string, isDir bool) bool {
	for _, c := range strings.Split(rel, "/") {
		for _, n := range ig {
			if c == n {
				return true
			}
		}
	}
	return false
}

// fullRebuild captures root from scratch in a separate store: what any
// incremental capture must agree with.
func fullRebuild(t testing.TB, root string, ign Ignorer, opts Options) ID {
	t.Helper()
	db, err := store.Open(context.Background(), store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e, err := New(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	id, err := e.Capture(context.Background(), root, nil, ign)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
