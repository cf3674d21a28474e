package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/aymanbagabas/go-udiff"

	"github.com/sessiond/sessiond/store"
)

// Lookup returns what path is in snapshot snap, without its content: the
// zero Entry when it is absent (also below a symlink or a file, which a
// snapshot never descends). path is slash-separated and relative to the
// workspace root; "" is the root directory.
func (e *Engine) Lookup(ctx context.Context, snap ID, path string) (Entry, error) {
	var out Entry
	err := e.db.View(ctx, func(txn *store.Txn) error {
		var err error
		out, err = lookup(txn, snap, path)
		return err
	})
	return out, err
}

// ReadEntry returns what path is in snapshot snap with its content: a
// file's bytes or a symlink's target. Skipped files have no content.
func (e *Engine) ReadEntry(ctx context.Context, snap ID, path string) (Content, error) {
	var out Content
	err := e.db.View(ctx, func(txn *store.Txn) error {
		ent, err := lookup(txn, snap, path)
		if err != nil {
			return err
		}
		out.Entry = ent
		switch ent.Kind {
		case store.EntryFile:
			out.Data, err = e.objs.GetBlob(txn, ent.Hash)
		case store.EntrySymlink:
			var b []byte
			b, err = e.objs.GetBlob(txn, ent.Hash)
			out.Target = string(b)
		}
		if err != nil {
			return fmt.Errorf("read %s in snapshot %s: %w", path, snap, err)
		}
		return nil
	})
	return out, err
}

