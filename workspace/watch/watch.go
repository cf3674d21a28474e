// Package watch keeps a dirty set of the paths of one workspace that
// changed, so that a snapshot costs O(files changed) rather than O(files in
// the workspace) (DESIGN §4).
//
// inotify is not recursive: the Watcher adds a watch per directory, skipping
// ignored ones, and when a directory appears it watches it first and then
// lists it, so that files created in it before its watch existed (mkdir -p
// then write) are reported too. Whenever it may have missed something (the
// kernel queue overflowed, the ignore rules changed, a watch could not be
// added) it says so through Drain's full result, and the consumer falls back
// to a stat scan of the whole workspace.
package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/sessiond/sessiond/workspace/ignore"
)

// DefaultDebounce is how long the workspace must be quiet before Changes
// and subscribers are told: long enough to fold an editor's save or a
// build's burst into one notification, short enough to feel immediate.
const DefaultDebounce = 50 * time.Millisecond

// maxDelayFactor bounds, in debounce periods, how long a steady stream of
// events can hold notifications back.
const maxDelayFactor = 20

// The sysctls to raise when inotify runs out, quoted in logs and in
// Degraded's reason so the user can paste them.
const (
	watchesHint   = "sudo sysctl fs.inotify.max_user_watches=524288"
	instancesHint = "sudo sysctl fs.inotify.max_user_instances=512"
	persistHint   = " (persist it in /etc/sysctl.d/), then restart the daemon"
)

// Kind says what happened to a path.
type Kind string

// The kinds of Event. A rename is two events: Renamed for the old path
// (gone from there) and Created for the new one when it is in the
// workspace; inotify cannot tell an editor's atomic save (write a temporary
// file, rename it over the target) from a new file, so that comes as
// Created too.
const (
	Created  Kind = "created"
	Modified Kind = "modified"
	Deleted  Kind = "deleted"
	Renamed  Kind = "renamed"
)

// Event is one debounced change, for file.changed notifications.
type Event struct {
	// Path is slash-separated and relative to the root. It may name a
	// directory that was created, deleted or renamed as a whole.
	Path string `json:"path"`
	Kind Kind   `json:"kind"`
}

// Batch is what a subscriber receives: the events of one or more debounce
// windows, one per path.
type Batch struct {
	Events []Event
	// Lost reports that events were missed (overflow, changed ignore
	// rules, a degraded watcher): what the subscriber shows may be stale.
	Lost bool
}

// Options configures a Watcher.
type Options struct {
	// Debounce is the quiet time before Changes and subscribers are told;
	// 0 means DefaultDebounce. Drain does not wait for it.
	Debounce time.Duration
	// Logger receives the degraded-mode warning and oddities; nil discards.
	Logger *slog.Logger

	// Test hooks. newFS replaces fsnotify.NewWatcher; addWatch wraps the
	// adding of one watch (add is the real one); errs feeds extra errors
	// into the event loop as if fsnotify had reported them.
	newFS    func() (*fsnotify.Watcher, error)
	addWatch func(add func(string) error, dir string) error
	errs     <-chan error
}

// fileID identifies a directory across renames: inotify watches follow the
// inode, so a directory seen again under a new path must shed its old watch
// before it is watched there.
type fileID struct{ dev, ino uint64 }

// Watcher watches one workspace. Its methods are safe for concurrent use.
type Watcher struct {
	root     string
	m        *ignore.Matcher
	log      *slog.Logger
	debounce time.Duration
	opts     Options
	fsw      *fsnotify.Watcher // nil when inotify could not be had

	ctx      context.Context
	cancel   context.CancelFunc
	loopDone chan struct{}
	subWG    sync.WaitGroup
	changes  chan struct{}
	closeErr error

	// Owned by the loop goroutine (and New before it starts).
	watched     map[string]fileID // rel dir ("" = root) → its identity
	byID        map[fileID]string
	meta        map[string]bool // absolute dirs watched for info/exclude
	pending     coalescer       // events not yet told to subscribers
	pendingLost bool
	needResync  bool
	armed       bool
	firstEvent  time.Time
	timer       *time.Timer
	errorCount  int // overflows and other fsnotify errors

	mu        sync.Mutex
	dirty     map[string]struct{}
	full      bool
	resyncing bool
	degraded  string // reason; "" while all is well
	subs      map[*subscriber]struct{}
	closed    bool
	syncs     map[string]chan struct{} // sentinel name → closed when its event is read
	syncSeq   uint64
}

