package snapshot

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sessiond/sessiond/store"
)

// Overlay returns a snapshot that is base with each of paths as it is in
// from: present with from's entry, or absent. Everything else stays as
// base has it.
//
// This is how a turn records only what it wrote: from is a capture of the
// whole checkout, which also holds what a person or another program
// changed meanwhile, and base is the turn's snapshot so far. Directories a
// path needs are made, empty but for what is overlaid, so a file the turn
// wrote into a directory a person made does not bring the person's other
// files along. A directory path alone is made or removed, not filled: its
// files are overlaid one by one. Paths are slash-separated and relative to
// the root.
func (e *Engine) Overlay(ctx context.Context, base, from ID, paths []string) (ID, error) {
	if len(paths) == 0 || base == from {
		return base, nil
	}
	paths = slices.Clone(paths)
	slices.Sort(paths) // parents before children
	paths = slices.Compact(paths)
	u := e.gcBegin()
	trees := map[store.Hash][]byte{}
	var root ID
	err := e.db.View(ctx, func(txn *store.Txn) error {
		for _, id := range []ID{base, from} {
			if ok, err := store.HasTree(txn, id); err != nil || !ok {
				if err == nil {
					err = store.ErrNotFound
				}
				return fmt.Errorf("snapshot %s: %w", id, err)
			}
		}
		o := &overlay{txn: txn, root: &onode{e: store.TreeEntry{Kind: store.EntryDir, Hash: base}}}
		get := cachedGetTree() // many paths share from's directories
		for _, p := range paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			rel, err := cleanLookup(p)
			if err != nil {
				return err
			}
			if rel == "" {
				continue // the root itself is always there
			}
			want, err := lookupWith(txn, from, rel, get)
			if err != nil {
				return err
			}
			if err := o.set(rel, want); err != nil {
				return err
			}
		}
		var err error
		root, err = o.build(o.root, trees)
		return err
	})
	if err == nil && len(trees) > 0 {
		e.gcUseTrees(u, trees) // before writing: some may be stored and unreferenced
		b := e.db.NewBatch()
		defer b.Cancel()
		for h, enc := range trees {
			if err = b.SetRaw(store.KeyTree(h), enc); err != nil {
				break
			}
		}
		if err == nil {
			err = b.Flush()
		}
	}
	e.gcEnd(u, root, err == nil)
	if err != nil {
		return ID{}, fmt.Errorf("overlay %d paths on snapshot %s: %w", len(paths), base, err)
	}
	return root, nil
}

// onode is a directory or entry of the snapshot Overlay builds. A
// directory's kids are read from its tree the first time a path goes
// through it; changed marks the directories whose tree must be written
// again.
type onode struct {
	e       store.TreeEntry
	kids    map[string]*onode
	changed bool
}

type overlay struct {
	txn  *store.Txn
	root *onode
}

func (o *overlay) load(n *onode) error {
	if n.kids != nil {
		return nil
	}
	n.kids = map[string]*onode{}
	if n.e.Kind != store.EntryDir || n.e.Hash.IsZero() {
		return nil
	}
	entries, err := store.GetTree(o.txn, n.e.Hash)
	if err != nil {
		return err
	}
	for _, te := range entries {
		n.kids[te.Name] = &onode{e: te}
	}
	return nil
}

// set makes rel what want is.
func (o *overlay) set(rel string, want Entry) error {
	names := strings.Split(rel, "/")
	dir := o.root
	path := []*onode{dir}
	for _, name := range names[:len(names)-1] {
		if err := o.load(dir); err != nil {
			return err
		}
		next := dir.kids[name]
		if next == nil || next.e.Kind != store.EntryDir {
			if !want.Exists() {
				return nil // nothing to remove below a directory base lacks
			}
			next = &onode{e: store.TreeEntry{Name: name, Kind: store.EntryDir}, kids: map[string]*onode{}}
			dir.kids[name] = next
		}
		dir = next
		path = append(path, dir)
	}
	if err := o.load(dir); err != nil {
		return err
	}
	name := names[len(names)-1]
	old := dir.kids[name]
	switch {
	case !want.Exists():
		if old == nil {
			return nil
		}
		delete(dir.kids, name)
	case want.Kind == store.EntryDir:
		if old != nil && old.e.Kind == store.EntryDir {
			return nil // already a directory; its files are overlaid one by one
		}
		dir.kids[name] = &onode{e: store.TreeEntry{Name: name, Kind: store.EntryDir}, kids: map[string]*onode{}, changed: true}
	default:
		te := store.TreeEntry{Name: name, Kind: want.Kind, Mode: uint32(want.Mode), Size: want.Size, Hash: want.Hash}
		if old != nil && old.e == te {
			return nil
		}
		dir.kids[name] = &onode{e: te}
	}
	for _, n := range path {
		n.changed = true
	}
	return nil
}

// build encodes the changed directories below n, deepest first, and
// returns n's tree hash.
func (o *overlay) build(n *onode, trees map[store.Hash][]byte) (store.Hash, error) {
	if !n.changed {
		return n.e.Hash, nil
	}
	names := make([]string, 0, len(n.kids))
	for name := range n.kids {
		names = append(names, name)
	}
	slices.Sort(names)
	entries := make([]store.TreeEntry, len(names))
	for i, name := range names {
		k := n.kids[name]
		if k.e.Kind == store.EntryDir {
			h, err := o.build(k, trees)
			if err != nil {
				return store.Hash{}, err
			}
			k.e.Hash = h
		}
		entries[i] = k.e
		entries[i].Name = name
	}
	h, enc, err := store.EncodeTree(entries)
	if err != nil {
		return store.Hash{}, err
	}
	trees[h] = enc
	return h, nil
}
