package snapshot

// Retention: a mark-and-sweep collector over the object store, store
// usage and the disk budget check. DESIGN §4 "Retention".
//
// What is live. A Collect marks every tree and blob reachable from
//   - the snapshots its caller says are live (those its sessions refer to);
//   - the root tree of every file index, and every hash its entries hold:
//     a capture reuses them without checking that the objects still exist;
//   - every snapshot a Capture returned within the pin period (default 10
//     minutes): the session layer records an ID some time after Capture
//     returns it, and a Collect in between must not free it.
//
// Captures running during a Collect. The candidates for deletion are the
// objects that existed when the Collect scanned the store; anything
// written later is never deleted by it. What a running capture relies on
// among those candidates is: the objects of its index (reachable from the
// index's root or entries, marked), the blobs it looked up and found (and
// so did not write again) and the trees it writes over existing ones.
// Every capture registers those hashes with the engine before relying on
// them, under the engine's collector mutex; the sweep deletes in chunks,
// each filtered against the registrations and flushed under that same
// mutex. So a capture either registers a hash before its chunk is swept
// (and the sweep keeps it), or waits and finds it gone (and writes it
// again). A capture that finishes during a Collect pins its result, and
// each chunk first marks the roots pinned since (whatever the pin
// period); a capture that fails during a Collect leaves its registrations
// to it (an index left pending may name what the capture wrote), and a
// later Collect reads such pending entries from the store.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sessiond/sessiond/store"
)

// DefaultDiskBudget is the default size a data dir's store may reach
// before the session layer prunes snapshots (DESIGN §4); see OverBudget.
const DefaultDiskBudget = 2 << 30

// DefaultPinPeriod is how long a snapshot returned by Capture stays live
// without anyone naming it to Collect.
const DefaultPinPeriod = 10 * time.Minute

// sweepChunk is how many objects the sweep deletes per flush, holding the
// collector mutex (captures wait for it at their next new blob).
const sweepChunk = 4096

// walkChunk bounds the trees read in one read transaction while marking,
// so a long mark does not hold one Badger read timestamp throughout.
const walkChunk = 2048

// GCStats reports a Collect.
type GCStats struct {
	// LiveRoots counts the distinct root trees marked from: live
	// snapshots, index roots and pinned captures together.
	LiveRoots int `json:"liveRoots"`
	// Live, IndexRoots and Pinned count each source (with overlaps).
	Live       int `json:"live"`
	IndexRoots int `json:"indexRoots"`
	Pinned     int `json:"pinned"`
	// TreesWalked counts trees read while marking: each distinct tree at
	// most once, as marking does not enter a subtree already marked.
	TreesWalked int64 `json:"treesWalked"`
	// Missing counts referenced trees that are not stored (a live ID from
	// another data dir, or a damaged store). They are skipped.
	Missing int `json:"missing"`
	// ScannedObjects and ScannedBytes are the objects stored when the
	// Collect began, and their stored (compressed) size.
	ScannedObjects int64 `json:"scannedObjects"`
	ScannedBytes   int64 `json:"scannedBytes"`
	// FreedObjects (FreedBlobs + FreedTrees) and FreedBytes are what the
	// sweep deleted. The disk space comes back as Badger compacts its
	// tables and value-log GC rewrites its log files.
	FreedObjects int64 `json:"freedObjects"`
	FreedBlobs   int64 `json:"freedBlobs"`
	FreedTrees   int64 `json:"freedTrees"`
	FreedBytes   int64 `json:"freedBytes"`
	// Duration is the wall time of the whole Collect; DurationMs is the
	// same in milliseconds, for the wire.
	Duration   time.Duration `json:"-"`
	DurationMs int64         `json:"durationMs"`
}

// StoreUsage counts the stored objects and their stored sizes.
type StoreUsage struct {
	Blobs     int64 `json:"blobs"`
	BlobBytes int64 `json:"blobBytes"`
	Trees     int64 `json:"trees"`
	TreeBytes int64 `json:"treeBytes"`
}

// gcState is the engine's side of collection: pins of recent captures and
// the hashes running captures rely on. Its zero value is ready.
type gcState struct {
	run chan struct{} // one Collect at a time; made on first use under mu

	mu         sync.Mutex
	pinPeriod  time.Duration
	periodSet  bool
	pins       map[ID]time.Time // snapshot → when a Capture last returned it
	active     map[*gcUse]struct{}
	collecting bool
	failed     []*gcUse // registrations of captures that failed during the running Collect

	// hook, set by tests before use, is called at named points of
	// collections and captures to force interleavings: "marked" (a
	// Collect before its sweep), "trees" (a capture about to write its
	// trees), "end" (a capture done, not yet unregistered).
	hook func(point string)
}