// LookupAll is Lookup of many paths of one snapshot. It reads each tree
// once, so its cost is the number of paths plus the trees on their way,
// whereas as many Lookups read a large directory's tree once per path.
func (e *Engine) LookupAll(ctx context.Context, snap ID, paths []string) ([]Entry, error) {
	out := make([]Entry, len(paths))
	err := e.db.View(ctx, func(txn *store.Txn) error {
		get := cachedGetTree()
		for i, p := range paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			var err error
			if out[i], err = lookupWith(txn, snap, p, get); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// cachedGetTree returns a store.GetTree that reads each tree once: the
// lookups of many paths share their directories.
func cachedGetTree() func(*store.Txn, store.Hash) ([]store.TreeEntry, error) {
	trees := map[store.Hash][]store.TreeEntry{}
	return func(txn *store.Txn, h store.Hash) ([]store.TreeEntry, error) {
		if t, ok := trees[h]; ok {
			return t, nil
		}
		t, err := store.GetTree(txn, h)
		if err == nil {
			trees[h] = t
		}
		return t, err
	}
}

func lookup(txn *store.Txn, snap ID, p string) (Entry, error) {
	return lookupWith(txn, snap, p, store.GetTree)
}

func lookupWith(txn *store.Txn, snap ID, p string, getTree func(*store.Txn, store.Hash) ([]store.TreeEntry, error)) (Entry, error) {
	rel, err := cleanLookup(p)
	if err != nil {
		return Entry{}, err
	}
	cur := Entry{Kind: store.EntryDir, Hash: snap}
	if ok, err := store.HasTree(txn, snap); err != nil || !ok {
		if err == nil {
			err = store.ErrNotFound
		}
		return Entry{}, fmt.Errorf("snapshot %s: %w", snap, err)
	}
	if rel == "" {
		return cur, nil
	}
	for _, name := range strings.Split(rel, "/") {
		if cur.Kind != store.EntryDir {
			return Entry{}, nil
		}
		entries, err := getTree(txn, cur.Hash)
		if err != nil {
			return Entry{}, fmt.Errorf("look up %s in snapshot %s: %w", rel, snap, err)
		}
		i := sort.Search(len(entries), func(i int) bool { return entries[i].Name >= name })
		if i == len(entries) || entries[i].Name != name {
			return Entry{}, nil
		}
		cur = entryOf(entries[i])
	}
	return cur, nil
}

// Changed lists the paths that differ between snapshots a and b, parents
// before children: files, symlinks and skipped files whose entry differs
// (content, mode, kind), and directories that exist in only one of them,
// with everything below. Subtrees with the same hash are not read. The
// list is what a revert from b to a has to write; the target of each path
// is Lookup(a, path).
func (e *Engine) Changed(ctx context.Context, a, b ID) ([]string, error) {
	var out []string
	err := e.db.View(ctx, func(txn *store.Txn) error {
		return walkChanges(txn, a, b, func(p string, _, _ Entry) error {
			out = append(out, p)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("compare snapshots %s and %s: %w", a, b, err)
	}
	return out, nil
}

// walkChanges calls fn for each path whose entry differs between the trees
// a and b, in pre-order, with its entry on each side (zero when absent).
func walkChanges(txn *store.Txn, a, b ID, fn func(p string, ea, eb Entry) error) error {
	for _, h := range []ID{a, b} {
		if ok, err := store.HasTree(txn, h); err != nil || !ok {
			if err == nil {
				err = store.ErrNotFound
			}
			return fmt.Errorf("snapshot %s: %w", h, err)
		}
	}
	return diffTrees(txn, "", a, b, fn)
}

func diffTrees(txn *store.Txn, dir string, a, b store.Hash, fn func(string, Entry, Entry) error) error {
	if a == b {
		return nil
	}
	var ta, tb []store.TreeEntry
	var err error
	if !a.IsZero() {
		if ta, err = store.GetTree(txn, a); err != nil {
			return err
		}
	}
	if !b.IsZero() {
		if tb, err = store.GetTree(txn, b); err != nil {
			return err
		}
	}
	i, j := 0, 0
	for i < len(ta) || j < len(tb) {
		var ea, eb Entry
		var name string
		switch {
		case j == len(tb) || (i < len(ta) && ta[i].Name < tb[j].Name):
			name, ea = ta[i].Name, entryOf(ta[i])
			i++
		case i == len(ta) || tb[j].Name < ta[i].Name:
			name, eb = tb[j].Name, entryOf(tb[j])
			j++
		default:
			name, ea, eb = ta[i].Name, entryOf(ta[i]), entryOf(tb[j])
			i, j = i+1, j+1
		}
		if ea == eb {
			continue
		}
		p := joinRel(dir, name)
		if ea.Kind == store.EntryDir && eb.Kind == store.EntryDir {
			if err := diffTrees(txn, p, ea.Hash, eb.Hash, fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(p, ea, eb); err != nil {
			return err
		}
		// A directory on one side only: everything below it changed too.
		var da, db store.Hash
		if ea.Kind == store.EntryDir {
			da = ea.Hash
		}
		if eb.Kind == store.EntryDir {
			db = eb.Hash
		}
		if !da.IsZero() || !db.IsZero() {
			if err := diffTrees(txn, p, da, db, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// The values of FileDiff.Status.
const (
	StatusAdded    = "added"
	StatusModified = "modified"
	StatusDeleted  = "deleted"
)

// FileDiff is how one file (or symlink) differs between two snapshots.
type FileDiff struct {
	Path   string `json:"path"`
	Status string `json:"status"`
	// Additions and Deletions count changed lines; 0 for binary files.
	Additions int        `json:"additions"`
	Deletions int        `json:"deletions"`
	Before    store.Hash `json:"before,omitzero"`
	After     store.Hash `json:"after,omitzero"`
	// Binary is set when either side holds a NUL byte in its first 8 KiB
	// or is not valid UTF-8: no line counts, no patch.
	Binary bool `json:"binary,omitempty"`
	// Skipped is set when either side was over the size cap: its content
	// was never stored, so there is nothing to compare.
	Skipped bool `json:"skipped,omitempty"`
	// Patch is the unified diff, when asked for and the file is text.
	Patch string `json:"patch,omitempty"`
}

// binarySniff is how much of a file is searched for a NUL byte, as git does.
const binarySniff = 8 << 10

func isBinary(b []byte) bool {
	return bytes.IndexByte(b[:min(len(b), binarySniff)], 0) >= 0 || !utf8.Valid(b)
}

// Diff describes the files that differ from snapshot a to snapshot b, in
// path order (parents before children). Directories are not listed, only
// the files in them. withPatch adds a unified patch to each text file.
//
// Line diffs and patches come from github.com/aymanbagabas/go-udiff, an
// exported copy of gopls' internal/diff: a maintained Myers diff with a
// bounded worst case and a unified-format writer, no dependencies.
func (e *Engine) Diff(ctx context.Context, a, b ID, withPatch bool) ([]FileDiff, error) {
	var out []FileDiff
	err := e.db.View(ctx, func(txn *store.Txn) error {
		return walkChanges(txn, a, b, func(p string, ea, eb Entry) error {
			if ea.Kind == store.EntryDir {
				ea = Entry{}
			}
			if eb.Kind == store.EntryDir {
				eb = Entry{}
			}
			if !ea.Exists() && !eb.Exists() {
				return nil
			}
			d, err := e.fileDiff(txn, p, ea, eb, withPatch)
			if err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("diff snapshots %s and %s: %w", a, b, err)
	}
	return out, nil
}

func (e *Engine) fileDiff(txn *store.Txn, p string, ea, eb Entry, withPatch bool) (FileDiff, error) {
	d := FileDiff{Path: p, Status: StatusModified, Before: ea.Hash, After: eb.Hash}
	switch {
	case !ea.Exists():
		d.Status = StatusAdded
	case !eb.Exists():
		d.Status = StatusDeleted
	}
	if ea.Kind == store.EntrySkipped || eb.Kind == store.EntrySkipped {
		d.Skipped, d.Binary = true, true
		return d, nil
	}
	before, err := e.content(txn, ea)
	if err != nil {
		return FileDiff{}, fmt.Errorf("read %s: %w", p, err)
	}
	after, err := e.content(txn, eb)
	if err != nil {
		return FileDiff{}, fmt.Errorf("read %s: %w", p, err)
	}
	if isBinary(before) || isBinary(after) {
		d.Binary = true
		return d, nil
	}
	from, to := "a/"+p, "b/"+p
	if !ea.Exists() {
		from = "/dev/null"
	}
	if !eb.Exists() {
		to = "/dev/null"
	}
	edits := udiff.Lines(string(before), string(after))
	u, err := udiff.ToUnifiedDiff(from, to, string(before), edits, udiff.DefaultContextLines)
	if err != nil {
		return FileDiff{}, fmt.Errorf("diff %s: %w", p, err)
	}
	for _, h := range u.Hunks {
		for _, l := range h.Lines {
			switch l.Kind {
			case udiff.Insert:
				d.Additions++
			case udiff.Delete:
				d.Deletions++
			}
		}
	}
	if withPatch && len(u.Hunks) > 0 {
		d.Patch = u.String()
	}
	return d, nil
}

// content returns a file's bytes or a symlink's target; nil when absent.
func (e *Engine) content(txn *store.Txn, ent Entry) ([]byte, error) {
	switch ent.Kind {
	case store.EntryFile, store.EntrySymlink:
		return e.objs.GetBlob(txn, ent.Hash)
	case store.EntryNone:
		return nil, nil
	}
	return nil, errors.New("internal error: no content for a " + ent.Kind.String())
}
