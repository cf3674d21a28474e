package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/store"
)

func open(t *testing.T, dir string, migrations ...store.Migration) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), store.Options{Dir: dir, Migrations: migrations})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return db
}

func closeDB(t *testing.T, db *store.DB) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// schemaOf reads the stored schema version.
func schemaOf(t *testing.T, db *store.DB) int {
	t.Helper()
	var v []byte
	err := db.View(context.Background(), func(txn *store.Txn) error {
		var err error
		v, err = txn.GetRaw(store.KeySchema())
		return err
	})
	if err != nil {
		t.Fatalf("read schema key: %v", err)
	}
	if len(v) != 8 {
		t.Fatalf("schema key holds %d bytes, want 8", len(v))
	}
	return int(binary.BigEndian.Uint64(v))
}

func setSchema(t *testing.T, db *store.DB, v int) {
	t.Helper()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	err := db.Update(context.Background(), func(txn *store.Txn) error { return txn.SetRaw(store.KeySchema(), b[:]) })
	if err != nil {
		t.Fatal(err)
	}
}

func put(t *testing.T, db *store.DB, key, value string) {
	t.Helper()
	err := db.Update(context.Background(), func(txn *store.Txn) error { return txn.SetRaw([]byte(key), []byte(value)) })
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func get(t *testing.T, db *store.DB, key string) (string, error) {
	t.Helper()
	var v []byte
	err := db.View(context.Background(), func(txn *store.Txn) error {
		var err error
		v, err = txn.GetRaw([]byte(key))
		return err
	})
	return string(v), err
}

func TestOpenRecordsSchemaAndReopenKeepsData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := open(t, dir)
	if got := schemaOf(t, db); got != store.SchemaVersion {
		t.Errorf("new store schema = %d, want %d", got, store.SchemaVersion)
	}
	type rec struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	in := rec{Name: "kept", N: 42}
	err := db.Update(context.Background(), func(txn *store.Txn) error { return txn.Set([]byte("test/rec"), in) })
	if err != nil {
		t.Fatal(err)
	}
	put(t, db, "test/raw", "bytes")
	closeDB(t, db)

	db = open(t, dir)
	defer closeDB(t, db)
	if got := schemaOf(t, db); got != store.SchemaVersion {
		t.Errorf("reopened store schema = %d, want %d", got, store.SchemaVersion)
	}
	var out rec
	err = db.View(context.Background(), func(txn *store.Txn) error { return txn.Get([]byte("test/rec"), &out) })
	if err != nil || out != in {
		t.Errorf("after reopen Get = %+v, %v; want %+v", out, err, in)
	}
	if v, err := get(t, db, "test/raw"); err != nil || v != "bytes" {
		t.Errorf("after reopen GetRaw = %q, %v; want \"bytes\"", v, err)
	}
}