// gcUse is what one capture relies on besides its index.
type gcUse struct {
	blobs map[store.Hash]struct{}
	trees map[store.Hash]struct{}
}

func (g *gcState) period() time.Duration {
	if !g.periodSet {
		return DefaultPinPeriod
	}
	return g.pinPeriod
}

// SetPinPeriod sets how long a snapshot returned by Capture stays live
// without being named to Collect (DefaultPinPeriod until set). d <= 0
// turns the grace off: only live IDs and file indexes keep objects, but a
// Collect still keeps what captures finishing during it return.
func (e *Engine) SetPinPeriod(d time.Duration) {
	e.gc.mu.Lock()
	defer e.gc.mu.Unlock()
	e.gc.pinPeriod, e.gc.periodSet = max(d, 0), true
}

// gcBegin registers a capture starting.
func (e *Engine) gcBegin() *gcUse {
	u := &gcUse{blobs: make(map[store.Hash]struct{}), trees: make(map[store.Hash]struct{})}
	e.gc.mu.Lock()
	defer e.gc.mu.Unlock()
	if e.gc.active == nil {
		e.gc.active = make(map[*gcUse]struct{})
	}
	e.gc.active[u] = struct{}{}
	return u
}

// gcUseBlob registers that a capture relies on blob h: it is about to
// look it up and, if stored, not write it again. It waits for a sweep
// chunk in progress.
func (e *Engine) gcUseBlob(u *gcUse, h store.Hash) {
	e.gc.mu.Lock()
	u.blobs[h] = struct{}{}
	e.gc.mu.Unlock()
}

// gcUseTrees registers the trees a capture is about to write.
func (e *Engine) gcUseTrees(u *gcUse, trees map[store.Hash][]byte) {
	e.gc.mu.Lock()
	for h := range trees {
		u.trees[h] = struct{}{}
	}
	e.gc.mu.Unlock()
	if e.gc.hook != nil {
		e.gc.hook("trees")
	}
}

// gcEnd unregisters a capture: a successful one pins the ID it returns,
// a failed one leaves its registrations to a Collect running now (one
// that starts later reads what the capture left in its index).
func (e *Engine) gcEnd(u *gcUse, id ID, ok bool) {
	if e.gc.hook != nil {
		e.gc.hook("end")
	}
	now := e.now()
	g := &e.gc
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.active, u)
	if !ok {
		if g.collecting {
			g.failed = append(g.failed, u)
		}
		return
	}
	if id.IsZero() {
		return
	}
	if g.pins == nil {
		g.pins = make(map[ID]time.Time)
	}
	g.pins[id] = now
	// No Collect for a long time: drop what expired. Never during one,
	// which must see every pin taken since it began.
	if len(g.pins) > 4096 && !g.collecting {
		g.prunePinsLocked(now)
	}
}

func (g *gcState) prunePinsLocked(now time.Time) {
	p := g.period()
	for id, t := range g.pins {
		if now.Sub(t) >= p {
			delete(g.pins, id)
		}
	}
}

// usedLocked reports whether a running or failed capture registered h.
func (g *gcState) usedLocked(kind store.ObjectKind, h store.Hash) bool {
	has := func(u *gcUse) bool {
		if kind == store.ObjectBlob {
			_, ok := u.blobs[h]
			return ok
		}
		_, ok := u.trees[h]
		return ok
	}
	for u := range g.active {
		if has(u) {
			return true
		}
	}
	for _, u := range g.failed {
		if has(u) {
			return true
		}
	}
	return false
}

