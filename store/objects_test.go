package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/store"
)

func newObjects(t *testing.T) *store.Objects {
	t.Helper()
	o, err := store.NewObjects()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHashText(t *testing.T) {
	t.Parallel()
	h := store.BlobHash([]byte("hello\n"))
	if got, want := h.String(), "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"; got != want {
		t.Fatalf("BlobHash = %s, want sha256 %s", got, want)
	}
	b, err := json.Marshal(struct {
		H store.Hash `json:"h"`
		Z store.Hash `json:"z,omitzero"`
	}{H: h})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"h":"`+h.String()+`"}` {
		t.Fatalf("JSON = %s", b)
	}
	var back struct{ H store.Hash }
	if err := json.Unmarshal(b, &back); err != nil || back.H != h {
		t.Fatalf("round trip = %v, %v", back.H, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), strings.Repeat("a", 63)} {
		if _, err := store.ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}
}

func TestBlobRoundTrip(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	o := newObjects(t)
	ctx := context.Background()
	cases := []struct {
		name    string
		content []byte
		// smaller: the stored value must be much smaller than the content.
		smaller bool
	}{
		{"empty", nil, false},
		{"tiny", []byte("x"), false},
		{"text", bytes.Repeat([]byte("func main() { fmt.Println(\"hello\") }\n"), 2000), true},
		{"random", randomBytes(t, 100<<10), false},
		{"large text beyond the value threshold", bytes.Repeat([]byte("0123456789abcdef\n"), 300<<10), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h store.Hash
			err := db.Update(ctx, func(txn *store.Txn) error {
				var err error
				h, err = o.PutBlob(txn, c.content)
				return err
			})
			if err != nil {
				t.Fatalf("PutBlob: %v", err)
			}
			if h != sha256.Sum256(c.content) {
				t.Fatalf("hash %s is not the SHA-256 of the content", h)
			}
			err = db.View(ctx, func(txn *store.Txn) error {
				ok, err := store.HasBlob(txn, h)
				if err != nil || !ok {
					t.Fatalf("HasBlob = %v, %v", ok, err)
				}
				got, err := o.GetBlob(txn, h)
				if err != nil {
					return err
				}
				if !bytes.Equal(got, c.content) {
					t.Fatalf("GetBlob returned %d bytes, want %d", len(got), len(c.content))
				}
				raw, err := txn.GetRaw(store.KeyBlob(h))
				if err != nil {
					return err
				}
				if c.smaller && len(raw) > len(c.content)/4 {
					t.Errorf("stored %d bytes for %d bytes of text: not compressed", len(raw), len(c.content))
				}
				if len(raw) > len(c.content)+1 {
					t.Errorf("stored %d bytes for %d: more than one byte of overhead", len(raw), len(c.content))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	err := db.View(ctx, func(txn *store.Txn) error {
		missing := store.BlobHash([]byte("never stored"))
		if ok, err := store.HasBlob(txn, missing); ok || err != nil {
			t.Errorf("HasBlob(missing) = %v, %v", ok, err)
		}
		if _, err := o.GetBlob(txn, missing); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetBlob(missing) = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Many large blobs exceed what one transaction takes; a Batch commits
// them as it goes, and they are all readable afterwards.
func TestBatchTakesMoreThanATransaction(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	o := newObjects(t)
	ctx := context.Background()
	// 60 KiB values stay in the LSM tree and count in full against the
	// transaction limit (about 1.2 MiB with our memtables).
	var blobs [][]byte
	for range 40 {
		blobs = append(blobs, randomBytes(t, 60<<10))
	}
	err := db.Update(ctx, func(txn *store.Txn) error {
		for _, b := range blobs {
			if _, err := o.PutBlob(txn, b); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, store.ErrTxnTooBig) {
		t.Fatalf("one transaction of 40 × 60 KiB: err = %v, want ErrTxnTooBig (else this test proves nothing)", err)
	}
	b := db.NewBatch()
	for _, c := range blobs {
		if _, err := o.PutBlob(b, c); err != nil {
			t.Fatal(err)
		}
	}
	// Larger values go to the value log; the batch flushes on its own
	// once it holds 32 MiB.
	big := make([][]byte, 5)
	for i := range big {
		big[i] = randomBytes(t, 10<<20)
		if _, err := o.PutBlob(b, big[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	b.Cancel() // after Flush: a no-op
	err = db.View(ctx, func(txn *store.Txn) error {
		for _, c := range append(blobs, big...) {
			got, err := o.GetBlob(txn, store.BlobHash(c))
			if err != nil {
				return err
			}
			if !bytes.Equal(got, c) {
				t.Fatalf("blob of %d bytes read back as %d bytes", len(c), len(got))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sampleTree() []store.TreeEntry {
	return []store.TreeEntry{
		{Name: "README.md", Kind: store.EntryFile, Mode: 0o644, Size: 6, Hash: store.BlobHash([]byte("hello\n"))},
		{Name: "big.iso", Kind: store.EntrySkipped, Mode: 0o644, Size: 1 << 30},
		{Name: "link", Kind: store.EntrySymlink, Size: 9, Hash: store.BlobHash([]byte("README.md"))},
		{Name: "run.sh", Kind: store.EntryFile, Mode: 0o755, Size: 2, Hash: store.BlobHash([]byte("x\n"))},
		{Name: "src", Kind: store.EntryDir, Hash: store.BlobHash([]byte("pretend tree"))},
		{Name: "é", Kind: store.EntryFile, Mode: 0o600, Hash: store.BlobHash(nil)},
	}
}

func TestTreeRoundTripAndIdentity(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	ctx := context.Background()
	entries := sampleTree()
	var h store.Hash
	err := db.Update(ctx, func(txn *store.Txn) error {
		var err error
		h, err = store.PutTree(txn, entries)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(ctx, func(txn *store.Txn) error {
		got, err := store.GetTree(txn, h)
		if err != nil {
			return err
		}
		if len(got) != len(entries) {
			t.Fatalf("GetTree = %d entries, want %d", len(got), len(entries))
		}
		for i := range got {
			if got[i] != entries[i] {
				t.Errorf("entry %d = %+v, want %+v", i, got[i], entries[i])
			}
		}
		if ok, err := store.HasTree(txn, h); !ok || err != nil {
			t.Errorf("HasTree = %v, %v", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The hash covers every field of every entry.
	same, _, _ := store.EncodeTree(sampleTree())
	if same != h {
		t.Fatal("EncodeTree is not deterministic")
	}
	mutations := map[string]func(e []store.TreeEntry){
		"name": func(e []store.TreeEntry) { e[0].Name = "README.txt" },
		"kind": func(e []store.TreeEntry) { e[2].Kind = store.EntryFile },
		"mode": func(e []store.TreeEntry) { e[3].Mode = 0o644 },
		"size": func(e []store.TreeEntry) { e[1].Size++ },
		"hash": func(e []store.TreeEntry) { e[4].Hash[0] ^= 1 },
	}
	for name, mutate := range mutations {
		e := sampleTree()
		mutate(e)
		if other, _, err := store.EncodeTree(e); err != nil || other == h {
			t.Errorf("changing the %s: hash %v (unchanged: %v), err %v", name, other, other == h, err)
		}
	}
	if empty, _, err := store.EncodeTree(nil); err != nil || empty == h {
		t.Errorf("empty tree: %v, %v", empty, err)
	}
}

func TestEncodeTreeRejectsBadEntries(t *testing.T) {
	t.Parallel()
	file := func(name string) store.TreeEntry {
		return store.TreeEntry{Name: name, Kind: store.EntryFile, Mode: 0o644}
	}
	cases := map[string][]store.TreeEntry{
		"unsorted":   {file("b"), file("a")},
		"duplicate":  {file("a"), file("a")},
		"empty name": {file("")},
		"dot":        {file(".")},
		"dot dot":    {file("..")},
		"slash":      {file("a/b")},
		"NUL":        {file("a\x00")},
		"no kind":    {{Name: "a"}},
		"bad kind":   {{Name: "a", Kind: 9}},
		"bad mode":   {{Name: "a", Kind: store.EntryFile, Mode: 0o10000}},
		"negative":   {{Name: "a", Kind: store.EntryFile, Size: -1}},
	}
	for name, entries := range cases {
		if _, _, err := store.EncodeTree(entries); err == nil {
			t.Errorf("%s: EncodeTree accepted %+v", name, entries)
		}
	}
}

// A tree whose bytes do not match their key, or that names ".." (a store
// damaged on disk, or written by a bug), is refused rather than handed to
// a restore.
func TestGetTreeRefusesDamage(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	ctx := context.Background()
	good, enc, err := store.EncodeTree(sampleTree())
	if err != nil {
		t.Fatal(err)
	}
	// ".." smuggled in with a key that matches its bytes.
	evil := bytes.Replace(enc, []byte("\x04link"), []byte("\x04l/.."), 1)
	evilHash := store.Hash(sha256.Sum256(evil))
	err = db.Update(ctx, func(txn *store.Txn) error {
		if err := txn.SetRaw(store.KeyTree(good), append(enc[:len(enc):len(enc)], 0)); err != nil {
			return err
		}
		return txn.SetRaw(store.KeyTree(evilHash), evil)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(ctx, func(txn *store.Txn) error {
		if _, err := store.GetTree(txn, good); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("GetTree of altered bytes: %v", err)
		}
		if _, err := store.GetTree(txn, evilHash); err == nil || !strings.Contains(err.Error(), "path component") {
			t.Errorf("GetTree of a tree naming l/..: %v", err)
		}
		if _, err := store.GetTree(txn, store.BlobHash([]byte("nothing"))); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetTree(missing) = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestScanObjectsAndPersistence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := open(t, dir)
	o := newObjects(t)
	ctx := context.Background()
	want := map[store.Hash]store.ObjectKind{}
	b := db.NewBatch()
	for i := range 50 {
		h, err := o.PutBlob(b, []byte(strings.Repeat("line\n", i)))
		if err != nil {
			t.Fatal(err)
		}
		want[h] = store.ObjectBlob
	}
	th, err := store.PutTree(b, sampleTree())
	if err != nil {
		t.Fatal(err)
	}
	want[th] = store.ObjectTree
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	// Unrelated records are not objects.
	put(t, db, "obk/not-an-object", "x")
	closeDB(t, db)

	db = open(t, dir)
	defer closeDB(t, db)
	got := map[store.Hash]store.ObjectKind{}
	err = db.View(ctx, func(txn *store.Txn) error {
		return store.ScanObjects(txn, func(kind store.ObjectKind, h store.Hash) (bool, error) {
			got[h] = kind
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("ScanObjects found %d objects, want %d", len(got), len(want))
	}
	for h, k := range want {
		if got[h] != k {
			t.Errorf("object %s: kind %v, want %v", h, got[h], k)
		}
	}
	// Stopping early stops.
	n := 0
	err = db.View(ctx, func(txn *store.Txn) error {
		return store.ScanObjects(txn, func(store.ObjectKind, store.Hash) (bool, error) {
			n++
			return n < 3, nil
		})
	})
	if err != nil || n != 3 {
		t.Fatalf("ScanObjects stopping after 3: n=%d, err=%v", n, err)
	}
}

func TestEntryKindText(t *testing.T) {
	t.Parallel()
	for k := store.EntryNone; k <= store.EntrySkipped; k++ {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back store.EntryKind
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Errorf("%v: round trip %v, %v", k, back, err)
		}
	}
	var k store.EntryKind
	if err := k.UnmarshalText([]byte("fifo")); err == nil {
		t.Error("UnmarshalText(fifo) accepted")
	}
}

// The children of one directory are one prefix scan, never mixed with
// those of a sibling whose name extends it or of a subdirectory.
func TestFileIndexKeys(t *testing.T) {
	t.Parallel()
	const idx, other = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	type entry struct{ dir, name string }
	entries := []entry{{"", "a"}, {"", "ab"}, {"a", "x"}, {"a", "y"}, {"a/b", "z"}, {"ab", "x"}, {"a b", "x"}, {"a/b/c", "d"}}
	children := map[string][]string{"": {"a", "ab"}, "a": {"x", "y"}, "a/b": {"z"}, "ab": {"x"}}
	for dir, want := range children {
		var got []string
		for _, e := range entries {
			if bytes.HasPrefix(store.KeyFileIndexEntry(idx, e.dir, e.name), store.PrefixFileIndexDir(idx, dir)) {
				got = append(got, e.name)
			}
			if bytes.HasPrefix(store.KeyFileIndexEntry(other, e.dir, e.name), store.PrefixFileIndexDir(idx, dir)) {
				t.Errorf("index %s's key is under index %s's prefix", other, idx)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("children of %q = %v, want %v", dir, got, want)
		}
	}
	// Below "a": its subdirectories' entries, not its children, not "ab"'s.
	var below []entry
	for _, e := range entries {
		if bytes.HasPrefix(store.KeyFileIndexEntry(idx, e.dir, e.name), store.PrefixFileIndexBelow(idx, "a")) {
			below = append(below, e)
		}
	}
	if len(below) != 2 || below[0].dir != "a/b" || below[1].dir != "a/b/c" {
		t.Errorf("below a: %v", below)
	}
	prefix := store.PrefixFileIndex(idx)
	dir, name, ok := store.SplitFileIndexKey(store.KeyFileIndexEntry(idx, "a/b", "z"), prefix)
	if !ok || dir != "a/b" || name != "z" {
		t.Errorf("SplitFileIndexKey = %q, %q, %v", dir, name, ok)
	}
	// Object and index keys stay out of every other record's prefix, and
	// theirs out of ours.
	const ses = "ses_01ARZ3NDEKTSV4RRFFQ69G5FAV"
	ours := map[string][]byte{
		"blob":  store.KeyBlob(store.BlobHash(nil)),
		"tree":  store.KeyTree(store.BlobHash(nil)),
		"meta":  store.KeyFileIndexMeta(idx),
		"entry": store.KeyFileIndexEntry(idx, "", "a"),
	}
	ourPrefixes := map[string][]byte{
		"blob":  store.PrefixBlobs(),
		"tree":  store.PrefixTrees(),
		"meta":  store.PrefixFileIndexMetas(),
		"entry": store.PrefixFileIndex(idx),
	}
	theirs := [][]byte{store.PrefixProjects(), store.PrefixSessions(), store.PrefixMessages(ses),
		store.PrefixEvents(ses), store.PrefixAppState(), store.PrefixPurge(), store.PrefixSessionState(ses)}
	for name, k := range ours {
		for _, p := range theirs {
			if bytes.HasPrefix(k, p) {
				t.Errorf("%s key %q is under %q", name, k, p)
			}
		}
		for pname, p := range ourPrefixes {
			if bytes.HasPrefix(k, p) != (pname == name) {
				t.Errorf("%s key %q under %s prefix %q: %v", name, k, pname, p, !(pname == name))
			}
		}
	}
	for _, k := range [][]byte{store.KeySchema(), store.KeySession(ses), store.KeyPurge(ses)} {
		for pname, p := range ourPrefixes {
			if bytes.HasPrefix(k, p) {
				t.Errorf("key %q is under our %s prefix", k, pname)
			}
		}
	}
}
