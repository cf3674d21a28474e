package store_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/store"
)

// Large values spread over two value log files (64 MiB each) and then
// deleted: value-log GC runs without error, and the store still reads.
func TestRunValueLogGCAfterDeletes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes 80 MiB")
	}
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	b := db.NewBatch()
	for i := range 80 {
		if err := b.SetRaw(fmt.Appendf(nil, "big/%02d", i), randomBytes(t, 1<<20)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SetRaw([]byte("keep"), bytes.Repeat([]byte("k"), 100<<10)); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	before, err := db.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 80 {
		if err := b.Delete(fmt.Appendf(nil, "big/%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	// Compaction is what tells value-log GC which files are garbage (it
	// sends Badger discard statistics as it drops deleted values);
	// Flatten compacts what has reached the tables. Whether this run
	// finds a file worth rewriting depends on that, so only errors fail.
	if err := db.Badger().Flatten(1); err != nil {
		t.Fatal(err)
	}
	n, err := db.RunValueLogGC()
	if err != nil {
		t.Fatalf("RunValueLogGC: %v", err)
	}
	after, err := db.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("value log GC rewrote %d files; value log %d → %d MiB", n, before.ValueLog>>20, after.ValueLog>>20)
	if v, err := get(t, db, "keep"); err != nil || len(v) != 100<<10 {
		t.Fatalf("kept value after GC: %d bytes, %v", len(v), err)
	}
	if _, err := get(t, db, "big/07"); err == nil {
		t.Fatal("deleted value is back")
	}
	if _, err := db.RunValueLogGC(); err != nil {
		t.Fatalf("second run: %v", err)
	}
}

func TestRunValueLogGCInMemory(t *testing.T) {
	t.Parallel()
	db, err := store.Open(context.Background(), store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, db)
	if n, err := db.RunValueLogGC(); n != 0 || err != nil {
		t.Fatalf("in-memory: %d, %v", n, err)
	}
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestStartValueLogGC(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	stop := store.StartValueLogGC(context.Background(), db, 10*time.Millisecond, log)
	put(t, db, "k", "v") // the store is usable meanwhile
	time.Sleep(100 * time.Millisecond)
	stop()
	stop2 := store.StartValueLogGC(context.Background(), db, time.Hour, nil)
	stop2() // returns at once, before its first tick
	closeDB(t, db)
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if bytes.Contains(logs.b.Bytes(), []byte("failed")) {
		t.Fatalf("value log GC logged a failure:\n%s", logs.b.String())
	}

	// A context that ends stops the loop as well.
	db = open(t, t.TempDir())
	defer closeDB(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	stop = store.StartValueLogGC(ctx, db, 10*time.Millisecond, nil)
	cancel()
	stop()
}
