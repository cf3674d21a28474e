package watch

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/sessiond/sessiond/workspace/ignore"
)

// deadline bounds every wait: generous, the test machine is a loaded
// 2-core VM. Waits poll; none sleeps a fixed time for an event.
const deadline = 10 * time.Second

const pollEvery = 5 * time.Millisecond

// lockedBuffer is a log sink the watcher's goroutine and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(t *testing.T) (*slog.Logger, *lockedBuffer) {
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("watcher log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// start makes a Watcher on root and takes the first, always full, Drain.
func start(t *testing.T, root string, opts Options, iopts ignore.Options) *Watcher {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger, _ = testLogger(t)
	}
	m, err := ignore.New(root, iopts)
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(t.Context(), root, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if _, full := w.Drain(); !full {
		t.Fatal("first Drain is not full")
	}
	return w
}

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// collector accumulates Drain results across polls.
type collector struct {
	w     *Watcher
	paths map[string]bool
	full  bool
}

func newCollector(w *Watcher) *collector { return &collector{w: w, paths: make(map[string]bool)} }

func (c *collector) drain() {
	ps, full := c.w.Drain()
	for _, p := range ps {
		c.paths[p] = true
	}
	c.full = c.full || full
}

// waitFor drains until every path in want has been seen, or, with
// fullOK, until a Drain reports full.
func (c *collector) waitFor(t *testing.T, fullOK bool, want ...string) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		c.drain()
		missing := slices.DeleteFunc(slices.Clone(want), func(p string) bool { return c.paths[p] })
		if len(missing) == 0 || (fullOK && c.full) {
			return
		}
		if time.Now().After(end) {
			if len(missing) > 5 {
				missing = append(missing[:5], fmt.Sprintf("... %d more", len(missing)-5))
			}
			t.Fatalf("not reported within %v: %v (full=%v)", deadline, missing, c.full)
		}
		time.Sleep(pollEvery)
	}
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v", what, deadline)
		}
		time.Sleep(pollEvery)
	}
}

// watching reports whether the inotify instance has a watch on dir.
func watching(w *Watcher, dir string) bool {
	return slices.Contains(w.fsw.WatchList(), dir)
}

func TestFirstDrainFullThenQuiet(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a.txt", "a")
	w := start(t, root, Options{}, ignore.Options{})
	if paths, full := w.Drain(); full || len(paths) != 0 {
		t.Errorf("second Drain = %v, full=%v; want nothing", paths, full)
	}
	if bad, reason := w.Degraded(); bad {
		t.Errorf("Degraded: %s", reason)
	}
}

// eventLog accumulates what a subscription delivers.
type eventLog struct {
	ch   <-chan Batch
	seen map[Event]bool
	all  []Event
}

func newEventLog(ch <-chan Batch) *eventLog { return &eventLog{ch: ch, seen: make(map[Event]bool)} }

// wait reads batches until every event in want has been delivered.
func (l *eventLog) wait(t *testing.T, want ...Event) {
	t.Helper()
	timeout := time.After(deadline)
	for {
		if !slices.ContainsFunc(want, func(e Event) bool { return !l.seen[e] }) {
			return
		}
		select {
		case b, ok := <-l.ch:
			if !ok {
				t.Fatal("subscription closed")
			}
			for _, e := range b.Events {
				l.seen[e] = true
			}
			l.all = append(l.all, b.Events...)
		case <-timeout:
			t.Fatalf("events %v not all delivered within %v; saw %v", want, deadline, l.all)
		}
	}
}

// reset forgets what was delivered so far.
func (l *eventLog) reset() { clear(l.seen); l.all = nil }

