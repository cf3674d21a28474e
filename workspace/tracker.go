package workspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sessiond/sessiond/workspace/ignore"
	"github.com/sessiond/sessiond/workspace/snapshot"
	"github.com/sessiond/sessiond/workspace/watch"
)

// RootFor returns the top-level directory of the project's checkout that
// holds dir: the root, or the clone or worktree dir lies in. Snapshots are
// taken of that whole checkout, so a command run in a subdirectory is seen
// wherever it writes.
func (p Project) RootFor(dir string) string {
	best := ""
	for _, r := range append([]string{p.Root}, p.Worktrees...) {
		if Contains(r, dir) && len(r) > len(best) {
			best = r
		}
	}
	if best == "" {
		return dir
	}
	return best
}

// TrackerOptions configure Trackers.
type TrackerOptions struct {
	// Exclude lists absolute paths never watched nor captured: the data dir.
	Exclude []string
	// OnChange receives the watcher's debounced file events of a project,
	// for the file.changed feed. It must not block for long.
	OnChange func(projectID, root string, events []watch.Event)
	Logger   *slog.Logger
}

// Trackers keeps one Tracker per checkout root, made on first use and kept
// until Close: watching costs an inotify watch per directory, capturing
// without a watcher costs a full stat scan.
//
// The first walk of a checkout (an inotify watch per directory) runs
// outside mu: a big workspace takes a while to index, and meanwhile other
// checkouts start and daemon/status answers. Callers for a root being
// walked wait for that one walk.
type Trackers struct {
	ctx    context.Context
	cancel context.CancelFunc
	engine *snapshot.Engine
	opts   TrackerOptions
	log    *slog.Logger

	mu     sync.Mutex
	byRoot map[string]*trackerEntry
	// wg counts the walks under way and the goroutines feeding OnChange,
	// so Close returns after them.
	wg sync.WaitGroup

	// beforeWalk, when set (by tests), runs before the first walk of root.
	beforeWalk func(root string)
}

// trackerEntry is a checkout's tracker, or the walk that is making it.
type trackerEntry struct {
	ready chan struct{} // closed when t or err is set
	t     *Tracker
	err   error
}

// NewTrackers returns an empty set of trackers capturing with engine.
func NewTrackers(engine *snapshot.Engine, opts TrackerOptions) *Trackers {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Trackers{ctx: ctx, cancel: cancel, engine: engine, opts: opts, log: log, byRoot: map[string]*trackerEntry{}}
}

// Tracker watches one checkout and captures its snapshots.
type Tracker struct {
	root      string
	projectID string
	matcher   *ignore.Matcher
	watcher   *watch.Watcher
	engine    *snapshot.Engine

	// mu serialises captures of this root: the watcher's dirty set is
	// drained by one capture at a time.
	mu sync.Mutex
	// rescan is set when a capture failed after draining the dirty set:
	// what it drained is lost, so the next capture scans everything.
	rescan bool
}

// Get returns the tracker of root, starting it if need be. A caller that
// finds root being walked waits for that walk (or for ctx); a walk that
// fails is forgotten, so the next Get tries again.
func (ts *Trackers) Get(ctx context.Context, projectID, root string) (*Tracker, error) {
	root = filepath.Clean(root)
	ts.mu.Lock()
	if e := ts.byRoot[root]; e != nil {
		ts.mu.Unlock()
		select {
		case <-e.ready:
			return e.t, e.err
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the first walk of %s: %w", root, context.Cause(ctx))
		}
	}
	if ts.ctx.Err() != nil {
		ts.mu.Unlock()
		return nil, errors.New("the daemon is shutting down")
	}
	e := &trackerEntry{ready: make(chan struct{})}
	ts.byRoot[root] = e
	ts.wg.Add(1)
	ts.mu.Unlock()
	defer ts.wg.Done()

	t, err := ts.start(projectID, root)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err == nil && ts.ctx.Err() != nil {
		// Close ran during the walk and did not see this watcher.
		t.watcher.Close()
		t, err = nil, errors.New("the daemon is shutting down")
	}
	e.t, e.err = t, err
	close(e.ready)
	if err != nil {
		if ts.byRoot[root] == e {
			delete(ts.byRoot, root)
		}
		return nil, err
	}
	if ts.opts.OnChange != nil {
		batches := t.watcher.Subscribe(ts.ctx)
		ts.wg.Go(func() {
			for b := range batches {
				if len(b.Events) > 0 {
					ts.opts.OnChange(projectID, root, b.Events)
				}
			}
		})
	}
	ts.log.Debug("workspace: watching", "root", root, "project", projectID)
	return t, nil
}