// New watches the workspace at root, an absolute directory, with m (made
// for the same root) deciding what to skip. The initial walk adds a watch
// per directory before New returns, so any later change is seen. The
// watcher stops when ctx ends or Close is called.
//
// When inotify itself is out of reach (too many instances) New still
// returns a working Watcher, degraded: every Drain reports full.
func New(ctx context.Context, root string, m *ignore.Matcher, opts Options) (*Watcher, error) {
	if m == nil {
		return nil, errors.New("watch: no ignore matcher given: make one with ignore.New for the same root")
	}
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("watch: workspace root %q is not absolute: pass the project's root directory", root)
	}
	root = filepath.Clean(root)
	if m.Root() != root {
		return nil, fmt.Errorf("watch: the ignore matcher is for %s, not %s: make one for this root", m.Root(), root)
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("watch: cannot watch workspace: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("watch: workspace root %s is not a directory", root)
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{
		root:     root,
		m:        m,
		log:      log.With("workspace", root),
		debounce: opts.Debounce,
		opts:     opts,
		ctx:      ctx,
		cancel:   cancel,
		loopDone: make(chan struct{}),
		changes:  make(chan struct{}, 1),
		watched:  make(map[string]fileID),
		byID:     make(map[fileID]string),
		meta:     make(map[string]bool),
		dirty:    make(map[string]struct{}),
		subs:     make(map[*subscriber]struct{}),
		syncs:    make(map[string]chan struct{}),
		timer:    time.NewTimer(time.Hour),
		// Nothing was watched before now: the consumer must scan once.
		full: true,
	}
	w.timer.Stop()

	newFS := fsnotify.NewWatcher
	if opts.newFS != nil {
		newFS = opts.newFS
	}
	if w.fsw, err = newFS(); err != nil {
		w.fsw = nil
		w.degrade(err, "cannot start inotify (fs.inotify.max_user_instances)", instancesHint+persistHint)
	}
	if err := w.resync(ctx); err != nil {
		w.stop()
		cancel()
		return nil, fmt.Errorf("watch: initial scan of %s: %w", root, err)
	}
	go w.loop()
	return w, nil
}

// Root returns the watched directory.
func (w *Watcher) Root() string { return w.root }

// Drain returns the paths (slash-separated, relative to the root, sorted)
// changed since the last call, and clears them. A path may name a
// directory created, deleted or renamed as a whole: the consumer must look
// at everything it knows below it. full means the paths may be incomplete
// and the consumer must stat-scan the whole workspace: on the first call,
// after an overflow or a change of the ignore rules, always while Degraded,
// and after the Watcher stopped.
//
// Drain reports what has been read from the kernel; a change made an
// instant before the call may come in the next one.
func (w *Watcher) Drain() (paths []string, full bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	paths = make([]string, 0, len(w.dirty))
	for p := range w.dirty {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	clear(w.dirty)
	full = w.full || w.degraded != "" || w.ctx.Err() != nil
	if !w.resyncing {
		w.full = false
	}
	return paths, full
}

// Changes is signalled, after the debounce, whenever Drain has something
// new to return. It has room for one signal, so a consumer that is busy
// misses none; it is meant for a single consumer.
func (w *Watcher) Changes() <-chan struct{} { return w.changes }

// Degraded reports whether the watcher cannot see every change (inotify
// limits), and why, with the command that fixes it, for `sessiond doctor`
// and the daemon's status. While degraded every Drain reports full; it
// lasts until the watcher is made again.
func (w *Watcher) Degraded() (bool, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.degraded != "", w.degraded
}

// Subscribe returns a channel of debounced events, closed when ctx ends or
// the watcher stops. A slow subscriber does not hold the watcher up nor
// lose events: what it has not taken yet is merged, one event per path.
func (w *Watcher) Subscribe(ctx context.Context) <-chan Batch {
	s := &subscriber{ch: make(chan Batch), wake: make(chan struct{}, 1)}
	w.mu.Lock()
	if w.closed || w.ctx.Err() != nil {
		w.mu.Unlock()
		close(s.ch)
		return s.ch
	}
	w.subs[s] = struct{}{}
	w.subWG.Add(1)
	w.mu.Unlock()
	go w.serve(ctx, s)
	return s.ch
}

// syncPrefix names the sentinel files Sync creates in the root.
const syncPrefix = ".sessiond-sync-"

// syncTimeout bounds how long Sync waits for its sentinel before it gives
// up and asks for a full scan instead.
const syncTimeout = 5 * time.Second

// Sync returns once every change made before it was called has been read
// from the kernel, so that the next Drain includes them: the capture at the
// end of a turn must see every write of the command that just exited.
//
// inotify queues the events of all of a watcher's directories in one
// ordered queue, so Sync creates and removes a sentinel file in the root
// and waits for its event: everything queued before it has been read by
// then. When that cannot work (a read-only root, a degraded watcher, no
// event in time) the next Drain reports full instead, which is slower but
// never misses a change.
func (w *Watcher) Sync(ctx context.Context) error {
	w.mu.Lock()
	if w.fsw == nil || w.degraded != "" || w.closed || w.ctx.Err() != nil {
		w.mu.Unlock()
		return nil // Drain reports full in all of these cases
	}
	w.syncSeq++
	name := fmt.Sprintf("%s%d-%d", syncPrefix, os.Getpid(), w.syncSeq)
	done := make(chan struct{})
	w.syncs[name] = done
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.syncs, name)
		w.mu.Unlock()
	}()
	path := filepath.Join(w.root, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		w.setFull()
		return nil
	}
	f.Close()
	os.Remove(path)
	t := time.NewTimer(syncTimeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		w.log.Warn("watch: sync sentinel not seen in time; the next capture scans the whole workspace", "timeout", syncTimeout)
		w.setFull()
		return nil
	}
}