func TestFileChanges(t *testing.T) {
	root := t.TempDir()
	write(t, root, "sub/keep.txt", "k")
	w := start(t, root, Options{}, ignore.Options{})
	events := newEventLog(w.Subscribe(t.Context()))
	c := newCollector(w)

	steps := []struct {
		name string
		do   func()
		want []Event
	}{
		{"create", func() { write(t, root, "a.txt", "1") }, []Event{{"a.txt", Created}}},
		{"create in subdir", func() { write(t, root, "sub/b.txt", "1") }, []Event{{"sub/b.txt", Created}}},
		{"modify", func() {
			f, err := os.OpenFile(filepath.Join(root, "a.txt"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("2")
			f.Close()
		}, []Event{{"a.txt", Modified}}},
		{"rename", func() {
			if err := os.Rename(filepath.Join(root, "a.txt"), filepath.Join(root, "sub", "c.txt")); err != nil {
				t.Fatal(err)
			}
		}, []Event{{"a.txt", Renamed}, {"sub/c.txt", Created}}},
		{"delete", func() {
			if err := os.Remove(filepath.Join(root, "sub", "b.txt")); err != nil {
				t.Fatal(err)
			}
		}, []Event{{"sub/b.txt", Deleted}}},
		{"chmod", func() {
			if err := os.Chmod(filepath.Join(root, "sub", "keep.txt"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, []Event{{"sub/keep.txt", Modified}}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do()
			var paths []string
			for _, e := range st.want {
				paths = append(paths, e.Path)
			}
			events.wait(t, st.want...)
			c.waitFor(t, false, paths...)
			if c.full {
				t.Error("Drain reported full for plain changes")
			}
			clear(c.paths)
			events.reset()
		})
	}

	select {
	case <-w.Changes():
	case <-time.After(deadline):
		t.Error("Changes was not signalled")
	}
}

// TestMkdirPBurst creates 1,000 directories at once, deep and wide, and a
// file in each right after, racing the watcher adding its watches: every
// file must be reported (or the Drain must say full).
func TestMkdirPBurst(t *testing.T) {
	root := t.TempDir()
	w := start(t, root, Options{}, ignore.Options{})
	c := newCollector(w)

	var dirs, files []string
	for i := range 100 {
		deep := fmt.Sprintf("burst/w%02d", i)
		for j := 1; j < 10; j++ {
			deep += fmt.Sprintf("/d%d", j)
		}
		if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(deep)), 0o755); err != nil {
			t.Fatal(err)
		}
		for d := deep; d != "burst"; d = path.Dir(d) {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) != 1000 {
		t.Fatalf("made %d directories, want 1000", len(dirs))
	}
	for _, d := range dirs {
		f := d + "/f.txt"
		write(t, root, f, d)
		files = append(files, f)
	}

	c.waitFor(t, true, append(files, "burst")...)
	if c.full {
		t.Log("the kernel queue overflowed: Drain reported full, which is the contract")
		return
	}
	for _, d := range dirs {
		if !c.paths[d] {
			t.Errorf("directory %s not reported", d)
		}
	}
	// The files were not merely found by a scan: every directory is
	// watched, so a later write deep down is seen too.
	eventually(t, "watches on every new directory", func() bool {
		n := 0
		for _, p := range w.fsw.WatchList() {
			if strings.Contains(p, string(filepath.Separator)+"burst") {
				n++
			}
		}
		return n == 1001
	})
	last := files[0]
	write(t, root, last, "again")
	clear(c.paths)
	c.waitFor(t, false, last)
}

func TestIgnoredProduceNothing(t *testing.T) {
	root := t.TempDir()
	write(t, root, ".gitignore", "node_modules/\n*.log\n")
	write(t, root, ".git/info/exclude", "")
	write(t, root, ".git/objects/00", "")
	write(t, root, "node_modules/old/index.js", "")
	data := filepath.Join(root, "state")
	w := start(t, root, Options{}, ignore.Options{Exclude: []string{data}})
	if watching(w, filepath.Join(root, "node_modules")) || watching(w, filepath.Join(root, ".git", "objects")) {
		t.Errorf("an ignored directory is watched: %v", w.fsw.WatchList())
	}
	c := newCollector(w)

	write(t, root, "node_modules/new/pkg/index.js", "x")
	write(t, root, "node_modules/old/index.js", "changed")
	write(t, root, "debug.log", "x")
	write(t, root, "sub/trace.log", "x")
	write(t, root, ".git/objects/ab", "x")
	write(t, root, "state/store/000001.vlog", "x")
	write(t, root, "sentinel.txt", "x")
	c.waitFor(t, false, "sentinel.txt", "sub")
	for p := range c.paths {
		if p != "sentinel.txt" && p != "sub" {
			t.Errorf("ignored path reported: %s", p)
		}
	}
	if watching(w, filepath.Join(root, "node_modules", "new")) || watching(w, data) {
		t.Errorf("an ignored directory is watched: %v", w.fsw.WatchList())
	}
}

func TestRuleChangesReload(t *testing.T) {
	root := t.TempDir()
	write(t, root, ".gitignore", "gen/\n")
	write(t, root, ".git/info/exclude", "")
	write(t, root, "gen/old.txt", "x")
	m, err := ignore.New(root, ignore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := testLogger(t)
	w, err := New(t.Context(), root, m, Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Drain()
	c := newCollector(w)

	t.Run(".gitignore no longer ignores gen", func(t *testing.T) {
		write(t, root, ".gitignore", "")
		eventually(t, "gen watched", func() bool { return watching(w, filepath.Join(root, "gen")) })
		c.waitFor(t, true, ".gitignore")
		if !c.full {
			t.Error("a rule change did not make Drain full")
		}
		eventually(t, "Drain not full again", func() bool { _, full := w.Drain(); return !full })
		write(t, root, "gen/new.txt", "x")
		clear(c.paths)
		c.waitFor(t, false, "gen/new.txt")
	})

	t.Run(".gitignore ignores out", func(t *testing.T) {
		write(t, root, "out/a.txt", "x")
		c.waitFor(t, false, "out/a.txt")
		write(t, root, ".gitignore", "out/\n")
		eventually(t, "out unwatched", func() bool { return !watching(w, filepath.Join(root, "out")) })
		eventually(t, "Drain not full again", func() bool { _, full := w.Drain(); return !full })
		clear(c.paths)
		write(t, root, "out/b.txt", "x")
		write(t, root, "sentinel1", "x")
		c.waitFor(t, false, "sentinel1")
		if c.paths["out/b.txt"] {
			t.Error("out/b.txt reported after out/ was ignored")
		}
	})

	t.Run("info/exclude", func(t *testing.T) {
		write(t, root, ".git/info/exclude", "scratch/\n")
		eventually(t, "matcher reloaded", func() bool { return m.Ignored("scratch", true) })
		clear(c.paths)
		write(t, root, "scratch/x.txt", "x")
		write(t, root, "sentinel2", "x")
		c.waitFor(t, false, "sentinel2")
		if c.paths["scratch"] || c.paths["scratch/x.txt"] {
			t.Errorf("excluded path reported: %v", c.paths)
		}
	})

	t.Run(".sessiondignore", func(t *testing.T) {
		write(t, root, ".sessiondignore", "*.bin\n")
		eventually(t, "matcher reloaded", func() bool { return m.Ignored("x.bin", false) })
		clear(c.paths)
		write(t, root, "x.bin", "x")
		write(t, root, "sentinel3", "x")
		c.waitFor(t, false, "sentinel3")
		if c.paths["x.bin"] {
			t.Error("x.bin reported after .sessiondignore ignored it")
		}
	})
}

func TestDirectoriesRemovedAndRenamed(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a/b/c/f.txt", "x")
	write(t, root, "x/y/f.txt", "x")
	w := start(t, root, Options{}, ignore.Options{})
	c := newCollector(w)
	abs := func(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }

	if err := os.RemoveAll(abs("a")); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, false, "a")
	eventually(t, "watches of a removed tree dropped", func() bool {
		return !slices.ContainsFunc(w.fsw.WatchList(), func(p string) bool { return strings.HasPrefix(p, abs("a")) })
	})

	if err := os.Rename(abs("x"), abs("z")); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, false, "x", "z", "z/y", "z/y/f.txt")
	eventually(t, "watches follow the rename", func() bool {
		return watching(w, abs("z/y")) && !watching(w, abs("x/y")) && !watching(w, abs("x"))
	})
	clear(c.paths)
	write(t, root, "z/y/g.txt", "x")
	c.waitFor(t, false, "z/y/g.txt")
	if c.paths["x/y/g.txt"] {
		t.Error("a change under the renamed directory was reported under its old name")
	}
}

func TestOverflowMakesDrainFull(t *testing.T) {
	root := t.TempDir()
	inject := make(chan error)
	w := start(t, root, Options{errs: inject}, ignore.Options{})
	c := newCollector(w)
	events := w.Subscribe(t.Context())

	select {
	case inject <- fsnotify.ErrEventOverflow:
	case <-time.After(deadline):
		t.Fatal("the watcher did not take the injected error")
	}
	eventually(t, "a full Drain after the overflow", func() bool { c.drain(); return c.full })
	select {
	case b := <-events:
		if !b.Lost {
			t.Errorf("subscriber batch after an overflow: %+v, want Lost", b)
		}
	case <-time.After(deadline):
		t.Error("subscriber not told of the overflow")
	}
	eventually(t, "Drain not full again after the rescan", func() bool { _, full := w.Drain(); return !full })
	if bad, _ := w.Degraded(); bad {
		t.Error("an overflow degraded the watcher for good")
	}
	write(t, root, "after.txt", "x")
	c.waitFor(t, false, "after.txt")
}

func TestDegradedWhenWatchesRunOut(t *testing.T) {
	root := t.TempDir()
	write(t, root, "nowatch1/f.txt", "x")
	logger, logs := testLogger(t)
	opts := Options{
		Logger: logger,
		addWatch: func(add func(string) error, dir string) error {
			if strings.HasPrefix(filepath.Base(dir), "nowatch") {
				return fmt.Errorf("simulated: %w", syscall.ENOSPC)
			}
			return add(dir)
		},
	}
	w := start(t, root, opts, ignore.Options{})
	bad, reason := w.Degraded()
	if !bad || !strings.Contains(reason, "max_user_watches") || !strings.Contains(reason, watchesHint) {
		t.Fatalf("Degraded() = %v, %q; want true with the sysctl to raise", bad, reason)
	}
	for i := range 3 {
		if _, full := w.Drain(); !full {
			t.Fatalf("Drain %d while degraded is not full", i)
		}
	}

	// It keeps working: changes where watches exist are still reported,
	// and a second failure is not logged again.
	c := newCollector(w)
	write(t, root, "nowatch2/g.txt", "x")
	write(t, root, "ok.txt", "x")
	c.waitFor(t, false, "nowatch2", "ok.txt")
	if n := strings.Count(logs.String(), watchesHint); n != 1 {
		t.Errorf("the sysctl hint was logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestDegradedWithoutInotify(t *testing.T) {
	root := t.TempDir()
	opts := Options{newFS: func() (*fsnotify.Watcher, error) {
		return nil, fmt.Errorf("couldn't initialize inotify: %w", syscall.EMFILE)
	}}
	w := start(t, root, opts, ignore.Options{})
	bad, reason := w.Degraded()
	if !bad || !strings.Contains(reason, instancesHint) {
		t.Fatalf("Degraded() = %v, %q; want true with the sysctl to raise", bad, reason)
	}
	for i := range 2 {
		if _, full := w.Drain(); !full {
			t.Fatalf("Drain %d without inotify is not full", i)
		}
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for _, how := range []string{"Close", "cancel"} {
		root := t.TempDir()
		write(t, root, "d/e/f.txt", "x")
		m, err := ignore.New(root, ignore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		w, err := New(ctx, root, m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		subCtx, subCancel := context.WithCancel(t.Context())
		ch1 := w.Subscribe(subCtx)
		ch2 := w.Subscribe(t.Context())
		write(t, root, "d/new.txt", "x")
		newCollector(w).waitFor(t, false, "d/new.txt")
		subCancel()
		eventually(t, "cancelled subscription closed", func() bool {
			select {
			case _, ok := <-ch1:
				return !ok
			default:
				return false
			}
		})
		if how == "Close" {
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		} else {
			cancel()
		}
		for range ch2 { // closed when the watcher stops
		}
		if _, full := w.Drain(); !full {
			t.Errorf("%s: Drain after stop is not full", how)
		}
		if ch := w.Subscribe(t.Context()); func() bool { _, ok := <-ch; return ok }() {
			t.Errorf("%s: Subscribe after stop returned an open channel", how)
		}
		w.Close() // twice is fine
		cancel()
	}
	eventually(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= before })
}

func TestCoalesce(t *testing.T) {
	tests := []struct {
		in   []Event
		want []Event
	}{
		{[]Event{{"a", Created}, {"a", Modified}}, []Event{{"a", Created}}},
		{[]Event{{"a", Created}, {"a", Deleted}}, nil},
		{[]Event{{"a", Created}, {"a", Renamed}, {"b", Created}}, []Event{{"b", Created}}},
		{[]Event{{"a", Deleted}, {"a", Created}}, []Event{{"a", Modified}}},
		{[]Event{{"a", Modified}, {"a", Deleted}}, []Event{{"a", Deleted}}},
		{[]Event{{"a", Modified}, {"b", Modified}, {"a", Modified}}, []Event{{"a", Modified}, {"b", Modified}}},
		{[]Event{{"a", Created}, {"a", Deleted}, {"b", Modified}, {"a", Created}}, []Event{{"b", Modified}, {"a", Created}}},
	}
	for _, tt := range tests {
		var c coalescer
		for _, e := range tt.in {
			c.add(e.Path, e.Kind)
		}
		if got := c.take(); !slices.Equal(got, tt.want) {
			t.Errorf("coalesce %v = %v, want %v", tt.in, got, tt.want)
		}
		if got := c.take(); got != nil {
			t.Errorf("second take = %v, want nothing", got)
		}
	}
}

func TestNewRejects(t *testing.T) {
	root := t.TempDir()
	m, err := ignore.New(root, ignore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := ignore.New(t.TempDir(), ignore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, root, "file", "")
	fileM, err := ignore.New(filepath.Join(root, "file"), ignore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"nil matcher":   func() error { _, err := New(t.Context(), root, nil, Options{}); return err },
		"relative root": func() error { _, err := New(t.Context(), "rel", m, Options{}); return err },
		"other matcher": func() error { _, err := New(t.Context(), root, other, Options{}); return err },
		"root is file":  func() error { _, err := New(t.Context(), filepath.Join(root, "file"), fileM, Options{}); return err },
	} {
		if call() == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// TestDirectoryReplacedDropsItsRules moves a directory holding a .gitignore
// out of the workspace (no event comes for the .gitignore) and makes a new
// one of the same name: the old rules must not apply to it.
func TestDirectoryReplacedDropsItsRules(t *testing.T) {
	root := t.TempDir()
	write(t, root, "pkg/.gitignore", "*.gen\n")
	write(t, root, "pkg/a.gen", "x")
	w := start(t, root, Options{}, ignore.Options{})
	c := newCollector(w)
	if err := os.Rename(filepath.Join(root, "pkg"), filepath.Join(t.TempDir(), "pkg")); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, false, "pkg")
	write(t, root, "pkg/b.gen", "x")
	c.waitFor(t, false, "pkg/b.gen")
}

func TestSymlinkedRoot(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	w := start(t, link, Options{}, ignore.Options{})
	c := newCollector(w)
	write(t, real, "d/f.txt", "x")
	c.waitFor(t, false, "d", "d/f.txt")
}

func TestRootRemovedDegrades(t *testing.T) {
	root := filepath.Join(t.TempDir(), "ws")
	write(t, root, "f.txt", "x")
	w := start(t, root, Options{}, ignore.Options{})
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	eventually(t, "degraded after the root went", func() bool { bad, _ := w.Degraded(); return bad })
	if _, full := w.Drain(); !full {
		t.Error("Drain after the root went is not full")
	}
}

// The capture at the end of a turn drains right after the command exits:
// Sync must make every write made before it visible to that Drain, and its
// sentinel must never show up as a change.
func TestSyncMakesEarlierWritesVisible(t *testing.T) {
	root := t.TempDir()
	w := start(t, root, Options{}, ignore.Options{})
	for round := range 5 {
		var want []string
		for i := range 100 {
			rel := fmt.Sprintf("d%d/f%03d.txt", round, i)
			write(t, root, rel, "x")
			want = append(want, rel)
		}
		if err := w.Sync(t.Context()); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		paths, full := w.Drain()
		if full {
			t.Fatalf("round %d: Drain after Sync is full; want the paths", round)
		}
		got := map[string]bool{}
		for _, p := range paths {
			if strings.HasPrefix(p, syncPrefix) {
				t.Errorf("round %d: sentinel %s reported as a change", round, p)
			}
			got[p] = true
		}
		// A file may be reported through its new directory instead.
		dir := fmt.Sprintf("d%d", round)
		for _, p := range want {
			if !got[p] && !got[dir] {
				t.Fatalf("round %d: %s written before Sync is missing from Drain %v", round, p, paths)
			}
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), syncPrefix) {
			t.Errorf("sentinel %s left in the workspace", e.Name())
		}
	}
}
