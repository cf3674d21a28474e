package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/store"
)

// racyWindow: a file whose mtime lies this close to (or after) the start
// of the capture that hashed it is rehashed by the next capture even if
// its stat is unchanged. Kernel timestamps advance by ticks of a few ms,
// and some filesystems keep whole or even two seconds, so a write right
// after our read can leave size and mtime as they were.
const racyWindow = 2 * time.Second

// maxTxnWrites is the number of index writes above which a capture goes
// straight to batches instead of first trying one transaction (Badger's
// limit with our small memtables is about ten thousand entries).
const maxTxnWrites = 4000

// maxHashAttempts bounds rereads of a file that changes while it is read.
const maxHashAttempts = 3

// Capture records the workspace at root and returns its snapshot ID.
//
// dirty lists the paths that may have changed since the last capture of
// root (absolute, or relative to root; files or directories, present or
// gone) as a watcher reports them; only those are examined, a directory
// in full. A nil dirty scans the whole workspace: the first capture, the
// first after a daemon start (nothing watched the disk meanwhile), after a
// watcher overflow, or after ignore rules changed. A full scan stats every
// file but reads only those whose stat changed. An empty, non-nil dirty
// returns the last snapshot without touching the disk.
//
// ign may be nil, which ignores only ".git"; the data dir (Options.Exclude)
// is never captured.
func (e *Engine) Capture(ctx context.Context, root string, dirty []string, ign Ignorer) (ID, error) {
	canon, err := e.canonicalRoot(root)
	if err != nil {
		return ID{}, err
	}
	unlock, err := e.lockRoot(ctx, canon)
	if err != nil {
		return ID{}, err
	}
	defer unlock()
	c := &capture{
		e:       e,
		ctx:     ctx,
		root:    canon,
		given:   filepath.Clean(root),
		idx:     indexID(canon),
		ign:     ign,
		excl:    e.excludedRels(canon),
		start:   e.now(),
		dirs:    make(map[string]*dirState),
		deleted: make(map[string]bool),
		changed: make(map[string]bool),
		scanned: make(map[string]bool),
		visited: make(map[string]bool),
		queued:  make(map[string]bool),
		seen:    make(map[store.Hash]bool),
		trees:   make(map[store.Hash][]byte),
		batch:   e.db.NewBatch(),
		use:     e.gcBegin(),
	}
	defer c.batch.Cancel()
	id, err := c.run(dirty)
	e.gcEnd(c.use, id, err == nil)
	if err != nil {
		return ID{}, fmt.Errorf("capture %s: %w", canon, err)
	}
	e.log.Debug("snapshot: captured", "root", canon, "snapshot", id.String(), "full", c.full,
		"stat", c.statted, "hashed", c.hashed.Load(), "newBlobs", c.newBlobs.Load(),
		"trees", c.treesBuilt, "took", e.now().Sub(c.start))
	return id, nil
}

// dirState is the index's view of one directory during a capture.
type dirState struct {
	kids    map[string]*ientry
	touched map[string]bool // names to write (present in kids) or delete (absent)
}

type capture struct {
	e     *Engine
	ctx   context.Context
	root  string // canonical
	given string // as the caller spelled it, cleaned: dirty paths may use it
	idx   string
	ign   Ignorer
	excl  map[string]bool
	start time.Time

	dirs      map[string]*dirState
	allLoaded bool            // c.dirs holds the whole index: no need to read a listing
	cleared   []string        // dirs whose subtree left the index in this capture
	deleted   map[string]bool // index keys to delete
	changed   map[string]bool // dirs whose tree must be rebuilt
	rebuild   bool            // rebuild (and rewrite) every tree
	scanned   map[string]bool // dirs listed from disk
	visited   map[string]bool // paths stat'ed through update
	queued    map[string]bool // files waiting for a hash job
	jobs      []*hashJob
	trees     map[store.Hash][]byte // new trees to write

	batch    *store.Batch // blobs, written before the index refers to them
	use      *gcUse       // what this capture relies on, for a concurrent Collect
	seenMu   sync.Mutex
	seen     map[store.Hash]bool // blobs already handled in this capture
	newBlobs atomic.Int64
	hashed   atomic.Int64

	full       bool // listed the whole workspace
	statted    int
	treesBuilt int
}

type hashJob struct {
	ds        *dirState
	dir, name string
	st        *ientry // the stat seen by the walk
	res       *ientry // nil: the file went away or stopped being a file
	err       error
}