func TestTxnMissingKeys(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	put(t, db, "k/present", "v")
	err := db.View(context.Background(), func(txn *store.Txn) error {
		if _, err := txn.GetRaw([]byte("k/absent")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRaw(absent) err = %v, want ErrNotFound", err)
		}
		var v any
		if err := txn.Get([]byte("k/absent"), &v); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(absent) err = %v, want ErrNotFound", err)
		}
		for key, want := range map[string]bool{"k/present": true, "k/absent": false} {
			if ok, err := txn.Has([]byte(key)); err != nil || ok != want {
				t.Errorf("Has(%s) = %v, %v; want %v", key, ok, err, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Deleting an absent key is not an error; deleting a present one removes it.
	err = db.Update(context.Background(), func(txn *store.Txn) error {
		if err := txn.Delete([]byte("k/absent")); err != nil {
			return err
		}
		return txn.Delete([]byte("k/present"))
	})
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := get(t, db, "k/present"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted key: err = %v, want ErrNotFound", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	noop := func(context.Context, *store.DB) error { return nil }
	tests := []struct {
		name       string
		migrations []store.Migration
		readsUpTo  int
	}{
		{"no migrations", nil, store.SchemaVersion},
		{"with migrations", []store.Migration{
			{To: store.SchemaVersion + 1, Name: "one", Apply: noop},
			{To: store.SchemaVersion + 2, Name: "two", Apply: noop},
		}, store.SchemaVersion + 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			db := open(t, dir)
			newer := tt.readsUpTo + 5
			setSchema(t, db, newer)
			put(t, db, "test/keep", "v")
			closeDB(t, db)

			ran := false
			ms := slices.Clone(tt.migrations)
			for i := range ms {
				ms[i].Apply = func(context.Context, *store.DB) error { ran = true; return nil }
			}
			db, err := store.Open(context.Background(), store.Options{Dir: dir, Migrations: ms})
			if err == nil {
				db.Close()
				t.Fatalf("Open of a schema %d store by a build reading up to %d succeeded", newer, tt.readsUpTo)
			}
			for _, v := range []int{newer, tt.readsUpTo} {
				if !strings.Contains(err.Error(), strconv.Itoa(v)) {
					t.Errorf("error %q does not name version %d", err, v)
				}
			}
			if ran {
				t.Error("a migration ran on a store with a newer schema")
			}
			// The refusal released the directory and changed nothing.
			db = open(t, dir, store.Migration{To: newer, Name: "catch up", Apply: noop})
			defer closeDB(t, db)
			if got := schemaOf(t, db); got != newer {
				t.Errorf("schema after refused open = %d, want %d", got, newer)
			}
			if v, err := get(t, db, "test/keep"); err != nil || v != "v" {
				t.Errorf("data after refused open = %q, %v", v, err)
			}
		})
	}
}

func TestOpenRejectsCorruptSchemaKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := open(t, dir)
	put(t, db, string(store.KeySchema()), "abc")
	closeDB(t, db)
	db, err := store.Open(context.Background(), store.Options{Dir: dir})
	if err == nil {
		db.Close()
		t.Fatal("Open with a 3-byte schema key succeeded")
	}
	if !strings.Contains(err.Error(), "schema") {
		t.Errorf("error %q does not mention the schema", err)
	}
}

func TestMigrationsRunInOrderOnceAndRecordVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := open(t, dir)
	put(t, db, "test/v1", "old")
	closeDB(t, db)

	base := store.SchemaVersion
	var ran []int
	var seenSchema []int
	mk := func(to int) store.Migration {
		return store.Migration{To: to, Name: fmt.Sprintf("to%d", to), Apply: func(ctx context.Context, db *store.DB) error {
			ran = append(ran, to)
			seenSchema = append(seenSchema, schemaOf(t, db))
			// A migration sees the data of the previous schema and can rewrite it.
			v, err := get(t, db, "test/v1")
			if err != nil {
				return err
			}
			return db.Update(ctx, func(txn *store.Txn) error {
				return txn.SetRaw([]byte("test/v1"), []byte(v+">"+strconv.Itoa(to)))
			})
		}}
	}
	// Given out of order, and with one the store already has.
	ms := []store.Migration{mk(base + 3), mk(base + 1), mk(base), mk(base + 2)}

	db = open(t, dir, ms...)
	want := []int{base + 1, base + 2, base + 3}
	if !slices.Equal(ran, want) {
		t.Errorf("migrations ran %v, want %v", ran, want)
	}
	if wantSeen := []int{base, base + 1, base + 2}; !slices.Equal(seenSchema, wantSeen) {
		t.Errorf("schema seen by each migration = %v, want %v (version recorded after each step)", seenSchema, wantSeen)
	}
	if got := schemaOf(t, db); got != base+3 {
		t.Errorf("schema after migrations = %d, want %d", got, base+3)
	}
	wantVal := fmt.Sprintf("old>%d>%d>%d", base+1, base+2, base+3)
	if v, err := get(t, db, "test/v1"); err != nil || v != wantVal {
		t.Errorf("migrated value = %q, %v; want %q", v, err, wantVal)
	}
	closeDB(t, db)

	ran = nil
	db = open(t, dir, ms...)
	defer closeDB(t, db)
	if len(ran) != 0 {
		t.Errorf("reopen ran migrations %v again", ran)
	}
	if got := schemaOf(t, db); got != base+3 {
		t.Errorf("schema after reopen = %d, want %d", got, base+3)
	}
}

func TestNewStoreStartsAtLatestMigrationWithoutRunningIt(t *testing.T) {
	t.Parallel()
	ran := false
	db := open(t, t.TempDir(), store.Migration{To: store.SchemaVersion + 2, Name: "x", Apply: func(context.Context, *store.DB) error {
		ran = true
		return nil
	}})
	defer closeDB(t, db)
	if ran {
		t.Error("a migration ran on a brand-new store")
	}
	if got := schemaOf(t, db); got != store.SchemaVersion+2 {
		t.Errorf("new store schema = %d, want %d", got, store.SchemaVersion+2)
	}
}

func TestFailedMigrationStopsAndResumesAtTheFailedStep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	closeDB(t, open(t, dir))
	base := store.SchemaVersion
	var ran []int
	fail := true
	ms := []store.Migration{
		{To: base + 1, Name: "good", Apply: func(context.Context, *store.DB) error { ran = append(ran, base+1); return nil }},
		{To: base + 2, Name: "flaky", Apply: func(context.Context, *store.DB) error {
			ran = append(ran, base+2)
			if fail {
				return errors.New("disk on fire")
			}
			return nil
		}},
	}
	db, err := store.Open(context.Background(), store.Options{Dir: dir, Migrations: ms})
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded although a migration failed")
	}
	for _, s := range []string{"flaky", "disk on fire", strconv.Itoa(base + 2)} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	fail = false
	ran = nil
	db = open(t, dir, ms...)
	defer closeDB(t, db)
	if want := []int{base + 2}; !slices.Equal(ran, want) {
		t.Errorf("after a failure at %d, reopen ran %v, want %v", base+2, ran, want)
	}
	if got := schemaOf(t, db); got != base+2 {
		t.Errorf("schema = %d, want %d", got, base+2)
	}
}