// synced releases the Sync waiting for the sentinel rel.
func (w *Watcher) synced(rel string) {
	w.mu.Lock()
	if done, ok := w.syncs[rel]; ok {
		close(done)
		delete(w.syncs, rel)
	}
	w.mu.Unlock()
}

// Close stops watching, releases every watch and waits for the watcher's
// goroutines. It returns the error of closing the inotify instance.
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cancel()
	<-w.loopDone
	w.subWG.Wait()
	return w.closeErr
}

// loop owns the watches: it reads events and errors, and flushes after the
// debounce.
func (w *Watcher) loop() {
	defer close(w.loopDone)
	defer w.stop()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w.fsw != nil {
		events, errs = w.fsw.Events, w.fsw.Errors
	}
	for {
		select {
		case <-w.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			w.handle(ev)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.handleError(err)
		case err := <-w.opts.errs:
			w.handleError(err)
		case <-w.timer.C:
			w.flush()
		}
	}
}

// stop releases the inotify instance; the loop calls it as it ends.
func (w *Watcher) stop() {
	w.timer.Stop()
	if w.fsw != nil {
		w.closeErr = w.fsw.Close()
	}
}

func (w *Watcher) abs(rel string) string {
	if rel == "" {
		return w.root
	}
	return filepath.Join(w.root, filepath.FromSlash(rel))
}

// rel returns abs relative to the root, or false when it is outside.
func (w *Watcher) rel(abs string) (string, bool) {
	if abs == w.root {
		return "", true
	}
	r, ok := strings.CutPrefix(abs, w.root+string(filepath.Separator))
	return filepath.ToSlash(r), ok
}

// handle takes one fsnotify event.
func (w *Watcher) handle(ev fsnotify.Event) {
	abs := filepath.Clean(ev.Name)
	if w.meta[abs] || w.meta[filepath.Dir(abs)] {
		w.handleMeta(abs)
		return
	}
	rel, ok := w.rel(abs)
	if !ok {
		return
	}
	if strings.HasPrefix(rel, syncPrefix) {
		w.synced(rel)
		return // our own sentinel, never a change of the workspace
	}
	kind := kindOf(ev.Op)
	if kind == "" {
		return
	}
	if rel == "" {
		if kind == Deleted || kind == Renamed {
			w.degrade(errors.New(w.root+" is gone"), "the workspace root was removed or renamed", "open the workspace again, then restart the daemon")
		}
		return
	}
	if strings.HasPrefix(rel, ".git/") {
		return // only the meta watches look inside .git
	}
	if rel == ".git" {
		if kind != Modified {
			// A repository appeared or went: info/exclude with it.
			w.rulesChanged("")
		}
		return
	}

	_, isDir := w.watched[rel]
	switch kind {
	case Created:
		if fi, err := os.Lstat(abs); err == nil {
			isDir = fi.IsDir()
		}
		if isDir {
			// Rules cached for an earlier directory of that name are stale.
			w.m.InvalidateDir(rel)
		}
	case Deleted, Renamed:
		if isDir {
			w.unwatch(rel)
			w.m.InvalidateDir(rel)
		}
	case Modified:
		if isDir {
			return // a directory's own mode or times: its files tell more
		}
	}
	if w.m.IsRuleFile(rel) {
		w.rulesChanged(rel)
	}
	if w.m.Ignored(rel, isDir) {
		return
	}
	w.mark(rel, kind)
	if kind == Created && isDir {
		w.addTree(w.ctx, rel, true, nil)
	}
}

