package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/sessiond/sessiond/store"
)

// indexVersion is the layout of index entries and meta. An index of
// another version is dropped and rebuilt by a full scan (rehashing every
// file once): it is a cache of the disk, never the only copy of anything.
const indexVersion = 1

// indexMeta is the per-root record of a file index.
type indexMeta struct {
	Version int    `json:"version"`
	Root    string `json:"root"`
	// Tree is the root tree of the last capture: the snapshot the index
	// describes. The collector must keep it (and so everything the index
	// points at) alive; see IndexRoots.
	Tree store.Hash `json:"tree"`
	// MaxFileSize is the cap the entries were classified with.
	MaxFileSize int64 `json:"maxFileSize"`
	// Pending is set while an index update too big for one transaction
	// is written in batches; a capture that finds it set rebuilds every
	// tree from the entries, as the directory hashes may be half-updated.
	Pending bool `json:"pending,omitempty"`
	// Captured is when the last capture started, epoch ms.
	Captured int64 `json:"captured"`
}

// indexID names the index of a canonical root in keys: fixed length, so
// one root's keys never prefix another's, and free of '/'.
func indexID(root string) string {
	sum := sha256.Sum256([]byte(root))
	return hex.EncodeToString(sum[:16])
}

// ientry is what the index knows of one path.
type ientry struct {
	kind store.EntryKind
	// racy marks an entry whose mtime was too close to its capture to
	// trust: a write in the same timestamp tick could have left the stat
	// as it was, so the next capture rehashes it (git's "racily clean").
	racy  bool
	mode  uint32 // permission bits (files, skipped)
	size  int64
	mtime int64 // ns
	ino   uint64
	ctime int64 // ns
	hash  store.Hash
}

const flagRacy = 1

func (e *ientry) encode() []byte {
	b := make([]byte, 0, 3+5*binary.MaxVarintLen64+len(e.hash))
	var flags byte
	if e.racy {
		flags |= flagRacy
	}
	b = append(b, indexVersion, byte(e.kind), flags)
	b = binary.AppendUvarint(b, uint64(e.mode))
	b = binary.AppendUvarint(b, uint64(e.size))
	b = binary.AppendVarint(b, e.mtime)
	b = binary.AppendUvarint(b, e.ino)
	b = binary.AppendVarint(b, e.ctime)
	return append(b, e.hash[:]...)
}

func decodeEntry(b []byte) (*ientry, error) {
	if len(b) < 3 || b[0] != indexVersion {
		return nil, errors.New("unknown index entry version")
	}
	e := &ientry{kind: store.EntryKind(b[1]), racy: b[2]&flagRacy != 0}
	if e.kind == store.EntryNone || e.kind > store.EntrySkipped {
		return nil, fmt.Errorf("bad kind %d", b[1])
	}
	b = b[3:]
	var bad bool
	uv := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	sv := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	e.mode = uint32(uv())
	e.size = int64(uv())
	e.mtime = sv()
	e.ino = uv()
	e.ctime = sv()
	if bad || len(b) != len(e.hash) {
		return nil, errors.New("truncated index entry")
	}
	copy(e.hash[:], b)
	return e, nil
}

// statEntry fills the stat fields of an entry from fi.
func statEntry(kind store.EntryKind, fi fs.FileInfo) *ientry {
	ino, ctime := statExtra(fi)
	e := &ientry{kind: kind, size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: ino, ctime: ctime}
	if kind == store.EntryFile || kind == store.EntrySkipped {
		e.mode = uint32(fi.Mode().Perm())
	}
	return e
}

// sameStat reports whether a path whose index entry is old and whose stat
// is now e can be taken as unchanged without reading it. Besides size,
// mtime and mode it compares the inode and ctime: a file replaced by one
// with the same size and a preserved mtime (cp -p, tar, rsync -t) changes
// both, and ctime cannot be set back from user space.
func sameStat(old, e *ientry) bool {
	return old != nil && !old.racy && old.kind == e.kind && old.mode == e.mode && old.size == e.size &&
		old.mtime == e.mtime && old.ino == e.ino && old.ctime == e.ctime
}

// treeEntry is the tree form of an index entry named name.
func (e *ientry) treeEntry(name string) store.TreeEntry {
	te := store.TreeEntry{Name: name, Kind: e.kind}
	switch e.kind {
	case store.EntryFile:
		te.Mode, te.Size, te.Hash = e.mode, e.size, e.hash
	case store.EntrySkipped:
		te.Mode, te.Size = e.mode, e.size
	case store.EntrySymlink:
		te.Size, te.Hash = e.size, e.hash
	case store.EntryDir:
		te.Hash = e.hash
	}
	return te
}

// IndexRoots returns the root trees of every file index. The collector
// must treat them as live: a capture reuses the hashes its index holds
// (of files whose stat did not change, of directories it did not enter)
// without checking that the objects still exist.
func (e *Engine) IndexRoots(ctx context.Context) ([]ID, error) {
	var out []ID
	err := e.db.View(ctx, func(txn *store.Txn) error {
		return txn.Scan(store.PrefixFileIndexMetas(), nil, false, false, func(key, value []byte) (bool, error) {
			var m indexMeta
			if err := json.Unmarshal(value, &m); err != nil {
				return false, fmt.Errorf("decode file index meta %q: %w", key, err)
			}
			if !m.Tree.IsZero() {
				out = append(out, m.Tree)
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list file indexes: %w", err)
	}
	return out, nil
}

// ForgetIndex drops the file index of root (when its project is closed for
// good). Snapshots already taken stay readable; the next capture of root
// rehashes every file.
func (e *Engine) ForgetIndex(ctx context.Context, root string) error {
	if !filepath.IsAbs(root) {
		return fmt.Errorf("workspace root %q is not absolute: pass the project's absolute root", root)
	}
	// The directory may be gone by now: then its clean form is the best guess.
	canon, err := filepath.EvalSymlinks(root)
	if err != nil {
		canon = filepath.Clean(root)
	}
	unlock, err := e.lockRoot(ctx, canon)
	if err != nil {
		return err
	}
	defer unlock()
	idx := indexID(canon)
	// The meta goes first: an index without meta is rebuilt from scratch
	// by the next capture, so a crash halfway leaves nothing misleading.
	if err := e.db.Update(ctx, func(txn *store.Txn) error { return txn.Delete(store.KeyFileIndexMeta(idx)) }); err != nil {
		return fmt.Errorf("forget file index of %s: %w", canon, err)
	}
	var keys [][]byte
	err = e.db.View(ctx, func(txn *store.Txn) error {
		return txn.Scan(store.PrefixFileIndex(idx), nil, false, true, func(key, _ []byte) (bool, error) {
			keys = append(keys, key)
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("forget file index of %s: %w", canon, err)
	}
	b := e.db.NewBatch()
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			b.Cancel()
			return fmt.Errorf("forget file index of %s: %w", canon, err)
		}
	}
	if err := b.Flush(); err != nil {
		return fmt.Errorf("forget file index of %s: %w", canon, err)
	}
	return nil
}