// Collect frees every blob and tree that nothing live refers to: not the
// snapshots in live, not a file index, not a snapshot a Capture returned
// within the pin period (see SetPinPeriod). It is safe to run while
// captures run (see the top of this file), and one Collect runs at a
// time. It reads every stored object's key and every reachable tree, so
// its cost grows with the store; captures wait for it only while a chunk
// of deletions is written.
//
// Apply needs the contents it writes: pass as live the snapshots a
// pending apply takes its targets from.
//
// A referenced tree that is missing is counted in Missing and skipped; a
// tree that cannot be decoded stops the Collect before anything is
// deleted. A Collect that ends early (ctx) keeps what it did not delete.
func (e *Engine) Collect(ctx context.Context, live []ID) (GCStats, error) {
	start := time.Now()
	var st GCStats
	g := &e.gc
	g.mu.Lock()
	if g.run == nil {
		g.run = make(chan struct{}, 1)
	}
	run := g.run
	g.mu.Unlock()
	select {
	case run <- struct{}{}:
		defer func() {
			g.mu.Lock()
			g.collecting, g.failed = false, nil
			g.mu.Unlock()
			<-run
		}()
	case <-ctx.Done():
		return st, fmt.Errorf("collect: wait for another collect: %w", ctx.Err())
	}

	// Pins that expired go; failed captures' registrations go too, as the
	// marking below reads the index entries they may have left.
	g.mu.Lock()
	g.prunePinsLocked(e.now())
	g.collecting, g.failed = true, nil
	pinned := make([]ID, 0, len(g.pins))
	for id := range g.pins {
		pinned = append(pinned, id)
	}
	g.mu.Unlock()

	type object struct {
		kind store.ObjectKind
		h    store.Hash
		size int64
	}
	var objs []object
	err := e.db.View(ctx, func(txn *store.Txn) error {
		return store.ScanObjectSizes(txn, func(kind store.ObjectKind, h store.Hash, size int64) (bool, error) {
			objs = append(objs, object{kind, h, size})
			st.ScannedObjects++
			st.ScannedBytes += size
			return true, nil
		})
	})
	if err != nil {
		return st, fmt.Errorf("collect: scan objects: %w", err)
	}

	m := &marker{e: e, ctx: ctx, trees: make(map[store.Hash]struct{}), blobs: make(map[store.Hash]struct{})}
	roots := make(map[ID]struct{})
	addRoots := func(ids []ID) {
		for _, id := range ids {
			if !id.IsZero() {
				roots[id] = struct{}{}
			}
		}
	}
	st.Live, st.Pinned = len(live), len(pinned)
	addRoots(live)
	addRoots(pinned)
	err = m.markRoots(live)
	if err == nil {
		err = m.markRoots(pinned)
	}
	if err == nil {
		var idxRoots []ID
		idxRoots, err = m.markIndexes()
		st.IndexRoots = len(idxRoots)
		addRoots(idxRoots)
	}
	st.TreesWalked, st.Missing = m.walked, m.missing
	if err != nil {
		st.Duration = time.Since(start)
		st.DurationMs = st.Duration.Milliseconds()
		return st, fmt.Errorf("collect: mark: %w", err)
	}

	var doomed []object
	for _, o := range objs {
		if !m.marked(o.kind, o.h) {
			doomed = append(doomed, o)
		}
	}
	objs = nil
	if g.hook != nil {
		g.hook("marked")
	}

	sweep := func(chunk []object) error {
		g.mu.Lock()
		defer g.mu.Unlock()
		// Captures that finished since: their roots are live now.
		var fresh []ID
		for id := range g.pins {
			if _, ok := m.trees[id]; !ok {
				fresh = append(fresh, id)
			}
		}
		if len(fresh) > 0 {
			st.Pinned += len(fresh)
			addRoots(fresh)
			if err := m.markRoots(fresh); err != nil {
				return err
			}
		}
		b := e.db.NewBatch()
		defer b.Cancel()
		var blobs, trees, bytes int64
		for _, o := range chunk {
			if m.marked(o.kind, o.h) || g.usedLocked(o.kind, o.h) {
				continue
			}
			key := store.KeyBlob(o.h)
			if o.kind == store.ObjectTree {
				key = store.KeyTree(o.h)
			}
			if err := b.Delete(key); err != nil {
				return err
			}
			if o.kind == store.ObjectBlob {
				blobs++
			} else {
				trees++
			}
			bytes += o.size
		}
		if err := b.Flush(); err != nil {
			return err
		}
		st.FreedBlobs += blobs
		st.FreedTrees += trees
		st.FreedObjects += blobs + trees
		st.FreedBytes += bytes
		return nil
	}
	for len(doomed) > 0 && err == nil {
		if err = ctx.Err(); err != nil {
			break
		}
		n := min(sweepChunk, len(doomed))
		err = sweep(doomed[:n])
		doomed = doomed[n:]
	}
	st.LiveRoots = len(roots)
	st.TreesWalked, st.Missing = m.walked, m.missing
	st.Duration = time.Since(start)
	if err != nil {
		return st, fmt.Errorf("collect: sweep: %w", err)
	}
	e.log.Info("snapshot: collected", "liveRoots", st.LiveRoots, "scanned", st.ScannedObjects,
		"freed", st.FreedObjects, "freedBytes", st.FreedBytes, "missing", st.Missing, "took", st.Duration)
	return st, nil
}

// marker is the mark phase's state.
type marker struct {
	e       *Engine
	ctx     context.Context
	trees   map[store.Hash]struct{}
	blobs   map[store.Hash]struct{}
	walked  int64
	missing int
}

func (m *marker) marked(kind store.ObjectKind, h store.Hash) bool {
	if kind == store.ObjectBlob {
		_, ok := m.blobs[h]
		return ok
	}
	_, ok := m.trees[h]
	return ok
}

