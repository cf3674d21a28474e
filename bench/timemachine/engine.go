package main

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/workspace/ignore"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// engine is sessiond's time machine on one workspace, set up the way the
// daemon sets it up: a store in the data dir, the data dir excluded from
// snapshots, and the project's ignore matcher.
type engine struct {
	ctx     context.Context
	dataDir string
	root    string
	db      *store.DB
	eng     *snapshot.Engine
	ign     *ignore.Matcher
}

func openEngine(ctx context.Context, dataDir, root string) (*engine, error) {
	db, err := store.Open(ctx, store.Options{Dir: dataDir})
	if err != nil {
		return nil, err
	}
	eng, err := snapshot.New(db, snapshot.Options{Exclude: []string{dataDir}})
	if err != nil {
		db.Close()
		return nil, err
	}
	ign, err := ignore.New(root, ignore.Options{Exclude: []string{dataDir}})
	if err != nil {
		eng.Close()
		db.Close()
		return nil, err
	}
	return &engine{ctx: ctx, dataDir: dataDir, root: root, db: db, eng: eng, ign: ign}, nil
}

// close closes the engine and the store; Badger flushes its memtables and
// truncates its value log, so the data dir's size is then what is kept.
func (e *engine) close() error {
	if e.eng == nil {
		return nil
	}
	e.eng.Close()
	err := e.db.Close()
	e.eng, e.db = nil, nil
	return err
}

// capture is what the daemon does at a turn boundary, with the watcher's
// dirty paths (nil: a full scan).
func (e *engine) capture(dirty []string) (snapshot.ID, error) {
	return e.eng.Capture(e.ctx, e.root, dirty, e.ign)
}

// revert puts back every path that differs between before and after to
// what it was in before: the file work of session/revert (DESIGN §4 step
// 3), without the session layer's journal and conflict check.
func (e *engine) revert(before, after snapshot.ID) (snapshot.ApplyReport, error) {
	paths, err := e.eng.Changed(e.ctx, before, after)
	if err != nil {
		return snapshot.ApplyReport{}, err
	}
	changes := make([]snapshot.Change, 0, len(paths))
	for _, p := range paths {
		ent, err := e.eng.Lookup(e.ctx, before, p)
		if err != nil {
			return snapshot.ApplyReport{}, err
		}
		changes = append(changes, snapshot.Change{Path: p, Target: ent})
	}
	return e.eng.Apply(e.ctx, e.root, changes)
}

// countFiles returns the files (and symlinks) a snapshot holds, and the
// files it records as skipped.
func (e *engine) countFiles(id snapshot.ID) (files, skipped int, err error) {
	err = e.db.View(e.ctx, func(txn *store.Txn) error {
		var walk func(h store.Hash) error
		walk = func(h store.Hash) error {
			entries, err := store.GetTree(txn, h)
			if err != nil {
				return err
			}
			for _, te := range entries {
				switch te.Kind {
				case store.EntryDir:
					if err := walk(te.Hash); err != nil {
						return err
					}
				case store.EntrySkipped:
					skipped++
				default:
					files++
				}
			}
			return nil
		}
		return walk(id)
	})
	return files, skipped, err
}

// diskUsage is the size of a directory tree: apparent (the sum of file
// lengths) and allocated (blocks on disk).
type diskUsage struct{ apparent, allocated int64 }

func (a diskUsage) sub(b diskUsage) diskUsage {
	return diskUsage{a.apparent - b.apparent, a.allocated - b.allocated}
}

func dirUsage(dir string) (diskUsage, error) {
	var u diskUsage
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			u.apparent += fi.Size()
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			u.allocated += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		return diskUsage{}, fmt.Errorf("size of %s: %w", dir, err)
	}
	return u, nil
}