func (c *capture) abs(rel string) string {
	if rel == "" {
		return c.root
	}
	return c.root + "/" + rel
}

func (c *capture) run(dirty []string) (ID, error) {
	meta, found, err := c.loadMeta()
	if err != nil {
		return ID{}, err
	}
	full := dirty == nil
	fresh := !found || meta.Version != indexVersion || meta.Root != c.root
	switch {
	case fresh:
		// Entries without a valid meta are not trusted: the collector
		// may have freed the objects they name.
		if err := c.removeSubtree(""); err != nil {
			return ID{}, err
		}
		full, c.rebuild = true, true
	case meta.Pending:
		full, c.rebuild = true, true
	case meta.MaxFileSize != c.e.maxSize:
		full = true // reclassify files around the new cap
	}
	var rels []string
	if !full {
		if len(dirty) == 0 {
			return meta.Tree, nil
		}
		for _, p := range dirty {
			rel, ok := c.relOf(p)
			if !ok {
				c.e.log.Debug("snapshot: dirty path outside the workspace", "root", c.root, "path", p)
				continue
			}
			if rel == "" {
				full = true
				break
			}
			rels = append(rels, rel)
		}
	}
	c.full = full
	if full {
		if !fresh {
			if err := c.loadAll(); err != nil {
				return ID{}, err
			}
		}
		c.allLoaded = true
		if err := c.scanDir(""); err != nil {
			return ID{}, err
		}
	} else {
		// Parents first, so a dirty directory covers its dirty children.
		slices.SortFunc(rels, func(a, b string) int {
			if d := depth(a) - depth(b); d != 0 {
				return d
			}
			return strings.Compare(a, b)
		})
		for _, rel := range slices.Compact(rels) {
			if err := c.visitDirty(rel); err != nil {
				return ID{}, err
			}
		}
	}
	if err := c.runJobs(); err != nil {
		return ID{}, err
	}
	if err := c.batch.Flush(); err != nil {
		return ID{}, fmt.Errorf("store file contents: %w", err)
	}
	root, err := c.buildTrees(meta.Tree)
	if err != nil {
		return ID{}, err
	}
	if err := c.commit(meta, found && !fresh, root); err != nil {
		return ID{}, err
	}
	return root, nil
}