// handleMeta takes an event in the directory holding info/exclude, or in
// the git dir while it has no info directory.
func (w *Watcher) handleMeta(abs string) {
	if w.meta[abs] { // the watched directory itself went
		w.rulesChanged("")
		return
	}
	switch filepath.Base(abs) {
	case "exclude", "info":
		w.rulesChanged("")
	}
}

// rulesChanged reacts to a changed rule file (rel, or "" for info/exclude
// and .git): the matcher forgets the old rules now; which directories are
// watched is brought up to date at the next flush, so that a checkout
// touching many .gitignore files costs one walk. Until then, and for the
// next Drain after, full is set: files may have become (un)ignored.
func (w *Watcher) rulesChanged(rel string) {
	if rel == "" {
		w.m.Reload()
	} else {
		w.m.Invalidate(rel)
	}
	w.needResync = true
	w.pendingLost = true
	w.setFull()
	w.arm()
}

func (w *Watcher) handleError(err error) {
	// Warn once; a storm of the same would drown the log.
	w.errorCount++
	level := slog.LevelDebug
	if w.errorCount == 1 {
		level = slog.LevelWarn
	}
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		w.log.Log(w.ctx, level, "inotify queue overflowed: changes were lost, the next capture scans the whole workspace",
			"errors", w.errorCount, "hint", "raise fs.inotify.max_queued_events if this is frequent")
	} else {
		w.log.Log(w.ctx, level, "watcher error: changes may be lost, the next capture scans the whole workspace",
			"err", err, "errors", w.errorCount)
	}
	// Lost events may include rule-file edits and new directories.
	w.m.Reload()
	w.needResync = true
	w.pendingLost = true
	w.setFull()
	w.arm()
}

// mark records a change for Drain and for subscribers.
func (w *Watcher) mark(rel string, kind Kind) {
	w.mu.Lock()
	w.dirty[rel] = struct{}{}
	w.mu.Unlock()
	w.pending.add(rel, kind)
	w.arm()
}

func (w *Watcher) setFull() {
	w.mu.Lock()
	w.full = true
	w.mu.Unlock()
}

// arm starts or extends the debounce, within maxDelayFactor periods of the
// first event.
func (w *Watcher) arm() {
	now := time.Now()
	if !w.armed {
		w.armed = true
		w.firstEvent = now
		w.timer.Reset(w.debounce)
		return
	}
	if now.Sub(w.firstEvent) < maxDelayFactor*w.debounce {
		w.timer.Reset(w.debounce)
	}
}

// flush runs when the workspace has been quiet for the debounce: it brings
// the watches up to date with changed rules, then tells Changes and the
// subscribers.
func (w *Watcher) flush() {
	w.armed = false
	if w.needResync {
		w.needResync = false
		if err := w.resync(w.ctx); err != nil {
			return // stopping
		}
	}
	evs := w.pending.take()
	lost := w.pendingLost
	w.pendingLost = false
	if len(evs) > 0 || lost {
		w.publish(evs, lost)
	}
	select {
	case w.changes <- struct{}{}:
	default:
	}
}

// resync walks the whole tree: it watches directories that lack a watch
// (new, or no longer ignored) and drops the watches of directories that are
// gone or now ignored. full stays set while it runs and for the next Drain.
func (w *Watcher) resync(ctx context.Context) error {
	w.mu.Lock()
	w.full, w.resyncing = true, true
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.resyncing = false
		w.mu.Unlock()
	}()
	if w.fsw == nil {
		return nil // nothing can be watched: every Drain is full anyway
	}
	seen := make(map[string]bool, len(w.watched))
	if err := w.addTree(ctx, "", false, seen); err != nil {
		return err
	}
	for rel := range w.watched {
		if !seen[rel] {
			w.dropWatch(rel)
		}
	}
	w.watchMeta()
	return nil
}

