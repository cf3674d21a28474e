package snapshot

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/store"
)

func TestCaptureRecordsWhatIsThere(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{MaxFileSize: 1 << 10})
	outside := t.TempDir()
	write(t, outside, "secret", "not ours\n", 0o600)

	write(t, v.root, "README.md", "hello\n", 0o644)
	write(t, v.root, "run.sh", "#!/bin/sh\necho hi\n", 0o755)
	write(t, v.root, "src/main.go", "package main\n", 0o644)
	write(t, v.root, "src/deep/er/leaf.txt", "leaf\n", 0o600)
	write(t, v.root, "empty.txt", "", 0o644)
	write(t, v.root, "big.bin", strings.Repeat("x", 2<<10), 0o644)
	write(t, v.root, "node_modules/pkg/index.js", "ignored\n", 0o644)
	write(t, v.root, ".git/config", "[core]\n", 0o644)
	write(t, v.root, "sub/.git", "gitdir: elsewhere\n", 0o644) // a submodule's .git file
	mkdir(t, v.root, "emptydir")
	symlink(t, v.root, "link-in", "src/main.go")
	symlink(t, v.root, "link-out", filepath.Join(outside, "secret"))
	symlink(t, v.root, "link-dir", outside)
	symlink(t, v.root, "dangling", "no/such/file")
	if err := syscall.Mkfifo(filepath.Join(v.root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The store itself writes into the data dir, which sits in the root.

	snap := v.capture(nil, ignoreNames{"node_modules"})

	files := []struct {
		path string
		mode os.FileMode
		data string
	}{
		{"README.md", 0o644, "hello\n"},
		{"run.sh", 0o755, "#!/bin/sh\necho hi\n"},
		{"src/main.go", 0o644, "package main\n"},
		{"src/deep/er/leaf.txt", 0o600, "leaf\n"},
		{"empty.txt", 0o644, ""},
	}
	for _, f := range files {
		c := v.read(snap, f.path)
		if c.Kind != store.EntryFile || c.Mode != f.mode || string(c.Data) != f.data || c.Size != int64(len(f.data)) {
			t.Errorf("%s = %v %v %d %q, want file %v %q", f.path, c.Kind, c.Mode, c.Size, c.Data, f.mode, f.data)
		}
	}
	links := map[string]string{
		"link-in":  "src/main.go",
		"link-out": filepath.Join(outside, "secret"),
		"link-dir": outside,
		"dangling": "no/such/file",
	}
	for p, target := range links {
		c := v.read(snap, p)
		if c.Kind != store.EntrySymlink || c.Target != target || c.Data != nil {
			t.Errorf("%s = %v %q, want symlink to %q", p, c.Kind, c.Target, target)
		}
	}
	// Never followed: nothing below a link to a directory.
	if ent := v.lookup(snap, "link-dir/secret"); ent.Exists() {
		t.Errorf("link-dir/secret = %+v: the link was followed", ent)
	}
	big := v.read(snap, "big.bin")
	if big.Kind != store.EntrySkipped || big.Size != 2<<10 || big.Data != nil || !big.Hash.IsZero() {
		t.Errorf("big.bin = %+v, want skipped with its size", big.Entry)
	}
	for _, p := range []string{"node_modules", "node_modules/pkg/index.js", "fifo", ".sessiond-data"} {
		if ent := v.lookup(snap, p); ent.Exists() {
			t.Errorf("%s = %+v, want absent", p, ent)
		}
	}
	for _, p := range []string{".git/config", "sub/.git"} {
		if _, err := v.e.Lookup(context.Background(), snap, p); err == nil {
			t.Errorf("Lookup(%s) did not refuse a path in .git", p)
		}
	}
	// Directories are kept even when nothing in them is: restore then
	// knows which directories a revert may remove.
	emptyTree, _, _ := store.EncodeTree(nil)
	for _, p := range []string{"emptydir", "sub"} {
		if ent := v.lookup(snap, p); ent.Kind != store.EntryDir || ent.Hash != emptyTree {
			t.Errorf("%s = %+v, want an empty directory", p, ent)
		}
	}
	if ent := v.lookup(snap, ""); ent.Kind != store.EntryDir || ent.Hash != snap {
		t.Errorf("root = %+v, want the snapshot's tree", ent)
	}
	// The oversize file's content is nowhere in the store.
	err := v.db.View(context.Background(), func(txn *store.Txn) error {
		ok, err := store.HasBlob(txn, store.BlobHash([]byte(strings.Repeat("x", 2<<10))))
		if ok {
			t.Error("the oversize file's content was stored")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// Capturing again with nothing changed gives the same snapshot, and
	// a fresh index agrees.
	if again := v.capture(nil, ignoreNames{"node_modules"}); again != snap {
		t.Errorf("second capture = %s, want %s", again, snap)
	}
	if fresh := fullRebuild(t, v.root, ignoreNames{"node_modules"}, v.opts); fresh != snap {
		t.Errorf("capture from an empty index = %s, want %s", fresh, snap)
	}
	// With no Ignorer only .git is left out.
	withAll := v.capture(nil, nil)
	if ent := v.lookup(withAll, "node_modules/pkg/index.js"); ent.Kind != store.EntryFile {
		t.Errorf("without an Ignorer node_modules/pkg/index.js = %+v", ent)
	}
	if ent := v.lookup(withAll, ".sessiond-data"); ent.Exists() {
		t.Error("the data dir was captured")
	}
}

func TestCaptureRefusesBadRoots(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	ctx := context.Background()
	write(t, v.root, "file", "x", 0o644)
	for _, root := range []string{"relative/dir", filepath.Join(v.root, "missing"), filepath.Join(v.root, "file"), v.dataDir, filepath.Join(v.dataDir, "sub")} {
		mkdirIfData := strings.HasPrefix(root, v.dataDir)
		if mkdirIfData {
			mkdir(t, root, "")
		}
		if _, err := v.e.Capture(ctx, root, nil, nil); err == nil {
			t.Errorf("Capture(%s) succeeded", root)
		}
	}
}

// Two projects holding the same files share every object, and even the
// snapshot ID.
func TestIdenticalContentIsStoredOnce(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	other := t.TempDir()
	for _, root := range []string{v.root, other} {
		write(t, root, "a.txt", "same\n", 0o644)
		write(t, root, "dir/b.txt", "also the same\n", 0o644)
		write(t, root, "dir/c.txt", "same\n", 0o644) // same content as a.txt, other name
	}
	s1 := v.capture(nil, nil)
	blobs1, trees1 := v.objects()
	if blobs1 != 2 {
		t.Errorf("one project of 3 files, 2 distinct contents: %d blobs", blobs1)
	}
	s2 := v.captureAt(other, nil, nil)
	blobs2, trees2 := v.objects()
	if blobs2 != blobs1 || trees2 != trees1 {
		t.Errorf("second project added objects: blobs %d → %d, trees %d → %d", blobs1, blobs2, trees1, trees2)
	}
	if s1 != s2 {
		t.Errorf("identical workspaces have snapshots %s and %s", s1, s2)
	}
	// Each root keeps its own index: a change in one is not the other's.
	write(t, other, "a.txt", "changed\n", 0o644)
	if s3 := v.captureAt(other, []string{"a.txt"}, nil); s3 == s1 {
		t.Error("change in the second project not captured")
	}
	if again := v.capture([]string{"a.txt"}, nil); again != s1 {
		t.Error("the first project's snapshot changed with the second's files")
	}
}

// genTree writes dirs × perDir files in a two-level layout and returns the
// relative paths.
func genTree(t testing.TB, root string, top, sub, perDir int) []string {
	t.Helper()
	var paths []string
	for i := range top {
		for j := range sub {
			dir := filepath.Join(root, fmt.Sprintf("pkg%03d", i), fmt.Sprintf("sub%03d", j))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for k := range perDir {
				name := fmt.Sprintf("file%04d.go", k)
				content := fmt.Sprintf("package p%d_%d\n\n// file %d\nfunc F%d() int { return %d }\n", i, j, k, k, i*j*k)
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				paths = append(paths, fmt.Sprintf("pkg%03d/sub%03d/%s", i, j, name))
			}
		}
	}
	return paths
}

func TestCaptureOfOneChangeAmong2000(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	paths := genTree(t, v.root, 4, 5, 100)
	if len(paths) != 2000 {
		t.Fatal(len(paths))
	}
	first := v.capture(nil, nil)
	if hashed, trees := v.counts(); hashed != 2000 || trees != 1+4+20 {
		t.Fatalf("first capture: hashed %d files, built %d trees; want 2000 and 25", hashed, trees)
	}

	target := "pkg002/sub003/file0042.go"
	for _, tc := range []struct {
		name  string
		dirty []string
	}{
		{"dirty path", []string{target}},
		{"absolute dirty path", []string{filepath.Join(v.root, target)}},
		{"full scan", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each subtest rewrites the file (a new mtime; the same
			// bytes after the first), so each has one file to read.
			write(t, v.root, target, "package changed\n", 0o644)
			snap := v.capture(tc.dirty, nil)
			hashed, trees := v.counts()
			if snap == first {
				t.Fatal("the change was not captured")
			}
			if hashed != 1 {
				t.Errorf("rehashed %d files, want 1", hashed)
			}
			if trees != 3 && tc.name == "dirty path" {
				t.Errorf("rebuilt %d trees, want 3 (sub003, pkg002, root)", trees)
			}
			if got := v.changed(first, snap); !slices.Equal(got, []string{target}) {
				t.Errorf("Changed = %v, want [%s]", got, target)
			}
			// Untouched subtrees keep their trees: same hashes.
			for _, p := range []string{"pkg000", "pkg002/sub002", "pkg003/sub004"} {
				if a, b := v.lookup(first, p), v.lookup(snap, p); a.Hash != b.Hash || a.Kind != store.EntryDir {
					t.Errorf("%s: tree %s then %s", p, a.Hash, b.Hash)
				}
			}
			if c := v.read(snap, target); string(c.Data) != "package changed\n" {
				t.Errorf("%s = %q", target, c.Data)
			}
		})
	}
	// And nothing changed: a full scan reads nothing.
	v.capture(nil, nil)
	if hashed, _ := v.counts(); hashed != 0 {
		t.Errorf("full scan with nothing changed rehashed %d files", hashed)
	}
}

// After a watcher overflow the session layer falls back to a full scan:
// only files whose stat changed are read, and a touched but unchanged file
// leaves the snapshot as it was.
func TestFullScanRehashesOnlyWhatsStatChanged(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	paths := genTree(t, v.root, 2, 3, 20)
	first := v.capture(nil, nil)
	v.counts()
	write(t, v.root, paths[0], "new 0\n", 0o644)
	write(t, v.root, paths[50], "new 50\n", 0o644)
	if err := os.Chmod(filepath.Join(v.root, paths[70]), 0o755); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(-time.Minute)
	if err := os.Chtimes(filepath.Join(v.root, paths[100]), later, later); err != nil { // touched, same bytes
		t.Fatal(err)
	}
	snap := v.capture(nil, nil)
	if hashed, _ := v.counts(); hashed != 4 {
		t.Errorf("rehashed %d files, want 4 (two edits, a chmod, a touch)", hashed)
	}
	want := []string{paths[0], paths[50], paths[70]}
	slices.Sort(want)
	if got := v.changed(first, snap); !slices.Equal(got, want) {
		t.Errorf("Changed = %v, want %v", got, want)
	}
	if ent := v.lookup(snap, paths[70]); ent.Mode != 0o755 {
		t.Errorf("mode of %s = %v", paths[70], ent.Mode)
	}
}

// Whatever the watcher reports (files, directories, paths that are gone,
// below new directories, renamed), the incremental capture must equal a
// capture from an empty index.
func TestDirtyCapturesAgreeWithAFullRebuild(t *testing.T) {
	t.Parallel()
	ign := ignoreNames{"build"}
	steps := []struct {
		name   string
		change func(t *testing.T, root string)
		dirty  []string
	}{
		{"new file in new nested dirs, only the file reported", func(t *testing.T, root string) {
			write(t, root, "new/deep/dir/f.txt", "f\n", 0o644)
		}, []string{"new/deep/dir/f.txt"}},
		{"new file, only its new top dir reported", func(t *testing.T, root string) {
			write(t, root, "top/x/y.txt", "y\n", 0o644)
		}, []string{"top"}},
		{"file deleted", func(t *testing.T, root string) {
			remove(t, root, "a/one.txt")
		}, []string{"a/one.txt"}},
		{"dir deleted, only the dir reported", func(t *testing.T, root string) {
			remove(t, root, "b")
		}, []string{"b"}},
		{"dir deleted, only a file in it reported", func(t *testing.T, root string) {
			remove(t, root, "new")
		}, []string{"new/deep/dir/f.txt"}},
		{"dir replaced by a file", func(t *testing.T, root string) {
			remove(t, root, "top")
			write(t, root, "top", "now a file\n", 0o644)
		}, []string{"top"}},
		{"file replaced by a dir", func(t *testing.T, root string) {
			remove(t, root, "a/two.txt")
			write(t, root, "a/two.txt/inner", "inner\n", 0o644)
		}, []string{"a/two.txt/inner"}},
		{"dir renamed", func(t *testing.T, root string) {
			if err := os.Rename(filepath.Join(root, "c"), filepath.Join(root, "c2")); err != nil {
				t.Fatal(err)
			}
		}, []string{"c", "c2"}},
		{"dir replaced by a symlink to a dir", func(t *testing.T, root string) {
			remove(t, root, "d")
			symlink(t, root, "d", "c2")
		}, []string{"d/x.txt"}},
		{"change in an ignored dir", func(t *testing.T, root string) {
			write(t, root, "a/build/out.o", "obj\n", 0o644)
		}, []string{"a/build/out.o", "a/build"}},
		{"file becomes oversize and a mode changes", func(t *testing.T, root string) {
			write(t, root, "a/three.txt", strings.Repeat("z", 300), 0o644)
			if err := os.Chmod(filepath.Join(root, "c2/x.txt"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, []string{"a/three.txt", "c2/x.txt"}},
		{"paths outside the root and the root's parent", func(t *testing.T, root string) {
			write(t, root, "a/four.txt", "4\n", 0o644)
		}, []string{"/elsewhere/file", "../up", "a/four.txt", "a/four.txt"}},
		{"the root itself", func(t *testing.T, root string) {
			write(t, root, "a/five.txt", "5\n", 0o644)
		}, []string{"."}},
	}
	v := newEnv(t, Options{MaxFileSize: 256})
	for _, d := range []string{"a", "b", "c", "d"} {
		for _, f := range []string{"one.txt", "two.txt", "three.txt", "x.txt"} {
			write(t, v.root, d+"/"+f, d+"/"+f+"\n", 0o644)
		}
	}
	prev := v.capture(nil, ign)
	for _, s := range steps {
		s.change(t, v.root)
		got := v.capture(s.dirty, ign)
		want := fullRebuild(t, v.root, ign, v.opts)
		if got != want {
			diff, _ := v.e.Changed(context.Background(), want, got)
			t.Fatalf("%s: incremental capture %s, full rebuild %s; they differ in %v", s.name, got, want, diff)
		}
		if got == prev && s.name != "change in an ignored dir" {
			t.Errorf("%s: snapshot did not change", s.name)
		}
		prev = got
	}
	// And the index left behind is right: a full scan changes nothing
	// and reads nothing.
	v.counts()
	if again := v.capture(nil, ign); again != prev {
		t.Errorf("full scan after the steps = %s, want %s", again, prev)
	}
	if hashed, _ := v.counts(); hashed != 0 {
		t.Errorf("full scan after the steps rehashed %d files", hashed)
	}
}

func TestEmptyDirtyListReturnsTheLastSnapshot(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	write(t, v.root, "a", "a", 0o644)
	first := v.capture(nil, nil)
	write(t, v.root, "a", "changed", 0o644)
	if got := v.capture([]string{}, nil); got != first {
		t.Errorf("empty dirty list: %s, want the last snapshot %s", got, first)
	}
	if hashed, _ := v.counts(); hashed != 1 {
		t.Errorf("hashed %d", hashed)
	}
}

// A restarted daemon (store closed and reopened, a new engine) captures
// the unchanged workspace to the same snapshot without reading any file.
func TestIndexPersistsAcrossRestarts(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	genTree(t, v.root, 3, 3, 10)
	write(t, v.root, "bin/tool", "#!/bin/sh\n", 0o755)
	symlink(t, v.root, "link", "bin/tool")
	first := v.capture(nil, nil)
	v.reopen()
	if got := v.capture(nil, nil); got != first {
		t.Errorf("after restart: %s, want %s", got, first)
	}
	if hashed, _ := v.counts(); hashed != 0 {
		t.Errorf("after restart a full scan rehashed %d files, want 0", hashed)
	}
	if c := v.read(first, "bin/tool"); string(c.Data) != "#!/bin/sh\n" || c.Mode != 0o755 {
		t.Errorf("bin/tool after restart = %+v", c)
	}
	// And the index still works incrementally.
	write(t, v.root, "bin/tool", "#!/bin/sh\nexit 1\n", 0o755)
	if got := v.capture([]string{"bin/tool"}, nil); got == first {
		t.Error("change after restart not captured")
	}
	if hashed, _ := v.counts(); hashed != 1 {
		t.Errorf("rehashed %d", hashed)
	}
}

// A file rewritten with the same size within the same timestamp tick as
// the capture that read it keeps its stat; the racy rule makes the next
// capture read it again anyway.
func TestRacilyCleanFilesAreRehashed(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	v.e.now = time.Now // the real clock: files written now are racy
	p := filepath.Join(v.root, "f.txt")
	write(t, v.root, "f.txt", "aaaa\n", 0o644)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	first := v.capture(nil, nil)
	// Same size, same mtime, new bytes (in place: same inode). The ctime
	// changes, so to show the racy rule alone at work, compare with an
	// index that ignores ctime: pretend the stored ctime is the new one.
	if err := os.WriteFile(p, []byte("bbbb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	now, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	_, ctime := statExtra(now)
	idx := indexID(v.root)
	err = v.db.Update(context.Background(), func(txn *store.Txn) error {
		key := store.KeyFileIndexEntry(idx, "", "f.txt")
		b, err := txn.GetRaw(key)
		if err != nil {
			return err
		}
		e, err := decodeEntry(b)
		if err != nil {
			return err
		}
		if !e.racy {
			t.Error("a file written just before its capture is not marked racy")
		}
		e.ctime = ctime
		return txn.SetRaw(key, e.encode())
	})
	if err != nil {
		t.Fatal(err)
	}
	second := v.capture(nil, nil)
	if second == first {
		t.Fatal("same-size rewrite in the same tick was missed")
	}
	if c := v.read(second, "f.txt"); string(c.Data) != "bbbb\n" {
		t.Errorf("f.txt = %q", c.Data)
	}
}

// Captures too big for one transaction go through batches with the index
// marked pending; a capture that finds the mark (a crash halfway) rebuilds
// the trees from the index without reading files.
func TestLargeCaptureAndPendingRecovery(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	genTree(t, v.root, 5, 10, 100) // 5,000 files: past maxTxnWrites
	// Incompressible 60 KiB files: inline values that would overflow a
	// transaction if blobs went in with the index.
	for i := range 30 {
		b := make([]byte, 60<<10)
		rand.Read(b)
		write(t, v.root, fmt.Sprintf("random/%02d.bin", i), string(b), 0o644)
	}
	// And files near the default 10 MiB cap: values in the value log.
	for i := range 2 {
		b := make([]byte, 9<<20)
		rand.Read(b)
		write(t, v.root, fmt.Sprintf("random/big%d.bin", i), string(b), 0o644)
	}
	first := v.capture(nil, nil)
	if hashed, _ := v.counts(); hashed != 5032 {
		t.Fatalf("hashed %d", hashed)
	}
	idx := indexID(v.root)
	err := v.db.Update(context.Background(), func(txn *store.Txn) error {
		var m indexMeta
		if err := txn.Get(store.KeyFileIndexMeta(idx), &m); err != nil {
			return err
		}
		m.Pending, m.Tree = true, ID{}
		// And a directory hash left stale by the "crash".
		key := store.KeyFileIndexEntry(idx, "pkg001", "sub002")
		b, err := txn.GetRaw(key)
		if err != nil {
			return err
		}
		e, err := decodeEntry(b)
		if err != nil {
			return err
		}
		e.hash = store.BlobHash([]byte("stale"))
		if err := txn.SetRaw(key, e.encode()); err != nil {
			return err
		}
		return txn.Set(store.KeyFileIndexMeta(idx), m)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.capture([]string{"pkg000/sub000/file0000.go"}, nil); got != first {
		t.Errorf("capture after a crash = %s, want %s", got, first)
	}
	if hashed, _ := v.counts(); hashed != 0 {
		t.Errorf("recovery rehashed %d files", hashed)
	}
	if c := v.read(first, "random/big1.bin"); c.Size != 9<<20 || len(c.Data) != 9<<20 {
		t.Errorf("big1.bin read back as %d bytes", len(c.Data))
	}
}

func TestCaptureHonoursCancellation(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	genTree(t, v.root, 2, 2, 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.e.Capture(ctx, v.root, nil, nil); err == nil {
		t.Fatal("Capture with a cancelled context succeeded")
	}
	// Nothing half-done remains: a real capture works.
	v.capture(nil, nil)
}

// Captures of one root take turns; captures of different roots run side
// by side; all agree on the result.
func TestConcurrentCaptures(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	other := t.TempDir()
	genTree(t, v.root, 2, 2, 25)
	genTree(t, other, 2, 2, 25)
	want := fullRebuild(t, v.root, nil, v.opts)
	errs := make(chan error, 8)
	ids := make(chan ID, 8)
	for i := range 8 {
		root := v.root
		if i%2 == 1 {
			root = other
		}
		go func() {
			id, err := v.e.Capture(context.Background(), root, nil, nil)
			errs <- err
			ids <- id
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		// Both trees hold the same generated files.
		if id := <-ids; id != want {
			t.Errorf("capture = %s, want %s", id, want)
		}
	}
}

// The collector keeps what each index refers to alive; forgetting an
// index drops it from that list, and the next capture starts afresh.
func TestIndexRootsAndForgetIndex(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	other := t.TempDir()
	write(t, v.root, "a", "a\n", 0o644)
	write(t, other, "b", "b\n", 0o644)
	s1 := v.capture(nil, nil)
	s2 := v.captureAt(other, nil, nil)
	ctx := context.Background()
	roots, err := v.e.IndexRoots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(roots, func(a, b ID) int { return strings.Compare(a.String(), b.String()) })
	want := []ID{s1, s2}
	slices.SortFunc(want, func(a, b ID) int { return strings.Compare(a.String(), b.String()) })
	if !slices.Equal(roots, want) {
		t.Errorf("IndexRoots = %v, want %v", roots, want)
	}
	if err := v.e.ForgetIndex(ctx, other); err != nil {
		t.Fatal(err)
	}
	if roots, _ := v.e.IndexRoots(ctx); !slices.Equal(roots, []ID{s1}) {
		t.Errorf("after ForgetIndex: %v, want [%s]", roots, s1)
	}
	err = v.db.View(ctx, func(txn *store.Txn) error {
		return txn.Scan(store.PrefixFileIndex(indexID(other)), nil, false, true, func(key, _ []byte) (bool, error) {
			t.Errorf("entry %q left after ForgetIndex", key)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	v.counts()
	if got := v.captureAt(other, []string{"b"}, nil); got != s2 {
		t.Errorf("capture after ForgetIndex = %s, want %s", got, s2)
	}
	if hashed, _ := v.counts(); hashed != 1 {
		t.Errorf("capture after ForgetIndex hashed %d files, want all (1)", hashed)
	}
	// The snapshot taken before is still readable.
	if c := v.read(s2, "b"); string(c.Data) != "b\n" {
		t.Errorf("b = %q", c.Data)
	}
}
