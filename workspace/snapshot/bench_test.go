package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/store"
)

// benchFiles is the size of the generated workspace: 10,000 files by
// default so `go test -bench .` stays quick; SESSIOND_BENCH_FILES=100000
// for the size the design is judged at.
func benchFiles(b *testing.B) int {
	if s := os.Getenv("SESSIOND_BENCH_FILES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 {
			b.Fatalf("SESSIOND_BENCH_FILES=%q: want a number of files, at least 100", s)
		}
		return n
	}
	return 10_000
}

// genBenchTree writes n source-like files of 0.5–4 KiB, 100 per directory,
// in directories two levels deep, and returns their relative paths.
func genBenchTree(b *testing.B, root string, n int) []string {
	b.Helper()
	paths := make([]string, 0, n)
	line := "\tif err := doSomething(ctx, x); err != nil { return fmt.Errorf(\"do: %w\", err) }\n"
	for i := range n {
		rel := fmt.Sprintf("mod%02d/pkg%03d/file%03d.go", i/10000, (i/100)%100, i%100)
		var sb strings.Builder
		fmt.Fprintf(&sb, "package pkg%d\n\n// File %d.\nfunc F%d() {\n", i/100, i, i)
		for range 5 + i%50 {
			sb.WriteString(line)
		}
		sb.WriteString("}\n")
		p := filepath.Join(root, rel)
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, rel)
	}
	return paths
}

func benchEngine(b *testing.B, dataDir string) (*store.DB, *Engine) {
	b.Helper()
	db, err := store.Open(context.Background(), store.Options{Dir: dataDir})
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(db, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		e.Close()
		db.Close()
	})
	return db, e
}

// The first capture of a workspace: every file read, hashed, compressed
// and stored, every tree built.
func BenchmarkCaptureFirst(b *testing.B) {
	n := benchFiles(b)
	root := b.TempDir()
	genBenchTree(b, root, n)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		_, e := benchEngine(b, filepath.Join(b.TempDir(), fmt.Sprint(i)))
		b.StartTimer()
		if _, err := e.Capture(context.Background(), root, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

// A full scan with nothing changed: what the first capture after a daemon
// start or a watcher overflow costs (stat only).
func BenchmarkCaptureFullRescan(b *testing.B) {
	n := benchFiles(b)
	root := b.TempDir()
	genBenchTree(b, root, n)
	_, e := benchEngine(b, b.TempDir())
	e.now = func() time.Time { return time.Now().Add(time.Hour) } // nothing racy
	ctx := context.Background()
	if _, err := e.Capture(ctx, root, nil, nil); err != nil {
		b.Fatal(err)
	}
	e.hashed.Store(0)
	b.ResetTimer()
	for range b.N {
		if _, err := e.Capture(ctx, root, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if h := e.hashed.Load(); h != 0 {
		b.Fatalf("a rescan with nothing changed read %d files", h)
	}
}

// A turn that changed one file, reported by the watcher.
func BenchmarkCaptureOneDirty(b *testing.B) {
	n := benchFiles(b)
	root := b.TempDir()
	paths := genBenchTree(b, root, n)
	_, e := benchEngine(b, b.TempDir())
	ctx := context.Background()
	if _, err := e.Capture(ctx, root, nil, nil); err != nil {
		b.Fatal(err)
	}
	target := paths[len(paths)/2]
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		if err := os.WriteFile(filepath.Join(root, target), fmt.Appendf(nil, "package x // %d\n", i), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := e.Capture(ctx, root, []string{target}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// A revert of ten files (one of them new, with its new directory), then
// its unrevert: each iteration is one Apply of ten changes.
func BenchmarkApply10(b *testing.B) {
	root := b.TempDir()
	paths := genBenchTree(b, root, 1000)
	_, e := benchEngine(b, b.TempDir())
	ctx := context.Background()
	before, err := e.Capture(ctx, root, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	var changed []string
	for i := range 9 {
		p := paths[i*100+7]
		if err := os.WriteFile(filepath.Join(root, p), []byte("// edited by the turn\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		changed = append(changed, p)
	}
	if err := os.MkdirAll(filepath.Join(root, "newdir"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "newdir/new.go"), []byte("package newdir\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	after, err := e.Capture(ctx, root, append(changed, "newdir"), nil)
	if err != nil {
		b.Fatal(err)
	}
	lists := [2][]Change{}
	for i, pair := range [][2]ID{{before, after}, {after, before}} {
		ps, err := e.Changed(ctx, pair[0], pair[1])
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range ps {
			ent, err := e.Lookup(ctx, pair[0], p)
			if err != nil {
				b.Fatal(err)
			}
			lists[i] = append(lists[i], Change{Path: p, Target: ent})
		}
	}
	if len(lists[0]) != 11 { // nine edits, newdir and newdir/new.go
		b.Fatalf("revert list has %d changes", len(lists[0]))
	}
	b.ResetTimer()
	for i := range b.N {
		r, err := e.Apply(ctx, root, lists[i%2])
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Written)+len(r.Deleted) < 10 {
			b.Fatalf("apply did %+v", r)
		}
	}
}