// addTree watches rel and every directory below it that is not ignored.
// Each directory is watched before it is listed, so nothing created in it
// can slip between the two. With mark, every entry found is recorded as
// created: the directory is new, its contents were never seen. seen, when
// not nil, collects the directories visited.
func (w *Watcher) addTree(ctx context.Context, rel string, mark bool, seen map[string]bool) error {
	stack := []string{rel}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !w.watch(dir) {
			continue
		}
		if seen != nil {
			seen[dir] = true
		}
		entries, err := os.ReadDir(w.abs(dir))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				w.log.Debug("cannot list directory; its contents are left to the full scan", "dir", dir, "err", err)
			}
			continue
		}
		for _, e := range entries {
			isDir := e.IsDir()
			if !isDir && !mark {
				continue // files matter only when reported
			}
			child := path.Join(dir, e.Name())
			if w.m.IgnoredEntry(child, isDir) {
				continue
			}
			if mark {
				w.mark(child, Created)
			}
			if isDir {
				stack = append(stack, child)
			}
		}
	}
	return nil
}

// watch adds a watch on directory rel, first removing any watch the same
// directory still has under an older path (a rename we did not see). It
// reports whether rel should be listed: false when it vanished or is not a
// directory.
func (w *Watcher) watch(rel string) bool {
	stat := os.Lstat // a symlink to a directory is a file to us...
	if rel == "" {
		stat = os.Stat // ...except the root, which may be one
	}
	fi, err := stat(w.abs(rel))
	if err != nil || !fi.IsDir() {
		return false
	}
	var id fileID
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id = fileID{dev: uint64(st.Dev), ino: st.Ino}
	}
	if old, ok := w.byID[id]; ok && old != rel {
		w.dropWatch(old)
	}
	if cur, ok := w.watched[rel]; ok && cur != id {
		w.dropWatch(rel) // a different directory now lives at rel
	}
	if _, ok := w.watched[rel]; ok {
		return true
	}
	if w.fsw == nil {
		return true // degraded: list anyway, so new files are marked
	}
	if err := w.add(w.abs(rel)); err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
			return false
		case errors.Is(err, syscall.ENOSPC):
			w.degrade(err, "inotify watch limit reached (fs.inotify.max_user_watches)", watchesHint+persistHint)
		case errors.Is(err, fs.ErrPermission):
			// The full scan cannot read it either: nothing to capture there.
			w.log.Debug("cannot watch directory: permission denied", "dir", rel)
			return false
		default:
			w.degrade(err, "cannot watch a directory", "check the daemon log, then restart the daemon")
		}
		return true
	}
	w.watched[rel] = id
	w.byID[id] = rel
	return true
}

func (w *Watcher) add(abs string) error {
	if w.opts.addWatch != nil {
		return w.opts.addWatch(w.fsw.Add, abs)
	}
	return w.fsw.Add(abs)
}

// unwatch drops the watches of rel and of every directory below it: it was
// deleted or moved away.
func (w *Watcher) unwatch(rel string) {
	prefix := rel + "/"
	for d := range w.watched {
		if d == rel || strings.HasPrefix(d, prefix) {
			w.dropWatch(d)
		}
	}
}

func (w *Watcher) dropWatch(rel string) {
	id, ok := w.watched[rel]
	if !ok {
		return
	}
	delete(w.watched, rel)
	if w.byID[id] == rel {
		delete(w.byID, id)
	}
	if w.fsw != nil {
		// The kernel drops the watch of a deleted directory by itself;
		// fsnotify then says there is no such watch, which is fine.
		_ = w.fsw.Remove(w.abs(rel))
	}
}