// start reads root's ignore rules and walks it to watch every directory:
// the slow part of Get, run without ts.mu.
func (ts *Trackers) start(projectID, root string) (*Tracker, error) {
	if ts.beforeWalk != nil {
		ts.beforeWalk(root)
	}
	m, err := ignore.New(root, ignore.Options{Exclude: ts.opts.Exclude, Logger: ts.log})
	if err != nil {
		return nil, fmt.Errorf("read ignore rules of %s: %w", root, err)
	}
	w, err := watch.New(ts.ctx, root, m, watch.Options{Logger: ts.log})
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	return &Tracker{root: root, projectID: projectID, matcher: m, watcher: w, engine: ts.engine}, nil
}

// ready returns the started trackers; checkouts still being walked are
// left out. The caller holds ts.mu.
func (ts *Trackers) ready() map[string]*Tracker {
	out := make(map[string]*Tracker, len(ts.byRoot))
	for root, e := range ts.byRoot {
		if e.t != nil {
			out[root] = e.t
		}
	}
	return out
}

// Degraded lists the roots whose watcher cannot see every change, with
// the reason and the fix.
func (ts *Trackers) Degraded() map[string]string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := map[string]string{}
	for root, t := range ts.ready() {
		if bad, why := t.watcher.Degraded(); bad {
			out[root] = why
		}
	}
	return out
}

// Count is the number of checkouts being watched (not those still walked
// for the first time).
func (ts *Trackers) Count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.ready())
}

// Close stops every watcher; a first walk under way stops too and closes
// its own watcher.
func (ts *Trackers) Close() error {
	ts.cancel()
	ts.mu.Lock()
	var errs []error
	for _, t := range ts.ready() {
		errs = append(errs, t.watcher.Close())
	}
	clear(ts.byRoot)
	ts.mu.Unlock()
	ts.wg.Wait()
	return errors.Join(errs...)
}

// Root is the checkout this tracker captures.
func (t *Tracker) Root() string { return t.root }

// Capture records the checkout as it is now. It first waits until the
// watcher has read every change made before the call, so a capture at the
// end of a turn sees every write of the turn; then it examines only what
// the watcher saw change (everything, after an overflow or a restart).
func (t *Tracker) Capture(ctx context.Context) (snapshot.ID, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.watcher.Sync(ctx); err != nil {
		return snapshot.ID{}, err
	}
	paths, full := t.watcher.Drain()
	if full || t.rescan {
		paths = nil
	} else if paths == nil {
		paths = []string{} // nothing changed: the last snapshot stands
	}
	id, err := t.engine.Capture(ctx, t.root, paths, syncIgnorer{t.matcher})
	if err != nil {
		t.rescan = true
		return snapshot.ID{}, fmt.Errorf("capture %s: %w", t.root, err)
	}
	t.rescan = false
	return id, nil
}

// syncIgnorer also hides the watcher's sync sentinels from a full scan.
type syncIgnorer struct{ m *ignore.Matcher }

func (s syncIgnorer) Ignored(rel string, isDir bool) bool {
	return strings.HasPrefix(rel, ".sessiond-sync-") || s.m.Ignored(rel, isDir)
}