func TestUpdateRetriesConflicts(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	const goroutines, each = 16, 25
	key := []byte("test/counter")
	incr := func(txn *store.Txn) error {
		var n int
		if err := txn.Get(key, &n); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return txn.Set(key, n+1)
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for range goroutines {
		wg.Go(func() {
			for range each {
				if err := db.Update(context.Background(), incr); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	nerr := 0
	for err := range errs {
		if nerr == 0 {
			t.Errorf("Update under contention: %v", err)
		}
		nerr++
	}
	if nerr > 0 {
		t.Errorf("%d of %d increments failed", nerr, goroutines*each)
	}
	var n int
	if err := db.View(context.Background(), func(txn *store.Txn) error { return txn.Get(key, &n) }); err != nil {
		t.Fatal(err)
	}
	if n != goroutines*each {
		t.Errorf("counter = %d, want %d", n, goroutines*each)
	}
}

// A conflict forced deterministically: the first attempt reads the key, a
// second transaction commits a write to it, so the first commit fails and
// Update must run fn again on fresh data.
func TestUpdateRerunsFnAfterAConflict(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	ctx := context.Background()
	key := []byte("test/n")
	if err := db.Update(ctx, func(txn *store.Txn) error { return txn.Set(key, 1) }); err != nil {
		t.Fatal(err)
	}
	attempts := 0
	err := db.Update(ctx, func(txn *store.Txn) error {
		attempts++
		var n int
		if err := txn.Get(key, &n); err != nil {
			return err
		}
		if attempts == 1 {
			if err := db.Update(ctx, func(other *store.Txn) error { return other.Set(key, 100) }); err != nil {
				return err
			}
		}
		return txn.Set(key, n*2)
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if attempts != 2 {
		t.Errorf("fn ran %d times, want 2 (one conflict, one retry)", attempts)
	}
	var n int
	if err := db.View(ctx, func(txn *store.Txn) error { return txn.Get(key, &n) }); err != nil {
		t.Fatal(err)
	}
	if n != 200 {
		t.Errorf("value = %d, want 200 (the retry must see the concurrent write)", n)
	}
}

func TestUpdateAndViewHonourCancelledContext(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	fn := func(*store.Txn) error { ran = true; return nil }
	if err := db.Update(ctx, fn); !errors.Is(err, context.Canceled) {
		t.Errorf("Update with cancelled ctx = %v, want context.Canceled", err)
	}
	if err := db.View(ctx, fn); !errors.Is(err, context.Canceled) {
		t.Errorf("View with cancelled ctx = %v, want context.Canceled", err)
	}
	if ran {
		t.Error("fn ran with a cancelled context")
	}
}

func TestUpdateErrorRollsBack(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	boom := errors.New("boom")
	err := db.Update(context.Background(), func(txn *store.Txn) error {
		if err := txn.SetRaw([]byte("test/x"), []byte("v")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if _, err := get(t, db, "test/x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("write of a failed Update is visible: err = %v", err)
	}
}

func TestScan(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	t.Cleanup(func() { closeDB(t, db) })
	// Keys under "scan/" plus neighbours that share a shorter prefix or
	// sort right after it; none of those may show up.
	keys := []string{"scan/a", "scan/b", "scan/c", "scan/d", "scan/e"}
	for _, k := range append(slices.Clone(keys), "sca", "scan", "scan0", "scan.z", "scao/a") {
		put(t, db, k, "v:"+k)
	}
	prefix := []byte("scan/")
	reversed := slices.Clone(keys)
	slices.Reverse(reversed)

	tests := []struct {
		name     string
		start    string
		reverse  bool
		keysOnly bool
		stopAt   string // fn returns false on this key
		want     []string
	}{
		{name: "forward", want: keys},
		{name: "reverse", reverse: true, want: reversed},
		{name: "forward from start", start: "scan/c", want: keys[2:]},
		{name: "forward from a start between keys", start: "scan/bb", want: keys[2:]},
		{name: "reverse from start", start: "scan/c", reverse: true, want: []string{"scan/c", "scan/b", "scan/a"}},
		{name: "reverse from a start between keys", start: "scan/cc", reverse: true, want: []string{"scan/c", "scan/b", "scan/a"}},
		{name: "keys only", keysOnly: true, want: keys},
		{name: "keys only reverse", keysOnly: true, reverse: true, want: reversed},
		{name: "stop early", stopAt: "scan/b", want: keys[:2]},
		{name: "stop early reverse", stopAt: "scan/d", reverse: true, want: reversed[:2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var start []byte
			if tt.start != "" {
				start = []byte(tt.start)
			}
			var got []string
			err := db.View(context.Background(), func(txn *store.Txn) error {
				return txn.Scan(prefix, start, tt.reverse, tt.keysOnly, func(k, v []byte) (bool, error) {
					got = append(got, string(k))
					if tt.keysOnly && v != nil {
						t.Errorf("keysOnly scan gave value %q for %s", v, k)
					}
					if !tt.keysOnly && string(v) != "v:"+string(k) {
						t.Errorf("value of %s = %q, want %q", k, v, "v:"+string(k))
					}
					return string(k) != tt.stopAt, nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Scan = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("error from fn stops and is returned", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("boom")
		n := 0
		err := db.View(context.Background(), func(txn *store.Txn) error {
			return txn.Scan(prefix, nil, false, false, func(k, v []byte) (bool, error) {
				n++
				return true, boom
			})
		})
		if !errors.Is(err, boom) || n != 1 {
			t.Errorf("Scan = %v after %d calls, want boom after 1", err, n)
		}
	})
	t.Run("empty prefix range", func(t *testing.T) {
		t.Parallel()
		for _, reverse := range []bool{false, true} {
			n := 0
			err := db.View(context.Background(), func(txn *store.Txn) error {
				return txn.Scan([]byte("nothing/"), nil, reverse, false, func(k, v []byte) (bool, error) { n++; return true, nil })
			})
			if err != nil || n != 0 {
				t.Errorf("Scan(reverse=%v) of an empty range: %d keys, %v", reverse, n, err)
			}
		}
	})
	t.Run("keys handed to fn are copies", func(t *testing.T) {
		t.Parallel()
		var ks, vs [][]byte
		err := db.View(context.Background(), func(txn *store.Txn) error {
			return txn.Scan(prefix, nil, false, false, func(k, v []byte) (bool, error) {
				ks, vs = append(ks, k), append(vs, v)
				return true, nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range ks {
			if string(k) != keys[i] || !bytes.Equal(vs[i], []byte("v:"+keys[i])) {
				t.Errorf("kept key/value %d = %q/%q after the scan, want %q", i, k, vs[i], keys[i])
			}
		}
	})
}

// Reverse scans of ID-keyed ranges are how lists go newest first: check one
// over real IDs, which is the layout the session index uses.
func TestScanReverseOverIDs(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	var ids []string
	for range 50 {
		id := db.NewID(store.KindSession)
		ids = append(ids, id)
		put(t, db, string(store.KeySessionByProject("prj_x", id)), "")
	}
	// A neighbouring project whose ID extends this one must not leak in.
	put(t, db, string(store.KeySessionByProject("prj_xy", db.NewID(store.KindSession))), "")
	var got []string
	err := db.View(context.Background(), func(txn *store.Txn) error {
		return txn.Scan(store.PrefixSessionsByProject("prj_x"), nil, true, true, func(k, _ []byte) (bool, error) {
			got = append(got, store.LastComponent(k))
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(ids)
	if !slices.Equal(got, ids) {
		t.Errorf("reverse scan gave %d IDs, not newest first:\n got %q\nwant %q", len(got), got, ids)
	}
}

func TestWriteBatch(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	wb := db.NewWriteBatch()
	for i := range 100 {
		if err := wb.Set([]byte(fmt.Sprintf("wb/%03d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := db.View(context.Background(), func(txn *store.Txn) error {
		return txn.Scan([]byte("wb/"), nil, false, true, func([]byte, []byte) (bool, error) { n++; return true, nil })
	})
	if err != nil || n != 100 {
		t.Errorf("after a WriteBatch of 100 keys, scan found %d (%v)", n, err)
	}
}