// watchMeta watches the directory of info/exclude, which may lie outside
// the root and is inside the ignored .git otherwise; while it does not exist
// the git dir is watched instead, to see it appear.
func (w *Watcher) watchMeta() {
	want := ""
	if excl := w.m.ExcludeFile(); excl != "" && w.fsw != nil {
		info := filepath.Dir(excl)
		if isDir(info) {
			want = info
		} else if gd := filepath.Dir(info); isDir(gd) {
			want = gd
		}
	}
	for d := range w.meta {
		if d != want {
			delete(w.meta, d)
			_ = w.fsw.Remove(d)
		}
	}
	if want == "" || w.meta[want] {
		return
	}
	if err := w.add(want); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			w.degrade(err, "inotify watch limit reached (fs.inotify.max_user_watches)", watchesHint+persistHint)
		}
		return
	}
	w.meta[want] = true
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// degrade records that changes can no longer all be seen, and logs it once,
// with fix, the command or step that brings the watcher back.
func (w *Watcher) degrade(err error, what, fix string) {
	w.mu.Lock()
	first := w.degraded == ""
	if first {
		w.degraded = fmt.Sprintf("%s (%v): every capture scans the whole workspace; to fix: %s", what, err, fix)
	}
	w.mu.Unlock()
	if first {
		w.log.Warn("workspace watcher degraded: "+what+"; every capture now scans the whole workspace, which is slower",
			"err", err, "fix", fix)
		w.pendingLost = true
	}
}

func kindOf(op fsnotify.Op) Kind {
	switch {
	case op.Has(fsnotify.Remove):
		return Deleted
	case op.Has(fsnotify.Rename):
		return Renamed
	case op.Has(fsnotify.Create):
		return Created
	case op.Has(fsnotify.Write), op.Has(fsnotify.Chmod):
		return Modified
	}
	return ""
}

// coalescer folds events into one per path, in order of first appearance
// (since the path last dropped out).
type coalescer struct {
	events map[string]queued
	seq    uint64
}

type queued struct {
	kind Kind
	seq  uint64
}

func (c *coalescer) add(p string, k Kind) {
	if c.events == nil {
		c.events = make(map[string]queued)
	}
	old, ok := c.events[p]
	if !ok {
		c.seq++
		c.events[p] = queued{k, c.seq}
		return
	}
	if k, ok = merge(old.kind, k); ok {
		c.events[p] = queued{k, old.seq}
	} else {
		delete(c.events, p)
	}
}

// merge folds a later kind into an earlier one for the same path; false
// means the two cancel out (created, then gone before anyone was told).
func merge(old, k Kind) (Kind, bool) {
	switch {
	case old == Created && (k == Deleted || k == Renamed):
		return "", false
	case old == Created:
		return Created, true
	case (old == Deleted || old == Renamed) && (k == Created || k == Modified):
		return Modified, true
	case k == Created:
		return Modified, true
	}
	return k, true
}

func (c *coalescer) take() []Event {
	if len(c.events) == 0 {
		return nil
	}
	evs := make([]Event, 0, len(c.events))
	for p, q := range c.events {
		evs = append(evs, Event{Path: p, Kind: q.kind})
	}
	slices.SortFunc(evs, func(a, b Event) int { return cmp.Compare(c.events[a.Path].seq, c.events[b.Path].seq) })
	clear(c.events)
	return evs
}

// subscriber is one Subscribe call: its own backlog, fed by publish and
// emptied by serve.
type subscriber struct {
	ch   chan Batch
	wake chan struct{}

	mu      sync.Mutex
	backlog coalescer
	lost    bool
}

func (w *Watcher) publish(evs []Event, lost bool) {
	w.mu.Lock()
	subs := make([]*subscriber, 0, len(w.subs))
	for s := range w.subs {
		subs = append(subs, s)
	}
	w.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		for _, e := range evs {
			s.backlog.add(e.Path, e.Kind)
		}
		s.lost = s.lost || lost
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// serve hands s its backlog until ctx or the watcher ends.
func (w *Watcher) serve(ctx context.Context, s *subscriber) {
	defer w.subWG.Done()
	defer close(s.ch)
	defer func() {
		w.mu.Lock()
		delete(w.subs, s)
		w.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.ctx.Done():
			return
		case <-s.wake:
		}
		s.mu.Lock()
		b := Batch{Events: s.backlog.take(), Lost: s.lost}
		s.lost = false
		s.mu.Unlock()
		if len(b.Events) == 0 && !b.Lost {
			continue
		}
		select {
		case s.ch <- b:
		case <-ctx.Done():
			return
		case <-w.ctx.Done():
			return
		}
	}
}
