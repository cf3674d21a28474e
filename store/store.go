// Package store owns sessiond's on-disk state: one Badger database per data
// directory, tuned for a desktop daemon, with a schema version, migrations run
// at open, a documented key layout and time-sortable IDs.
//
// Everything above this package sees records through transactions; nothing
// above it knows Badger's options or how keys are laid out on disk.
package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// SchemaVersion is the layout this build reads and writes. Open migrates
// older data directories up to it and refuses newer ones.
const SchemaVersion = 1

// ErrNotFound reports that a key holds no record.
var ErrNotFound = errors.New("not found")

// Options configure Open. Only Dir is required.
type Options struct {
	// Dir is the Badger directory. Ignored when InMemory is set.
	Dir string
	// InMemory keeps everything in memory; for tests of packages above store.
	InMemory bool
	// SyncWrites fsyncs every commit. Off by default: a commit is in the
	// OS page cache when acknowledged, which survives kill -9 of the daemon;
	// turn it on to also survive power loss, at a large cost in latency.
	SyncWrites bool
	// Logger receives Badger's warnings and errors. Nil discards them.
	Logger *slog.Logger
	// Migrations upgrade older schemas; tests add their own.
	Migrations []Migration
}

// A Migration upgrades the data from schema To-1 to To. It runs at Open,
// before anything is served; its version is recorded after it returns, so
// a migration interrupted by a crash runs again and must be idempotent.
type Migration struct {
	To    int
	Name  string
	Apply func(ctx context.Context, db *DB) error
}

// DB is an open store.
type DB struct {
	bdb *badger.DB
	ids *IDGen
}

// Open opens (creating if needed) the store in opts.Dir, checks its schema
// version and runs pending migrations.
func Open(ctx context.Context, opts Options) (*DB, error) {
	bopts := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(opts.SyncWrites).
		// Not WithLoggingLevel: it replaces the logger with Badger's own,
		// which writes to stderr; slogLogger drops what is below warning.
		WithLogger(slogLogger{log: opts.Logger}).
		// A desktop daemon holds thousands of sessions, not billions of
		// keys: small memtables and caches keep the idle RSS low.
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithValueLogFileSize(64 << 20).
		// Records above 64 KiB (large tool outputs, file parts) go to the
		// value log, so they neither bloat the LSM tree nor count fully
		// against the transaction size limit.
		WithValueThreshold(64 << 10).
		// Snappy, not zstd: most bytes in tables are snapshot blobs our
		// objects layer already compressed with zstd, and compressing
		// them again in every compaction took a fifth of a first index's
		// CPU. Snappy gives up fast on incompressible blocks and still
		// shrinks the JSON records.
		WithCompression(options.Snappy)
	if opts.InMemory {
		bopts.Dir, bopts.ValueDir = "", ""
	}
	bdb, err := badger.Open(bopts)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", opts.Dir, err)
	}
	db := &DB{bdb: bdb, ids: NewIDGen()}
	if err := db.migrate(ctx, opts.Migrations); err != nil {
		bdb.Close()
		return nil, err
	}
	return db, nil
}

// Close flushes and closes the store.
func (db *DB) Close() error {
	if err := db.bdb.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Badger exposes the underlying database for the few callers (GC, stats)
// that need it.
func (db *DB) Badger() *badger.DB { return db.bdb }

// NewID returns a new ID of the given kind, e.g. "ses_01J…". IDs of one
// kind sort by creation time.
func (db *DB) NewID(kind IDKind) string { return db.ids.New(kind) }

// Size reports the bytes used by the LSM tree and the value log.
func (db *DB) Size() (lsm, vlog int64) { return db.bdb.Size() }

// Update runs fn in a read-write transaction and commits it, retrying on
// conflicts with concurrent transactions until it commits or ctx ends.
// fn may run more than once, so it must not keep state across runs.
func (db *DB) Update(ctx context.Context, fn func(txn *Txn) error) error {
	backoff := 50 * time.Microsecond
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := db.bdb.Update(func(t *badger.Txn) error { return fn(&Txn{t: t}) })
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
		// Jittered backoff spreads out writers that keep colliding on
		// one hot record (say, a session receiving many events at once).
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff/2 + rand.N(backoff)):
		}
		backoff = min(2*backoff, 20*time.Millisecond)
	}
}