func (c *capture) loadMeta() (indexMeta, bool, error) {
	var m indexMeta
	found := false
	err := c.e.db.View(c.ctx, func(txn *store.Txn) error {
		err := txn.Get(store.KeyFileIndexMeta(c.idx), &m)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return indexMeta{}, false, fmt.Errorf("read file index: %w", err)
	}
	return m, found, nil
}

// loadAll reads the whole index, for a full scan.
func (c *capture) loadAll() error {
	prefix := store.PrefixFileIndex(c.idx)
	err := c.e.db.View(c.ctx, func(txn *store.Txn) error {
		return txn.Scan(prefix, nil, false, false, func(key, value []byte) (bool, error) {
			dir, name, ok := store.SplitFileIndexKey(key, prefix)
			e, err := decodeEntry(value)
			if !ok || err != nil {
				// Unreadable: drop it, and the scan finds the path anew.
				c.deleted[string(key)] = true
				return true, nil
			}
			ds := c.dirs[dir]
			if ds == nil {
				ds = newDirState()
				c.dirs[dir] = ds
			}
			ds.kids[name] = e
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("read file index: %w", err)
	}
	return nil
}

func newDirState() *dirState {
	return &dirState{kids: make(map[string]*ientry), touched: make(map[string]bool)}
}

// listing returns the index's children of dir, reading them on first use.
func (c *capture) listing(dir string) (*dirState, error) {
	if ds, ok := c.dirs[dir]; ok {
		return ds, nil
	}
	ds := newDirState()
	c.dirs[dir] = ds
	if c.allLoaded || c.isCleared(dir) {
		return ds, nil
	}
	prefix := store.PrefixFileIndexDir(c.idx, dir)
	err := c.e.db.View(c.ctx, func(txn *store.Txn) error {
		return txn.Scan(prefix, nil, false, false, func(key, value []byte) (bool, error) {
			e, err := decodeEntry(value)
			if err != nil {
				c.deleted[string(key)] = true
				return true, nil
			}
			ds.kids[string(key[len(prefix):])] = e
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read file index of %q: %w", dir, err)
	}
	return ds, nil
}

func (c *capture) isCleared(dir string) bool {
	for _, q := range c.cleared {
		if q == "" || dir == q || strings.HasPrefix(dir, q+"/") {
			return true
		}
	}
	return false
}

// removeSubtree drops everything the index holds below dir ("" for all).
func (c *capture) removeSubtree(dir string) error {
	prefixes := [][]byte{store.PrefixFileIndexDir(c.idx, dir), store.PrefixFileIndexBelow(c.idx, dir)}
	err := c.e.db.View(c.ctx, func(txn *store.Txn) error {
		for _, p := range prefixes {
			err := txn.Scan(p, nil, false, true, func(key, _ []byte) (bool, error) {
				c.deleted[string(key)] = true
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read file index below %q: %w", dir, err)
	}
	for d := range c.dirs {
		if dir == "" || d == dir || strings.HasPrefix(d, dir+"/") {
			c.dirs[d] = newDirState()
		}
	}
	c.cleared = append(c.cleared, dir)
	return nil
}

// relOf turns a dirty path into a canonical relative one; false when it
// lies outside the workspace.
func (c *capture) relOf(p string) (string, bool) {
	if filepath.IsAbs(p) {
		p = filepath.Clean(p)
		for _, base := range []string{c.root, c.given} {
			if within(base, p) {
				r, err := filepath.Rel(base, p)
				if err != nil {
					return "", false
				}
				if r == "." {
					return "", true
				}
				return filepath.ToSlash(r), true
			}
		}
		return "", false
	}
	r := path.Clean(filepath.ToSlash(p))
	switch {
	case r == ".":
		return "", true
	case r == ".." || strings.HasPrefix(r, "../") || strings.HasPrefix(r, "/"):
		return "", false
	}
	return r, true
}

// skip reports whether rel is left out of snapshots.
func (c *capture) skip(rel string, isDir bool) bool {
	_, name := splitRel(rel)
	if name == ".git" || c.excl[rel] {
		return true
	}
	return c.ign != nil && c.ign.Ignored(rel, isDir)
}

func (c *capture) markChanged(dir string) { c.changed[dir] = true }

// visitDirty examines one dirty path. If one of its ancestors is not the
// directory the index knows (new, gone, replaced by a file or a link),
// that ancestor is examined instead: the path's fate follows from it.
func (c *capture) visitDirty(rel string) error {
	for i := 0; i < len(rel); i++ {
		if rel[i] != '/' {
			continue
		}
		anc := rel[:i]
		if c.scanned[anc] {
			return nil // listed in full already
		}
		dir, name := splitRel(anc)
		ds, err := c.listing(dir)
		if err != nil {
			return err
		}
		old := ds.kids[name]
		fi, lerr := os.Lstat(c.abs(anc))
		isDir := lerr == nil && fi.IsDir()
		if c.skip(anc, isDir) {
			if old != nil {
				return c.update(anc)
			}
			return nil
		}
		if old == nil || old.kind != store.EntryDir || !isDir {
			return c.update(anc)
		}
	}
	return c.update(rel)
}

// update stats rel, whose parent the index knows as a directory, and
// records what it is now.
func (c *capture) update(rel string) error {
	if c.visited[rel] {
		return nil
	}
	c.visited[rel] = true
	dir, name := splitRel(rel)
	ds, err := c.listing(dir)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(c.abs(rel))
	if err != nil {
		if gone(err) {
			return c.remove(ds, dir, name)
		}
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	c.statted++
	if c.skip(rel, fi.IsDir()) {
		return c.remove(ds, dir, name)
	}
	return c.consider(ds, dir, name, fi)
}

// gone reports errors that mean the path is not there (any more).
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// scanDir lists rel from disk and reconciles the index with it, descending
// into subdirectories.
func (c *capture) scanDir(rel string) error {
	if c.scanned[rel] {
		return nil
	}
	c.scanned[rel] = true
	if err := c.ctx.Err(); err != nil {
		return err
	}
	ds, err := c.listing(rel)
	if err != nil {
		return err
	}
	if c.rebuild {
		c.markChanged(rel)
	}
	des, err := os.ReadDir(c.abs(rel))
	switch {
	case err == nil:
	case gone(err):
		des = nil // removed since its stat: record it empty; the watcher reports the removal
	case errors.Is(err, fs.ErrPermission):
		c.e.log.Warn("snapshot: cannot list a directory; keeping what the index knows of it", "root", c.root, "dir", rel, "err", err)
		return nil
	default:
		return fmt.Errorf("list %s: %w", c.abs(rel), err)
	}
	seen := make(map[string]bool, len(des))
	for _, de := range des {
		name := de.Name()
		if !store.ValidName(name) {
			continue
		}
		child := joinRel(rel, name)
		if c.skip(child, de.IsDir()) {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			if gone(err) {
				continue
			}
			return fmt.Errorf("stat %s: %w", child, err)
		}
		c.statted++
		seen[name] = true
		if err := c.consider(ds, rel, name, fi); err != nil {
			return err
		}
	}
	for name := range ds.kids {
		if !seen[name] {
			if err := c.remove(ds, rel, name); err != nil {
				return err
			}
		}
	}
	return nil
}

// consider records the path dir/name, whose lstat is fi: unchanged stat
// keeps the index entry, a changed file is queued for hashing, a symlink
// is read, a directory is listed.
func (c *capture) consider(ds *dirState, dir, name string, fi fs.FileInfo) error {
	rel := joinRel(dir, name)
	old := ds.kids[name]
	mode := fi.Mode()
	kind := store.EntryNone
	switch {
	case mode.IsRegular():
		kind = store.EntryFile
		if fi.Size() > c.e.maxSize {
			kind = store.EntrySkipped
		}
	case mode&fs.ModeSymlink != 0:
		kind = store.EntrySymlink
	case mode.IsDir():
		kind = store.EntryDir
	default:
		// Sockets, FIFOs and devices have no content to keep.
		return c.remove(ds, dir, name)
	}
	if old != nil && (old.kind == store.EntryDir) != (kind == store.EntryDir) {
		if err := c.remove(ds, dir, name); err != nil {
			return err
		}
		old = nil
	}
	switch kind {
	case store.EntrySkipped:
		c.set(ds, dir, name, statEntry(kind, fi))
	case store.EntryFile:
		st := statEntry(kind, fi)
		if sameStat(old, st) || c.queued[rel] {
			return nil
		}
		c.queued[rel] = true
		c.jobs = append(c.jobs, &hashJob{ds: ds, dir: dir, name: name, st: st})
	case store.EntrySymlink:
		st := statEntry(kind, fi)
		if sameStat(old, st) {
			return nil
		}
		target, err := os.Readlink(c.abs(rel))
		if err != nil {
			if gone(err) || errors.Is(err, syscall.EINVAL) { // gone, or no longer a link
				return c.remove(ds, dir, name)
			}
			return fmt.Errorf("read link %s: %w", rel, err)
		}
		st.size = int64(len(target))
		st.hash = store.BlobHash([]byte(target))
		st.racy = c.isRacy(st)
		if err := c.putBlob(st.hash, []byte(target)); err != nil {
			return err
		}
		c.set(ds, dir, name, st)
	case store.EntryDir:
		if old == nil {
			c.set(ds, dir, name, &ientry{kind: store.EntryDir})
			c.markChanged(rel) // an empty directory still needs its tree
		}
		return c.scanDir(rel)
	}
	return nil
}

func (c *capture) isRacy(e *ientry) bool {
	return e.mtime >= c.start.Add(-racyWindow).UnixNano()
}

// set records e as the entry of dir/name when it differs from the old one.
func (c *capture) set(ds *dirState, dir, name string, e *ientry) {
	if old := ds.kids[name]; old != nil && *old == *e {
		return
	}
	ds.kids[name] = e
	ds.touched[name] = true
	c.markChanged(dir)
}

// remove drops dir/name from the index, with its subtree.
func (c *capture) remove(ds *dirState, dir, name string) error {
	old := ds.kids[name]
	if old == nil {
		return nil
	}
	delete(ds.kids, name)
	ds.touched[name] = true
	c.markChanged(dir)
	if old.kind == store.EntryDir {
		return c.removeSubtree(joinRel(dir, name))
	}
	return nil
}

// runJobs hashes the queued files, a few at a time: small files are bound
// by system calls, large ones by hashing and compression, and either way
// the disk and the cores overlap.
func (c *capture) runJobs() error {
	if len(c.jobs) == 0 {
		return nil
	}
	ch := make(chan *hashJob)
	var wg sync.WaitGroup
	for range min(c.e.workers, len(c.jobs)) {
		wg.Go(func() {
			for j := range ch {
				j.res, j.err = c.hashFile(j)
			}
		})
	}
	var err error
	for _, j := range c.jobs {
		if err = c.ctx.Err(); err != nil {
			break
		}
		ch <- j
	}
	close(ch)
	wg.Wait()
	if err != nil {
		return err
	}
	for _, j := range c.jobs {
		if j.err != nil {
			return j.err
		}
		if c.dirs[j.dir] != j.ds {
			continue // its directory left the index meanwhile
		}
		if j.res == nil {
			if err := c.remove(j.ds, j.dir, j.name); err != nil {
				return err
			}
			continue
		}
		c.set(j.ds, j.dir, j.name, j.res)
	}
	return nil
}

// hashFile reads one file and stores its content. It opens without
// following a symlink and without blocking on a FIFO, in case the path
// changed kind since the walk saw it, and rereads a file that changes
// while it is read.
func (c *capture) hashFile(j *hashJob) (*ientry, error) {
	rel := joinRel(j.dir, j.name)
	var last *ientry
	for range maxHashAttempts {
		f, err := os.OpenFile(c.abs(rel), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if err != nil {
			switch {
			case gone(err) || errors.Is(err, syscall.ELOOP):
				return nil, nil // gone or now a link: the watcher reports it again
			case errors.Is(err, fs.ErrPermission):
				c.e.log.Warn("snapshot: cannot read a file; recording it as skipped", "root", c.root, "path", rel, "err", err)
				s := *j.st
				s.kind = store.EntrySkipped
				return &s, nil
			}
			return nil, fmt.Errorf("open %s: %w", rel, err)
		}
		e, stable, err := c.readFile(f, rel)
		f.Close()
		if err != nil || e == nil || stable {
			return e, err
		}
		last = e
	}
	// Still being written: keep what we read, and look again next time.
	last.racy = true
	return last, nil
}

// readFile hashes and stores the content of f; stable is false when the
// file changed while it was read.
func (c *capture) readFile(f *os.File, rel string) (e *ientry, stable bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("stat %s: %w", rel, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, true, nil
	}
	if fi.Size() > c.e.maxSize {
		return statEntry(store.EntrySkipped, fi), true, nil
	}
	// One byte more than the size, to notice a file that grew.
	buf := make([]byte, fi.Size()+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, false, fmt.Errorf("read %s: %w", rel, err)
	}
	buf = buf[:n]
	after, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("stat %s: %w", rel, err)
	}
	c.hashed.Add(1)
	c.e.hashed.Add(1)
	e = statEntry(store.EntryFile, after)
	e.hash = store.BlobHash(buf)
	e.racy = c.isRacy(e)
	stable = int64(n) == after.Size() && *statEntry(store.EntryFile, fi) == *statEntry(store.EntryFile, after)
	if !stable {
		e.size = int64(n)
	}
	if err := c.putBlob(e.hash, buf); err != nil {
		return nil, false, err
	}
	return e, stable, nil
}

// putBlob stores content under h unless it is stored already.
func (c *capture) putBlob(h store.Hash, content []byte) error {
	c.seenMu.Lock()
	dup := c.seen[h]
	c.seen[h] = true
	c.seenMu.Unlock()
	if dup {
		return nil
	}
	c.e.gcUseBlob(c.use, h) // before the lookup: a Collect must not free it after
	var has bool
	err := c.e.db.View(c.ctx, func(txn *store.Txn) error {
		var err error
		has, err = store.HasBlob(txn, h)
		return err
	})
	if err != nil {
		return fmt.Errorf("look up blob: %w", err)
	}
	if has {
		return nil
	}
	c.newBlobs.Add(1)
	return c.e.objs.PutBlobHashed(c.batch, h, content)
}

// buildTrees rebuilds the trees of the changed directories, deepest first,
// each from its index listing, where untouched subdirectories keep the
// tree hash stored by earlier captures. A directory whose tree hash
// changed marks its parent; the root's tree is the snapshot.
func (c *capture) buildTrees(prev ID) (ID, error) {
	root := prev
	levels := make(map[int][]string)
	maxLevel := 0
	for d := range c.changed {
		l := depth(d)
		levels[l] = append(levels[l], d)
		maxLevel = max(maxLevel, l)
	}
	for level := maxLevel; level >= 0; level-- {
		dirs := levels[level]
		slices.Sort(dirs)
		for _, d := range dirs {
			var pds *dirState
			var pe *ientry
			if d != "" {
				pd, pn := splitRel(d)
				var err error
				if pds, err = c.listing(pd); err != nil {
					return ID{}, err
				}
				if pe = pds.kids[pn]; pe == nil || pe.kind != store.EntryDir {
					continue // no longer a directory in the snapshot
				}
			}
			ds, err := c.listing(d)
			if err != nil {
				return ID{}, err
			}
			names := make([]string, 0, len(ds.kids))
			for n := range ds.kids {
				names = append(names, n)
			}
			slices.Sort(names)
			entries := make([]store.TreeEntry, len(names))
			for i, n := range names {
				k := ds.kids[n]
				if k.kind == store.EntryDir && k.hash.IsZero() {
					return ID{}, fmt.Errorf("internal error: directory %q has no tree after its children were built", joinRel(d, n))
				}
				entries[i] = k.treeEntry(n)
			}
			h, enc, err := store.EncodeTree(entries)
			if err != nil {
				return ID{}, fmt.Errorf("build tree of %q: %w", d, err)
			}
			c.treesBuilt++
			c.e.treesBuilt.Add(1)
			if d == "" {
				if h != prev || c.rebuild {
					c.trees[h] = enc
				}
				root = h
				continue
			}
			if pe.hash == h && !c.rebuild {
				continue
			}
			c.trees[h] = enc
			if pe.hash != h {
				ne := *pe
				ne.hash = h
				pd, pn := splitRel(d)
				pds.kids[pn] = &ne
				pds.touched[pn] = true
				if !c.changed[pd] {
					c.changed[pd] = true
					levels[level-1] = append(levels[level-1], pd)
				}
			}
		}
	}
	return root, nil
}

// commit writes the new trees, the index changes and the meta in one
// transaction, or, when they are too many for one, marks the index
// pending, writes them in batches and then clears the mark.
func (c *capture) commit(old indexMeta, hadMeta bool, root ID) error {
	c.e.gcUseTrees(c.use, c.trees) // before writing: some may be stored and unreferenced
	type kv struct{ k, v []byte }
	var sets []kv
	var dels [][]byte
	for h, enc := range c.trees {
		sets = append(sets, kv{store.KeyTree(h), enc})
	}
	setKeys := make(map[string]bool)
	for dir, ds := range c.dirs {
		for name := range ds.touched {
			key := store.KeyFileIndexEntry(c.idx, dir, name)
			if e := ds.kids[name]; e != nil {
				sets = append(sets, kv{key, e.encode()})
				setKeys[string(key)] = true
			} else {
				dels = append(dels, key)
			}
		}
	}
	for k := range c.deleted {
		if !setKeys[k] {
			dels = append(dels, []byte(k))
		}
	}
	meta := indexMeta{
		Version:     indexVersion,
		Root:        c.root,
		Tree:        root,
		MaxFileSize: c.e.maxSize,
		Captured:    c.start.UnixMilli(),
	}
	if len(sets) == 0 && len(dels) == 0 && hadMeta && old.Tree == meta.Tree && old.MaxFileSize == meta.MaxFileSize && !old.Pending {
		return nil // nothing to write
	}
	metaKey := store.KeyFileIndexMeta(c.idx)
	if len(sets)+len(dels) <= maxTxnWrites {
		err := c.e.db.Update(c.ctx, func(txn *store.Txn) error {
			for _, s := range sets {
				if err := txn.SetRaw(s.k, s.v); err != nil {
					return err
				}
			}
			for _, k := range dels {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return txn.Set(metaKey, meta)
		})
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrTxnTooBig) {
			return fmt.Errorf("write file index: %w", err)
		}
	}
	pending := old
	if !hadMeta {
		pending = indexMeta{Version: indexVersion, Root: c.root, MaxFileSize: c.e.maxSize}
	}
	pending.Pending = true
	if err := c.e.db.Update(c.ctx, func(txn *store.Txn) error { return txn.Set(metaKey, pending) }); err != nil {
		return fmt.Errorf("mark file index pending: %w", err)
	}
	b := c.e.db.NewBatch()
	defer b.Cancel()
	for _, s := range sets {
		if err := b.SetRaw(s.k, s.v); err != nil {
			return fmt.Errorf("write file index: %w", err)
		}
	}
	for _, k := range dels {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("write file index: %w", err)
		}
	}
	if err := b.Flush(); err != nil {
		return fmt.Errorf("write file index: %w", err)
	}
	if err := c.e.db.Update(c.ctx, func(txn *store.Txn) error { return txn.Set(metaKey, meta) }); err != nil {
		return fmt.Errorf("write file index meta: %w", err)
	}
	return nil
}