// markRoots marks the trees roots and everything below them, never
// entering a tree marked already: snapshots share most of their subtrees.
func (m *marker) markRoots(roots []ID) error {
	var stack []store.Hash
	for _, r := range roots {
		stack = m.pushTree(stack, r)
	}
	for len(stack) > 0 {
		if err := m.ctx.Err(); err != nil {
			return err
		}
		err := m.e.db.View(m.ctx, func(txn *store.Txn) error {
			for n := 0; n < walkChunk && len(stack) > 0; n++ {
				h := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				entries, err := store.GetTree(txn, h)
				if errors.Is(err, store.ErrNotFound) {
					m.missing++
					continue
				}
				if err != nil {
					return err
				}
				m.walked++
				for _, te := range entries {
					switch te.Kind {
					case store.EntryFile, store.EntrySymlink:
						m.blobs[te.Hash] = struct{}{}
					case store.EntryDir:
						stack = m.pushTree(stack, te.Hash)
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *marker) pushTree(stack []store.Hash, h store.Hash) []store.Hash {
	if h.IsZero() {
		return stack
	}
	if _, ok := m.trees[h]; ok {
		return stack
	}
	m.trees[h] = struct{}{}
	return append(stack, h)
}

// markIndexes marks the root tree of every file index and every hash its
// entries hold, and returns the roots. The entries matter for an index
// left pending by a capture that did not finish: they may name objects
// its root tree does not, which the next capture reuses.
func (m *marker) markIndexes() ([]ID, error) {
	type idx struct {
		id   string
		meta indexMeta
	}
	var idxs []idx
	prefix := store.PrefixFileIndexMetas()
	err := m.e.db.View(m.ctx, func(txn *store.Txn) error {
		return txn.Scan(prefix, nil, false, false, func(key, value []byte) (bool, error) {
			var meta indexMeta
			if err := json.Unmarshal(value, &meta); err != nil {
				return false, fmt.Errorf("decode file index meta %q: %w", key, err)
			}
			idxs = append(idxs, idx{string(key[len(prefix):]), meta})
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list file indexes: %w", err)
	}
	var roots []ID
	for _, x := range idxs {
		if !x.meta.Tree.IsZero() {
			roots = append(roots, x.meta.Tree)
		}
	}
	if err := m.markRoots(roots); err != nil {
		return roots, err
	}
	for _, x := range idxs {
		var dirs []ID
		p := store.PrefixFileIndex(x.id)
		err := m.e.db.View(m.ctx, func(txn *store.Txn) error {
			return txn.Scan(p, nil, false, false, func(_, value []byte) (bool, error) {
				ie, err := decodeEntry(value)
				if err != nil {
					return true, nil // a capture drops it and rehashes the path
				}
				switch ie.kind {
				case store.EntryFile, store.EntrySymlink:
					m.blobs[ie.hash] = struct{}{}
				case store.EntryDir:
					if _, ok := m.trees[ie.hash]; !ok && !ie.hash.IsZero() {
						dirs = append(dirs, ie.hash)
					}
				}
				return true, nil
			})
		})
		if err != nil {
			return roots, fmt.Errorf("read file index %s: %w", x.meta.Root, err)
		}
		if err := m.markRoots(dirs); err != nil {
			return roots, err
		}
	}
	return roots, nil
}

// Usage counts the stored blobs and trees and their stored sizes, for
// status reports and the disk budget.
func (e *Engine) Usage(ctx context.Context) (StoreUsage, error) {
	var u StoreUsage
	err := e.db.View(ctx, func(txn *store.Txn) error {
		return store.ScanObjectSizes(txn, func(kind store.ObjectKind, _ store.Hash, size int64) (bool, error) {
			if kind == store.ObjectBlob {
				u.Blobs++
				u.BlobBytes += size
			} else {
				u.Trees++
				u.TreeBytes += size
			}
			return true, nil
		})
	})
	if err != nil {
		return StoreUsage{}, fmt.Errorf("measure objects: %w", err)
	}
	return u, nil
}

// OverBudget reports whether the store's files (LSM tables, value log and
// Badger's bookkeeping, as allocated on disk) exceed budgetBytes, and
// their size. A budget <= 0 is no budget. Deleting frees disk only as
// Badger compacts and runs value-log GC, so a caller pruning toward the
// budget should Collect, run value-log GC and measure again later rather
// than expect the number to drop at once.
func (e *Engine) OverBudget(ctx context.Context, budgetBytes int64) (bool, int64, error) {
	if err := ctx.Err(); err != nil {
		return false, 0, err
	}
	u, err := e.db.DiskUsage()
	if err != nil {
		return false, 0, err
	}
	used := u.Total()
	return budgetBytes > 0 && used > budgetBytes, used, nil
}