// View runs fn in a read-only transaction.
func (db *DB) View(ctx context.Context, fn func(txn *Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bdb.View(func(t *badger.Txn) error { return fn(&Txn{t: t}) })
}

// NewWriteBatch starts a non-transactional batch for bulk writes and
// deletes (copies, purges) too large for one transaction.
func (db *DB) NewWriteBatch() *badger.WriteBatch { return db.bdb.NewWriteBatch() }

func (db *DB) migrate(ctx context.Context, migrations []Migration) error {
	var have int
	err := db.View(ctx, func(txn *Txn) error {
		v, err := txn.GetRaw(KeySchema())
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(v) != 8 {
			return fmt.Errorf("schema version key holds %d bytes, want 8", len(v))
		}
		have = int(binary.BigEndian.Uint64(v))
		return nil
	})
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	want := SchemaVersion
	for _, m := range migrations {
		want = max(want, m.To)
	}
	if have > want {
		return fmt.Errorf("the data dir was written by a newer sessiond (schema %d, this build reads up to %d): upgrade sessiond or use another --data-dir", have, want)
	}
	if have == 0 {
		// A new store starts at the current schema: nothing to migrate.
		return db.setSchema(ctx, want)
	}
	for v := have + 1; v <= want; v++ {
		for _, m := range migrations {
			if m.To != v {
				continue
			}
			if err := m.Apply(ctx, db); err != nil {
				return fmt.Errorf("migrate store to schema %d (%s): %w", v, m.Name, err)
			}
		}
		if err := db.setSchema(ctx, v); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) setSchema(ctx context.Context, v int) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return db.Update(ctx, func(txn *Txn) error { return txn.SetRaw(KeySchema(), b[:]) })
}

// Txn is one Badger transaction with JSON record helpers.
type Txn struct{ t *badger.Txn }

// GetRaw returns a copy of the value at key, or ErrNotFound.
func (x *Txn) GetRaw(key []byte) ([]byte, error) {
	item, err := x.t.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// Has reports whether key exists.
func (x *Txn) Has(key []byte) (bool, error) {
	_, err := x.t.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Get decodes the JSON record at key into v, or returns ErrNotFound.
func (x *Txn) Get(key []byte, v any) error {
	item, err := x.t.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

// SetRaw stores value at key.
func (x *Txn) SetRaw(key, value []byte) error { return x.t.Set(key, value) }

// Set stores v as JSON at key.
func (x *Txn) Set(key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode record %q: %w", key, err)
	}
	return x.t.Set(key, b)
}

// Delete removes key; deleting an absent key is not an error.
func (x *Txn) Delete(key []byte) error { return x.t.Delete(key) }

// Scan calls fn for each key under prefix, in key order (reverse order
// when reverse is set), starting at start when it is non-nil (inclusive).
// With keysOnly, value is nil. fn returns false to stop.
func (x *Txn) Scan(prefix, start []byte, reverse, keysOnly bool, fn func(key, value []byte) (bool, error)) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.Reverse = reverse
	opts.PrefetchValues = !keysOnly
	opts.PrefetchSize = 16
	it := x.t.NewIterator(opts)
	defer it.Close()
	seek := start
	if seek == nil {
		seek = prefix
		if reverse {
			// Seek in reverse lands on the last key <= seek: one past
			// every key with this prefix.
			seek = append(append([]byte{}, prefix...), 0xff, 0xff, 0xff, 0xff)
		}
	}
	for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		var val []byte
		if !keysOnly {
			var err error
			if val, err = item.ValueCopy(nil); err != nil {
				return err
			}
		}
		more, err := fn(item.KeyCopy(nil), val)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

type slogLogger struct{ log *slog.Logger }

func (l slogLogger) logf(level slog.Level, format string, args ...any) {
	if l.log == nil {
		return
	}
	l.log.Log(context.Background(), level, "badger: "+trimNewline(fmt.Sprintf(format, args...)))
}

func (l slogLogger) Errorf(f string, a ...any)   { l.logf(slog.LevelError, f, a...) }
func (l slogLogger) Warningf(f string, a ...any) { l.logf(slog.LevelWarn, f, a...) }

// Badger's info and debug lines (compactions, flushes) are noise for a
// desktop daemon's log.
func (l slogLogger) Infof(string, ...any)  {}
func (l slogLogger) Debugf(string, ...any) {}

func trimNewline(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
