package snapshot

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/store"
)

// reach is the set of objects reachable from some snapshots.
type reach struct {
	blobs map[store.Hash]bool
	trees map[store.Hash]bool
}

func (r reach) len() int { return len(r.blobs) + len(r.trees) }

// reachable walks snapshots ids and fails the test on a missing tree.
func (v *env) reachable(ids ...ID) reach {
	v.t.Helper()
	r := reach{blobs: map[store.Hash]bool{}, trees: map[store.Hash]bool{}}
	err := v.db.View(context.Background(), func(txn *store.Txn) error {
		var walk func(h store.Hash) error
		walk = func(h store.Hash) error {
			if r.trees[h] {
				return nil
			}
			r.trees[h] = true
			entries, err := store.GetTree(txn, h)
			if err != nil {
				return err
			}
			for _, te := range entries {
				switch te.Kind {
				case store.EntryFile, store.EntrySymlink:
					r.blobs[te.Hash] = true
				case store.EntryDir:
					if err := walk(te.Hash); err != nil {
						return err
					}
				}
			}
			return nil
		}
		for _, id := range ids {
			if err := walk(id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		v.t.Fatalf("walk snapshots: %v", err)
	}
	return r
}

// complete checks that every object of snapshot id is stored.
func (v *env) complete(id ID) {
	v.t.Helper()
	r := v.reachable(id) // fails on a missing tree
	err := v.db.View(context.Background(), func(txn *store.Txn) error {
		for h := range r.blobs {
			ok, err := store.HasBlob(txn, h)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("blob %s of snapshot %s is missing", h, id)
			}
		}
		return nil
	})
	if err != nil {
		v.t.Fatal(err)
	}
}

// files lists the files and links of snapshot id with their paths.
func (v *env) files(id ID) []string {
	v.t.Helper()
	var out []string
	err := v.db.View(context.Background(), func(txn *store.Txn) error {
		var walk func(dir string, h store.Hash) error
		walk = func(dir string, h store.Hash) error {
			entries, err := store.GetTree(txn, h)
			if err != nil {
				return err
			}
			for _, te := range entries {
				p := joinRel(dir, te.Name)
				switch te.Kind {
				case store.EntryFile, store.EntrySymlink:
					out = append(out, p)
				case store.EntryDir:
					if err := walk(p, te.Hash); err != nil {
						return err
					}
				}
			}
			return nil
		}
		return walk("", id)
	})
	if err != nil {
		v.t.Fatal(err)
	}
	return out
}

// readsBack checks that every file of snapshot id reads back as it is on
// disk now.
func (v *env) readsBack(id ID) {
	v.t.Helper()
	ps := v.files(id)
	if len(ps) == 0 {
		v.t.Fatalf("snapshot %s has no files", id)
	}
	for _, p := range ps {
		c := v.read(id, p)
		switch c.Kind {
		case store.EntryFile:
			if got, want := string(c.Data), readDisk(v.t, v.root, p); got != want {
				v.t.Fatalf("%s reads back %q, disk has %q", p, got, want)
			}
		case store.EntrySymlink:
			want, err := os.Readlink(filepath.Join(v.root, p))
			if err != nil || c.Target != want {
				v.t.Fatalf("link %s reads back %q, disk has %q (%v)", p, c.Target, want, err)
			}
		}
	}
}

func (v *env) collect(live ...ID) GCStats {
	v.t.Helper()
	st, err := v.e.Collect(context.Background(), live)
	if err != nil {
		v.t.Fatalf("Collect: %v", err)
	}
	return st
}

func (v *env) total() int {
	b, t := v.objects()
	return b + t
}

// union merges reachability sets.
func union(rs ...reach) reach {
	u := reach{blobs: map[store.Hash]bool{}, trees: map[store.Hash]bool{}}
	for _, r := range rs {
		for h := range r.blobs {
			u.blobs[h] = true
		}
		for h := range r.trees {
			u.trees[h] = true
		}
	}
	return u
}

// minus counts the objects of a that b does not hold.
func minus(a, b reach) (blobs, trees int) {
	for h := range a.blobs {
		if !b.blobs[h] {
			blobs++
		}
	}
	for h := range a.trees {
		if !b.trees[h] {
			trees++
		}
	}
	return blobs, trees
}

// A workspace through three snapshots: with only the latest live, the
// collector frees exactly what the older two alone used, and the latest,
// the index and later captures (also after a restart) keep working.
func TestCollectKeepsLiveAndIndex(t *testing.T) {
	v := newEnv(t, Options{})
	v.e.SetPinPeriod(0)
	write(t, v.root, "a.txt", "alpha 1\n", 0o644)
	write(t, v.root, "run.sh", "#!/bin/sh\necho hi\n", 0o755)
	write(t, v.root, "src/main.go", "package main\n", 0o644)
	write(t, v.root, "src/util/u.go", "package util // 1\n", 0o644)
	write(t, v.root, "src/util/v.go", "package util // v\n", 0o644)
	write(t, v.root, "old/gone.txt", "only in the first snapshot\n", 0o644)
	write(t, v.root, "docs/a.md", "# doc\n", 0o644)
	symlink(t, v.root, "link", "a.txt")
	s1 := v.capture(nil, nil)

	write(t, v.root, "a.txt", "alpha 2\n", 0o644)
	write(t, v.root, "src/new.go", "package main // new\n", 0o644)
	remove(t, v.root, "old")
	s2 := v.capture([]string{"a.txt", "src/new.go", "old"}, nil)

	write(t, v.root, "src/util/u.go", "package util // 3\n", 0o644)
	write(t, v.root, "e.txt", "epsilon\n", 0o644)
	s3 := v.capture(nil, nil)

	r1, r2, r3 := v.reachable(s1), v.reachable(s2), v.reachable(s3)
	if v.total() != union(r1, r2, r3).len() {
		t.Fatalf("store holds %d objects, the snapshots %d: unexpected garbage", v.total(), union(r1, r2, r3).len())
	}
	wantBlobs, wantTrees := minus(union(r1, r2), r3)
	// a.txt "alpha 1", u.go "// 1", gone.txt; roots ×2, src ×2, src/util, old.
	if wantBlobs != 3 || wantTrees != 6 {
		t.Fatalf("test setup: older snapshots alone hold %d blobs and %d trees, want 3 and 6", wantBlobs, wantTrees)
	}

	st := v.collect(s3)
	if st.FreedBlobs != int64(wantBlobs) || st.FreedTrees != int64(wantTrees) || st.FreedObjects != int64(wantBlobs+wantTrees) {
		t.Fatalf("freed %d blobs and %d trees, want %d and %d (%+v)", st.FreedBlobs, st.FreedTrees, wantBlobs, wantTrees, st)
	}
	if st.ScannedObjects != int64(union(r1, r2, r3).len()) || st.FreedBytes <= 0 || st.FreedBytes >= st.ScannedBytes {
		t.Fatalf("stats: %+v", st)
	}
	if st.LiveRoots != 1 || st.Live != 1 || st.IndexRoots != 1 || st.Missing != 0 {
		t.Fatalf("roots: %+v", st)
	}
	if got := v.total(); got != r3.len() {
		t.Fatalf("after collect %d objects stored, want the %d of the live snapshot", got, r3.len())
	}
	v.complete(s3)
	v.readsBack(s3)
	if _, err := v.e.ReadEntry(context.Background(), s1, "old/gone.txt"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("reading a freed snapshot: %v, want ErrNotFound", err)
	}

	// The index alone keeps s3: nothing more goes with nothing live.
	if st := v.collect(); st.FreedObjects != 0 || st.IndexRoots != 1 {
		t.Fatalf("collect with only the index: %+v", st)
	}
	v.complete(s3)

	// A restart: the index still describes s3, and captures reuse it.
	v.reopen()
	v.e.SetPinPeriod(0)
	v.counts()
	if got := v.capture(nil, nil); got != s3 {
		t.Fatalf("re-capture after restart = %s, want %s", got, s3)
	}
	if hashed, _ := v.counts(); hashed != 0 {
		t.Fatalf("re-capture rehashed %d files, want 0", hashed)
	}
	// Content that only freed snapshots held comes back: stored anew.
	write(t, v.root, "a.txt", "alpha 1\n", 0o644)
	write(t, v.root, "src/util/u.go", "package util // 4\n", 0o644)
	s4 := v.capture([]string{"a.txt", "src/util/u.go"}, nil)
	v.complete(s4)
	v.readsBack(s4)
	if c := v.read(s4, "a.txt"); string(c.Data) != "alpha 1\n" {
		t.Fatalf("a.txt = %q", c.Data)
	}
	if got := fullRebuild(t, v.root, nil, v.opts); got != s4 {
		t.Fatalf("incremental capture after collect = %s, a full rebuild gives %s", got, s4)
	}
}

// A fresh capture is pinned: a Collect with nothing live (and no index)
// keeps it for the pin period, and frees it after.
func TestCollectPinsFreshCaptures(t *testing.T) {
	v := newEnv(t, Options{})
	var offset atomic.Int64
	base := time.Now().Add(time.Hour) // no racy files, as noRacy
	v.e.now = func() time.Time { return base.Add(time.Duration(offset.Load())) }

	write(t, v.root, "a.txt", "one\n", 0o644)
	write(t, v.root, "d/b.txt", "bee\n", 0o644)
	s1 := v.capture(nil, nil)
	write(t, v.root, "a.txt", "two\n", 0o644)
	s2 := v.capture([]string{"a.txt"}, nil)
	if err := v.e.ForgetIndex(context.Background(), v.root); err != nil {
		t.Fatal(err)
	}
	all := union(v.reachable(s1), v.reachable(s2))
	if v.total() != all.len() {
		t.Fatalf("store holds %d objects, the snapshots %d", v.total(), all.len())
	}

	offset.Store(int64(DefaultPinPeriod - time.Second))
	st := v.collect()
	if st.FreedObjects != 0 || st.Pinned != 2 || st.IndexRoots != 0 {
		t.Fatalf("collect within the pin period: %+v", st)
	}
	v.complete(s1)
	v.complete(s2)
	v.readsBack(s2)

	offset.Store(int64(DefaultPinPeriod))
	st = v.collect()
	if st.FreedObjects != int64(all.len()) || st.Pinned != 0 {
		t.Fatalf("collect after the pin period freed %d objects, want all %d (%+v)", st.FreedObjects, all.len(), st)
	}
	if got := v.total(); got != 0 {
		t.Fatalf("%d objects left", got)
	}

	// A shorter period, set later, applies to pins already taken.
	s3 := v.capture(nil, nil)
	v.e.SetPinPeriod(time.Minute)
	offset.Add(int64(30 * time.Second))
	if st := v.collect(); st.FreedObjects != 0 {
		t.Fatalf("collect 30s after: %+v", st)
	}
	if err := v.e.ForgetIndex(context.Background(), v.root); err != nil {
		t.Fatal(err)
	}
	v.complete(s3)
	r3 := v.reachable(s3)
	offset.Add(int64(31 * time.Second))
	if st := v.collect(); st.FreedObjects != int64(r3.len()) || v.total() != 0 {
		t.Fatalf("collect 61s after: %+v, %d left", st, v.total())
	}
}

// Two projects with the same vendored subtree: either one live keeps it
// whole, and marking reads every shared tree once.
func TestCollectSharedSubtrees(t *testing.T) {
	v := newEnv(t, Options{})
	v.e.SetPinPeriod(0)
	rootA, rootB := filepath.Join(v.root, "a"), filepath.Join(v.root, "b")
	for _, r := range []string{rootA, rootB} {
		for i := range 5 {
			write(t, r, fmt.Sprintf("vendor/lib/pkg%d/f.go", i), fmt.Sprintf("package pkg%d\n", i), 0o644)
			write(t, r, fmt.Sprintf("vendor/lib/pkg%d/inner/g.go", i), fmt.Sprintf("package inner // %d\n", i), 0o644)
		}
		write(t, r, "main.go", "package main // "+filepath.Base(r)+"\n", 0o644)
		write(t, r, "only/"+filepath.Base(r)+".txt", filepath.Base(r)+"\n", 0o644)
	}
	captureBoth := func() (ID, ID) {
		a, b := v.captureAt(rootA, nil, nil), v.captureAt(rootB, nil, nil)
		for _, r := range []string{rootA, rootB} {
			if err := v.e.ForgetIndex(context.Background(), r); err != nil {
				t.Fatal(err)
			}
		}
		return a, b
	}
	a, b := captureBoth()
	ra, rb := v.reachable(a), v.reachable(b)
	vendorA, vendorB := v.lookup(a, "vendor"), v.lookup(b, "vendor")
	if vendorA.Hash != vendorB.Hash || vendorA.Kind != store.EntryDir {
		t.Fatal("test setup: vendor trees differ")
	}
	both := union(ra, rb)
	if st := v.collect(a, b); st.FreedObjects != 0 || st.TreesWalked != int64(len(both.trees)) || st.LiveRoots != 2 {
		t.Fatalf("collect with both live: %+v; want every one of the %d distinct trees read once (%d + %d with sharing)",
			st, len(both.trees), len(ra.trees), len(rb.trees))
	}

	for _, tc := range []struct {
		name       string
		live, dead func() ID
	}{
		{"a live", func() ID { return a }, func() ID { return b }},
		{"b live", func() ID { return b }, func() ID { return a }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b = captureBoth() // what the previous case freed comes back
			live, dead := tc.live(), tc.dead()
			rl, rd := v.reachable(live), v.reachable(dead)
			wb, wt := minus(rd, rl)
			st := v.collect(live)
			if st.FreedBlobs != int64(wb) || st.FreedTrees != int64(wt) {
				t.Fatalf("freed %+v, want %d blobs and %d trees", st, wb, wt)
			}
			if v.total() != rl.len() {
				t.Fatalf("%d objects left, want %d", v.total(), rl.len())
			}
			v.complete(live)
			// The dead snapshot's own trees are gone; its vendor subtree,
			// shared with the live one, is whole.
			if _, err := v.e.Lookup(context.Background(), dead, "main.go"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the dead snapshot's root: %v, want ErrNotFound", err)
			}
			vendor := v.lookup(live, "vendor")
			if vendor.Hash != vendorA.Hash {
				t.Fatal("vendor tree changed")
			}
			v.complete(vendor.Hash)
			for i := range 5 {
				p := fmt.Sprintf("lib/pkg%d/inner/g.go", i)
				if c, err := v.e.ReadEntry(context.Background(), vendor.Hash, p); err != nil || string(c.Data) != fmt.Sprintf("package inner // %d\n", i) {
					t.Fatalf("shared vendor/%s: %q, %v", p, c.Data, err)
				}
			}
		})
	}
}

// An index left pending (a capture died between writing its entries and
// its final meta) names blobs its root tree does not: they stay, and the
// next capture, which reuses them, yields a complete snapshot.
func TestCollectKeepsPendingIndexEntries(t *testing.T) {
	v := newEnv(t, Options{})
	v.e.SetPinPeriod(0)
	write(t, v.root, "a.txt", "one\n", 0o644)
	write(t, v.root, "d/b.txt", "bee\n", 0o644)
	s1 := v.capture(nil, nil)
	write(t, v.root, "a.txt", "two\n", 0o644)
	write(t, v.root, "d/c.txt", "sea\n", 0o644)
	s2 := v.capture(nil, nil)

	idx := indexID(v.root)
	err := v.db.Update(context.Background(), func(txn *store.Txn) error {
		var m indexMeta
		if err := txn.Get(store.KeyFileIndexMeta(idx), &m); err != nil {
			return err
		}
		m.Tree, m.Pending = s1, true
		return txn.Set(store.KeyFileIndexMeta(idx), m)
	})
	if err != nil {
		t.Fatal(err)
	}
	st := v.collect()
	// s2's root goes; its new blobs and d tree stay for the index entries.
	if st.FreedBlobs != 0 || st.FreedTrees != 1 {
		t.Fatalf("collect with a pending index: %+v", st)
	}
	v.counts()
	if got := v.capture(nil, nil); got != s2 {
		t.Fatalf("capture after the pending index = %s, want %s", got, s2)
	}
	if hashed, _ := v.counts(); hashed != 0 {
		t.Fatalf("rehashed %d files, want 0 (the entries' blobs were kept)", hashed)
	}
	v.complete(s2)
	v.readsBack(s2)
}

// Collects and captures of two workspaces in a loop, at once: every
// snapshot a capture returns reads back whole right after, and every
// snapshot still live at the end is complete. File contents come from a
// small pool, so captures keep finding content that only freed (or about
// to be freed) snapshots held, and directories come back as they were, so
// captures rewrite trees that are stored but unreferenced.
//
// The pin clock moves a whole pin period before a Collect starts when no
// capture is between being called and having its ID recorded as live (as
// a session would), so most Collects keep only the recorded snapshots and
// what captures running meanwhile rely on; Collects also start while
// captures run.
func TestCollectConcurrentWithCaptures(t *testing.T) {
	v := newEnv(t, Options{})
	var offset atomic.Int64
	base := time.Now().Add(time.Hour)
	v.e.now = func() time.Time { return base.Add(time.Duration(offset.Load())) }
	v.e.SetPinPeriod(time.Minute)
	roots := []string{filepath.Join(v.root, "p1"), filepath.Join(v.root, "p2")}
	iters := 60
	if testing.Short() {
		iters = 15
	}

	var recording sync.RWMutex // held by captures until their ID is recorded
	var liveMu sync.Mutex
	recent := make([][]ID, len(roots)) // per root, its last few snapshots: "recorded by sessions"
	liveIDs := func() []ID {
		liveMu.Lock()
		defer liveMu.Unlock()
		var out []ID
		for _, ids := range recent {
			out = append(out, ids...)
		}
		return out
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var collects, freed atomic.Int64
	collectErr := make(chan error, 1)
	go func() {
		defer close(collectErr)
		for ctx.Err() == nil {
			if recording.TryLock() {
				offset.Add(int64(time.Minute))
				recording.Unlock()
			}
			live := liveIDs()
			st, err := v.e.Collect(ctx, live)
			if err != nil {
				if ctx.Err() == nil {
					collectErr <- err
				}
				return
			}
			collects.Add(1)
			freed.Add(st.FreedObjects)
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, len(roots))
	for ri, root := range roots {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(ri), 42))
			state := map[string]string{}
			put := func(rel, content string) error {
				p := filepath.Join(root, filepath.FromSlash(rel))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return err
				}
				state[rel] = content
				return os.WriteFile(p, []byte(content), 0o644)
			}
			// A distinct size per content: a rewrite within one timestamp
			// tick still changes the size, so the stat shows it.
			content := func() string {
				k := rng.IntN(12)
				return fmt.Sprintf("content %d\n%s", k, strings.Repeat("x", 37*k))
			}
			for i := range 20 {
				if err := put(fmt.Sprintf("d%d/f%d.txt", i%4, i), content()); err != nil {
					errs <- err
					return
				}
			}
			for it := range iters {
				var dirty []string
				for range 1 + rng.IntN(4) {
					rel := fmt.Sprintf("d%d/f%d.txt", rng.IntN(4), rng.IntN(20))
					if err := put(rel, content()); err != nil {
						errs <- err
						return
					}
					dirty = append(dirty, rel)
				}
				if rng.IntN(5) == 0 { // a directory goes, and comes back later as it was
					d := fmt.Sprintf("d%d", rng.IntN(4))
					if err := os.RemoveAll(filepath.Join(root, d)); err != nil {
						errs <- err
						return
					}
					for rel := range state {
						if len(rel) > len(d) && rel[:len(d)+1] == d+"/" {
							delete(state, rel)
						}
					}
					dirty = append(dirty, d)
				}
				if it%7 == 0 {
					dirty = nil // a full scan now and then
				}
				recording.RLock()
				id, err := v.e.Capture(ctx, root, dirty, nil)
				if err != nil {
					recording.RUnlock()
					errs <- fmt.Errorf("capture %d of %s: %w", it, root, err)
					return
				}
				liveMu.Lock()
				recent[ri] = append(recent[ri], id)
				if n := len(recent[ri]); n > 3 {
					recent[ri] = recent[ri][n-3:]
				}
				liveMu.Unlock()
				recording.RUnlock()
				for rel, want := range state {
					c, err := v.e.ReadEntry(ctx, id, rel)
					if err != nil {
						errs <- fmt.Errorf("capture %d of %s: read %s back: %w", it, root, rel, err)
						return
					}
					if string(c.Data) != want {
						errs <- fmt.Errorf("capture %d of %s: %s reads back %q, want %q", it, root, rel, c.Data, want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for collects.Load() < 3 && !t.Failed() { // at least a few, also after the last capture
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-collectErr; err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if t.Failed() {
		return
	}
	live := liveIDs()
	v.collect(live...)
	for _, id := range live {
		v.complete(id)
	}
	for _, r := range roots {
		if err := v.e.ForgetIndex(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	v.collect(live...)
	for _, id := range live {
		v.complete(id)
	}
	if freed.Load() == 0 {
		t.Fatalf("%d collects ran alongside the captures but freed nothing: the test proves nothing", collects.Load())
	}
	t.Logf("%d collects freed %d objects alongside %d captures", collects.Load(), freed.Load(), len(roots)*iters)
}

// Large files live in Badger's value log: after their blobs are freed,
// value-log GC runs over the store without error.
func TestCollectThenValueLogGC(t *testing.T) {
	v := newEnv(t, Options{})
	v.e.SetPinPeriod(0)
	for i := range 12 {
		b := make([]byte, 1<<20+i*1000) // incompressible, over the value threshold
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		write(t, v.root, fmt.Sprintf("big/%d.bin", i), string(b), 0o644)
	}
	s := v.capture(nil, nil)
	u, err := v.e.Usage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if u.Blobs != 12 || u.BlobBytes < 12<<20 || u.Trees != 2 || u.TreeBytes <= 0 {
		t.Fatalf("usage: %+v", u)
	}
	over, used, err := v.e.OverBudget(context.Background(), 4<<20)
	if err != nil || !over || used < 12<<20 {
		t.Fatalf("OverBudget(4 MiB) = %v, %d, %v; want over with at least 12 MiB used", over, used, err)
	}
	if over, _, err := v.e.OverBudget(context.Background(), 1<<40); err != nil || over {
		t.Fatalf("OverBudget(1 TiB) = %v, %v", over, err)
	}
	if over, _, err := v.e.OverBudget(context.Background(), 0); err != nil || over {
		t.Fatalf("OverBudget(no budget) = %v, %v", over, err)
	}

	remove(t, v.root, "big")
	write(t, v.root, "small.txt", "small\n", 0o644)
	s2 := v.capture(nil, nil)
	st := v.collect(s2)
	if st.FreedBlobs != 12 || st.FreedBytes < 12<<20 {
		t.Fatalf("collect: %+v", st)
	}
	if _, err := v.e.ReadEntry(context.Background(), s, "big/0.bin"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("freed blob: %v", err)
	}
	if err := v.db.Badger().Flatten(1); err != nil { // compactions feed value-log GC its statistics
		t.Fatal(err)
	}
	n, err := v.db.RunValueLogGC()
	if err != nil {
		t.Fatalf("RunValueLogGC: %v", err)
	}
	t.Logf("value log GC rewrote %d files", n)
	v.readsBack(s2)
	if u, err := v.e.Usage(context.Background()); err != nil || u.Blobs != 1 || u.Trees != 1 {
		t.Fatalf("usage after collect: %+v, %v", u, err)
	}
}

func TestCollectCanceled(t *testing.T) {
	v := newEnv(t, Options{})
	v.e.SetPinPeriod(0)
	write(t, v.root, "a.txt", "a\n", 0o644)
	v.capture(nil, nil)
	write(t, v.root, "a.txt", "b\n", 0o644)
	v.capture(nil, nil)
	before := v.total()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.e.Collect(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Collect(canceled) = %v", err)
	}
	if v.total() != before {
		t.Fatal("a canceled Collect deleted objects")
	}
	// A live ID that is not stored is counted, not fatal.
	st := v.collect(store.BlobHash([]byte("no such tree")))
	if st.Missing != 1 || st.FreedObjects != 2 {
		t.Fatalf("collect with a missing live root: %+v", st)
	}
}

// BenchmarkCollect times a Collect of a store holding a 10,000-file
// workspace (SESSIOND_BENCH_FILES to change it) and ten older snapshots,
// each with 1% of the files changed: "steady" frees nothing (every
// snapshot live), "free" frees what only older snapshots held (the
// first iteration frees ten snapshots' worth, the next ones one), and
// "free-all" frees every object (nothing live, the index forgotten).
func BenchmarkCollect(b *testing.B) {
	n := benchFiles(b)
	root := b.TempDir()
	paths := genBenchTree(b, root, n)
	for _, mode := range []string{"steady", "free", "free-all"} {
		b.Run(mode, func(b *testing.B) {
			_, e := benchEngine(b, b.TempDir())
			e.SetPinPeriod(0)
			ctx := context.Background()
			rng := mrand.New(mrand.NewPCG(1, 2))
			var ids []ID
			snap := func() {
				var dirty []string
				for range n / 100 {
					p := paths[rng.IntN(len(paths))]
					if err := os.WriteFile(filepath.Join(root, p), fmt.Appendf(nil, "changed %d\n", rng.Int64()), 0o644); err != nil {
						b.Fatal(err)
					}
					dirty = append(dirty, p)
				}
				id, err := e.Capture(ctx, root, dirty, nil)
				if err != nil {
					b.Fatal(err)
				}
				ids = append(ids, id)
			}
			if _, err := e.Capture(ctx, root, nil, nil); err != nil {
				b.Fatal(err)
			}
			for range 10 {
				snap()
			}
			var st GCStats
			for b.Loop() {
				live := ids
				switch mode {
				case "free":
					b.StopTimer()
					snap()
					live = ids[len(ids)-1:]
					b.StartTimer()
				case "free-all":
					b.StopTimer()
					if _, err := e.Capture(ctx, root, nil, nil); err != nil {
						b.Fatal(err)
					}
					if err := e.ForgetIndex(ctx, root); err != nil {
						b.Fatal(err)
					}
					live = nil
					b.StartTimer()
				}
				var err error
				if st, err = e.Collect(ctx, live); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(st.ScannedObjects), "objects")
			b.ReportMetric(float64(st.FreedObjects), "freed")
			b.ReportMetric(float64(st.TreesWalked), "trees-walked")
		})
	}
}

// Captures at the three moments a Collect must not miss, forced with the
// engine's hook between the Collect's mark and its sweep: content and
// trees the capture relies on were unreferenced when the Collect marked.
func TestCollectDuringCapture(t *testing.T) {
	for _, tc := range []struct {
		name string
		// pause is the capture's hook point where it waits for the
		// Collect to finish; "" runs the whole capture inside the
		// Collect's pause instead.
		pause string
	}{
		{"capture found stored content", "trees"},
		{"capture wrote stored trees", "end"},
		{"capture finished during collect", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newEnv(t, Options{})
			v.e.SetPinPeriod(0) // only live IDs, the index and captures during the Collect count
			write(t, v.root, "d/f.txt", "first\n", 0o644)
			write(t, v.root, "d/g.txt", "gee\n", 0o644)
			write(t, v.root, "top.txt", "top\n", 0o644)
			s1 := v.capture(nil, nil)
			write(t, v.root, "d/f.txt", "second\n", 0o644)
			s2 := v.capture(nil, nil)
			// Back to s1: its blob and d tree are garbage (only s1 had them),
			// and the capture finds the blob stored and rewrites the tree.
			write(t, v.root, "d/f.txt", "first\n", 0o644)
			gDir := v.lookup(s1, "d").Hash

			ready, collected := make(chan struct{}), make(chan struct{})
			type result struct {
				id  ID
				err error
			}
			res := make(chan result, 1)
			capture := func() {
				id, err := v.e.Capture(context.Background(), v.root, []string{"d/f.txt"}, nil)
				res <- result{id, err}
			}
			v.e.gc.hook = func(point string) {
				switch {
				case point == "marked" && tc.pause == "":
					capture()
				case point == "marked":
					go capture()
					<-ready
				case point == tc.pause:
					close(ready)
					<-collected
				}
			}
			st := v.collect(s2)
			close(collected)
			r := <-res
			v.e.gc.hook = nil
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.id != s1 {
				t.Fatalf("capture = %s, want s1 %s", r.id, s1)
			}
			// s1's root tree (s1 has the same root as the capture) was
			// unreferenced at the mark too; nothing of it may go.
			if st.FreedObjects != 0 {
				t.Fatalf("freed %+v while a capture relied on it", st)
			}
			v.complete(r.id)
			if c := v.read(r.id, "d/f.txt"); string(c.Data) != "first\n" {
				t.Fatalf("d/f.txt = %q", c.Data)
			}
			if ok := v.lookup(r.id, "d").Hash == gDir; !ok {
				t.Fatal("d tree differs")
			}
			// Recorded nowhere now, s2 goes at the next Collect (pins off),
			// s1 stays as the index root.
			r2 := v.reachable(s2)
			wb, wt := minus(r2, v.reachable(s1))
			if st := v.collect(); st.FreedBlobs != int64(wb) || st.FreedTrees != int64(wt) {
				t.Fatalf("next collect: %+v, want %d blobs and %d trees", st, wb, wt)
			}
			v.complete(s1)
		})
	}
}

// A capture that fails during a Collect keeps what it relied on for that
// Collect (its index may be left pending and name it); one that fails
// with no Collect running leaves nothing registered.
func TestCollectDuringFailedCapture(t *testing.T) {
	v := newEnv(t, Options{})
	v.e.SetPinPeriod(0)
	write(t, v.root, "a.txt", "first\n", 0o644)
	v.capture(nil, nil)
	write(t, v.root, "a.txt", "second\n", 0o644)
	s2 := v.capture(nil, nil)
	write(t, v.root, "a.txt", "first\n", 0o644) // stored, unreferenced

	ctx, cancel := context.WithCancel(context.Background())
	failed := make(chan error, 1)
	v.e.gc.hook = func(point string) {
		switch point {
		case "marked":
			go func() {
				_, err := v.e.Capture(ctx, v.root, []string{"a.txt"}, nil)
				failed <- err
			}()
			if err := <-failed; !errors.Is(err, context.Canceled) {
				t.Errorf("capture: %v, want canceled", err)
			}
		case "trees":
			cancel() // the commit fails
		}
	}
	st := v.collect(s2)
	v.e.gc.hook = nil
	// The blob the failed capture found and the tree it was writing
	// (s1's root, unreferenced since) stay.
	if st.FreedObjects != 0 {
		t.Fatalf("collect during a failed capture: %+v", st)
	}
	if len(v.e.gc.failed) != 0 || v.e.gc.collecting {
		t.Fatal("registrations outlive the Collect")
	}
	if st := v.collect(s2); st.FreedBlobs != 1 || st.FreedTrees != 1 {
		t.Fatalf("next collect: %+v", st)
	}
	ctx, cancel = context.WithCancel(context.Background())
	v.e.gc.hook = func(point string) {
		if point == "trees" {
			cancel()
		}
	}
	if _, err := v.e.Capture(ctx, v.root, []string{"a.txt"}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("capture: %v", err)
	}
	v.e.gc.hook = nil
	if len(v.e.gc.failed) != 0 || len(v.e.gc.active) != 0 {
		t.Fatal("a capture failing outside a Collect left registrations")
	}
}
