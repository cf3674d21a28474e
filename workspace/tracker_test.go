package workspace

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// patience bounds a wait for something that must happen; it only turns a
// hang into a failure.
const patience = 30 * time.Second

func newTestTrackers(t *testing.T) *Trackers {
	t.Helper()
	db, err := store.Open(context.Background(), store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	engine, err := snapshot.New(db, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	ts := NewTrackers(engine, TrackerOptions{})
	t.Cleanup(func() { ts.Close() })
	return ts
}

// await returns what ch delivers, failing the test if it never does.
func await[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience):
		t.Fatalf("%s did not return within %s", what, patience)
		panic("unreachable")
	}
}

type getResult struct {
	t   *Tracker
	err error
}

func goGet(ts *Trackers, root string) <-chan getResult {
	ch := make(chan getResult, 1)
	go func() {
		tr, err := ts.Get(context.Background(), "prj_1", root)
		ch <- getResult{tr, err}
	}()
	return ch
}

// While the first walk of a big checkout runs, the daemon keeps serving:
// another checkout starts, daemon/status (Count, Degraded) answers, and a
// second caller for the same checkout waits for the one walk instead of
// starting another.
func TestTrackersGetWalksOutsideTheLock(t *testing.T) {
	ts := newTestTrackers(t)
	big, small := t.TempDir(), t.TempDir()
	entered, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	// Registered after newTestTrackers: runs before its Close, which a
	// walk held forever would block.
	t.Cleanup(unblock)
	var walks atomic.Int32
	ts.beforeWalk = func(root string) {
		if root != big {
			return
		}
		walks.Add(1)
		close(entered)
		<-release
	}

	first := goGet(ts, big)
	await(t, "the walk of the big checkout", entered)

	r := await(t, "Get of another checkout while the big one is walked", goGet(ts, small))
	if r.err != nil || r.t.Root() != small {
		t.Fatalf("Get(%s) = %v, %v", small, r.t, r.err)
	}
	status := make(chan int, 1)
	go func() {
		ts.Degraded()
		status <- ts.Count()
	}()
	if n := await(t, "Count and Degraded while the big checkout is walked", status); n != 1 {
		t.Errorf("Count while one checkout is ready and one is being walked = %d, want 1", n)
	}

	second := goGet(ts, big)
	unblock()
	a := await(t, "the first Get of the big checkout", first)
	b := await(t, "the second Get of the big checkout", second)
	if a.err != nil || b.err != nil {
		t.Fatalf("Get(%s): %v, %v", big, a.err, b.err)
	}
	if a.t != b.t {
		t.Errorf("two Gets of one checkout returned two trackers")
	}
	if n := walks.Load(); n != 1 {
		t.Errorf("two Gets of one checkout walked it %d times, want once", n)
	}
	if n := ts.Count(); n != 2 {
		t.Errorf("Count after both walks = %d, want 2", n)
	}
}

// A checkout that cannot be watched is not remembered as failed: once the
// cause is fixed, the next Get starts it.
func TestTrackersGetRetriesAfterAFailedStart(t *testing.T) {
	ts := newTestTrackers(t)
	root := t.TempDir() + "/later"
	if _, err := ts.Get(context.Background(), "prj_1", root); err == nil {
		t.Fatalf("Get of a missing directory succeeded")
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Get(context.Background(), "prj_1", root); err != nil {
		t.Fatalf("Get once the directory exists: %v", err)
	}
}
