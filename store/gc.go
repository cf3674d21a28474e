package store

// Helpers for the object collector and for reporting store sizes: a scan
// of every object with its stored size, and the bytes the database really
// occupies on disk.

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// ScanObjectSizes is ScanObjects with the stored size of each object (its
// value as written: compressed for blobs, encoded for trees), read from
// the key's metadata without loading values kept in the value log. fn
// returns false to stop.
func ScanObjectSizes(txn *Txn, fn func(kind ObjectKind, h Hash, size int64) (bool, error)) error {
	for _, p := range []struct {
		kind   ObjectKind
		prefix []byte
	}{{ObjectBlob, PrefixBlobs()}, {ObjectTree, PrefixTrees()}} {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = p.prefix
		opts.PrefetchValues = false
		it := txn.t.NewIterator(opts)
		stopped := false
		var err error
		for it.Seek(p.prefix); it.ValidForPrefix(p.prefix); it.Next() {
			item := it.Item()
			key := item.Key()
			var h Hash
			if h, err = ParseHash(string(key[len(p.prefix):])); err != nil {
				err = fmt.Errorf("object key %q: %w", key, err)
				break
			}
			var more bool
			if more, err = fn(p.kind, h, item.ValueSize()); err != nil || !more {
				stopped = !more
				break
			}
		}
		it.Close()
		if err != nil || stopped {
			return err
		}
	}
	return nil
}

// DiskUsage is what a store occupies on disk, in bytes actually allocated
// (Badger preallocates its value log and memtable files sparsely, so
// their apparent sizes overstate it by up to hundreds of MiB).
type DiskUsage struct {
	// LSM is the sorted tables (.sst): keys and values under the value
	// threshold. Deletes free it as compactions run.
	LSM int64 `json:"lsmBytes"`
	// ValueLog is the value log (.vlog): values over the threshold.
	// Deletes free it only when value-log GC rewrites a file.
	ValueLog int64 `json:"valueLogBytes"`
	// Other is memtable logs, the manifest and Badger's bookkeeping.
	Other int64 `json:"otherBytes"`
}

// Total is the whole footprint.
func (u DiskUsage) Total() int64 { return u.LSM + u.ValueLog + u.Other }

// DiskUsage measures the store's files now. Unlike Size, it does not
// depend on Badger's metrics (which this package turns off, so Size
// reports zero) and is not up to a minute stale. An in-memory store
// reports zero.
func (db *DB) DiskUsage() (DiskUsage, error) {
	var u DiskUsage
	opts := db.bdb.Opts()
	if opts.InMemory {
		return u, nil
	}
	dirs := []string{opts.Dir}
	if opts.ValueDir != "" && filepath.Clean(opts.ValueDir) != filepath.Clean(opts.Dir) {
		dirs = append(dirs, opts.ValueDir)
	}
	for _, dir := range dirs {
		des, err := os.ReadDir(dir)
		if err != nil {
			return DiskUsage{}, fmt.Errorf("measure store in %s: %w", dir, err)
		}
		for _, de := range des {
			if !de.Type().IsRegular() {
				continue
			}
			fi, err := de.Info()
			if err != nil {
				if os.IsNotExist(err) {
					continue // removed by a compaction or GC meanwhile
				}
				return DiskUsage{}, fmt.Errorf("measure store in %s: %w", dir, err)
			}
			n := allocated(fi)
			switch filepath.Ext(de.Name()) {
			case ".sst":
				u.LSM += n
			case ".vlog":
				u.ValueLog += n
			default:
				u.Other += n
			}
		}
	}
	return u, nil
}
