package store

// The object store: content-addressed blobs and trees, shared by every
// project and session of a data dir, so identical content is stored once.
//
// A blob is a file's content (or a symlink's target) keyed by its SHA-256.
// A tree is one directory: its entries sorted by name, each with a kind,
// permission bits, size and the hash of a blob or of a subtree, encoded in
// a compact binary form and keyed by the SHA-256 of that encoding — a
// Merkle tree as in git, so a snapshot is the hash of a root tree and two
// snapshots share every unchanged subtree.
//
// Objects are immutable and idempotent to write: writing them ahead of the
// records that refer to them (in a Batch, outside the transaction of those
// records) is always safe, which is how large captures stay under Badger's
// transaction size limit.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"
)

// ErrTxnTooBig reports a transaction over Badger's size limit: split the
// work, writing what can go first (objects) through a Batch.
var ErrTxnTooBig = badger.ErrTxnTooBig

// Hash is the SHA-256 of an object. Its text form is lower-case hex.
type Hash [sha256.Size]byte

// BlobHash returns the hash a blob of content is stored under.
func BlobHash(content []byte) Hash { return sha256.Sum256(content) }

// ParseHash parses the hex form of a hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return Hash{}, fmt.Errorf("object hash %q: want %d hex digits", s, 2*len(h))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return Hash{}, fmt.Errorf("object hash %q: %w", s, err)
	}
	return h, nil
}

// String returns the hash in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is the zero hash, which no object has in practice.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText encodes h as hex, so records and RPC results carry it as a string.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText parses hex; an empty string is the zero hash.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*h = Hash{}
		return nil
	}
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// EntryKind is what a tree entry is. The zero value, EntryNone, is not a
// valid tree entry: callers above use it for "absent".
type EntryKind uint8

// The kinds of tree entries.
const (
	EntryNone    EntryKind = iota
	EntryFile              // a regular file; Hash is its content blob
	EntrySymlink           // a symbolic link, never followed; Hash is the blob of its target
	EntryDir               // a directory; Hash is its tree
	EntrySkipped           // a regular file not stored (over the size cap, unreadable); no Hash
)

var entryKindNames = [...]string{"absent", "file", "symlink", "dir", "skipped"}

func (k EntryKind) String() string {
	if int(k) < len(entryKindNames) {
		return entryKindNames[k]
	}
	return fmt.Sprintf("EntryKind(%d)", uint8(k))
}

// MarshalText encodes k by name.
func (k EntryKind) MarshalText() ([]byte, error) {
	if int(k) >= len(entryKindNames) {
		return nil, fmt.Errorf("invalid entry kind %d", k)
	}
	return []byte(k.String()), nil
}

// UnmarshalText parses a name written by MarshalText.
func (k *EntryKind) UnmarshalText(b []byte) error {
	for i, n := range entryKindNames {
		if string(b) == n {
			*k = EntryKind(i)
			return nil
		}
	}
	return fmt.Errorf("unknown entry kind %q: want one of %s", b, strings.Join(entryKindNames[:], ", "))
}

// TreeEntry is one name in a directory.
type TreeEntry struct {
	Name string
	Kind EntryKind
	// Mode holds the permission bits of a file or skipped file (0o755 for
	// an executable); 0 for symlinks and directories.
	Mode uint32
	// Size is the length of a file, skipped file or symlink target; 0 for
	// directories.
	Size int64
	// Hash is the blob (file, symlink) or tree (dir); zero for skipped.
	Hash Hash
}

// ObjectKind tells blobs from trees in ScanObjects.
type ObjectKind uint8

// The kinds of objects.
const (
	ObjectBlob ObjectKind = iota + 1
	ObjectTree
)

func (k ObjectKind) String() string {
	switch k {
	case ObjectBlob:
		return "blob"
	case ObjectTree:
		return "tree"
	}
	return fmt.Sprintf("ObjectKind(%d)", uint8(k))
}

// Writer is where objects are written: a *Txn or a *Batch.
type Writer interface {
	SetRaw(key, value []byte) error
}

// Blob value codecs: the first byte of a stored blob.
const (
	blobRaw  = 0 // stored as is: tiny or incompressible content
	blobZstd = 1 // one zstd frame
)

// minCompress is the size below which compressing cannot pay for the frame header.
const minCompress = 64

// Objects reads and writes blobs and trees. It owns one zstd encoder and
// one decoder, both safe for concurrent use, so the engine that holds it
// compresses without allocating a codec per call. Close releases them.
type Objects struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

// NewObjects returns an Objects with its codecs ready.
func NewObjects() (*Objects, error) {
	// Level "default" (zstd 3) compresses source code about 4:1 at a few
	// hundred MB/s per core; lower memory keeps the idle daemon small.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("create zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderLowmem(true))
	if err != nil {
		enc.Close()
		return nil, fmt.Errorf("create zstd decoder: %w", err)
	}
	return &Objects{enc: enc, dec: dec}, nil
}

// Close releases the codecs.
func (o *Objects) Close() {
	o.enc.Close()
	o.dec.Close()
}

// PutBlob stores content and returns its hash. Writing a blob that exists
// rewrites the same bytes; check HasBlob first to save the compression.
func (o *Objects) PutBlob(w Writer, content []byte) (Hash, error) {
	h := BlobHash(content)
	return h, o.PutBlobHashed(w, h, content)
}

// PutBlobHashed stores content under h, which must be BlobHash(content):
// for callers that hashed content already (to ask HasBlob) and would
// otherwise hash it twice.
func (o *Objects) PutBlobHashed(w Writer, h Hash, content []byte) error {
	// A fresh slice per call: a Batch keeps values until it commits.
	var v []byte
	if len(content) >= minCompress {
		v = o.enc.EncodeAll(content, append(make([]byte, 0, len(content)/2+16), blobZstd))
	}
	if v == nil || len(v) >= len(content)+1 {
		v = append(append(make([]byte, 0, len(content)+1), blobRaw), content...)
	}
	if err := w.SetRaw(KeyBlob(h), v); err != nil {
		return fmt.Errorf("store blob %s (%d bytes): %w", h, len(content), err)
	}
	return nil
}

// GetBlob returns the content of blob h, or an error wrapping ErrNotFound.
func (o *Objects) GetBlob(txn *Txn, h Hash) ([]byte, error) {
	item, err := txn.t.Get(KeyBlob(h))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	var out []byte
	err = item.Value(func(v []byte) error {
		if len(v) == 0 {
			return errors.New("empty value")
		}
		switch v[0] {
		case blobRaw:
			out = append([]byte{}, v[1:]...)
			return nil
		case blobZstd:
			// DecodeAll copies into a new slice: v belongs to Badger.
			var err error
			out, err = o.dec.DecodeAll(v[1:], nil)
			return err
		default:
			return fmt.Errorf("unknown codec %d", v[0])
		}
	})
	if err != nil {
		return nil, fmt.Errorf("decode blob %s: %w (the store is damaged: restore the data dir from a backup)", h, err)
	}
	return out, nil
}

// HasBlob reports whether blob h is stored.
func HasBlob(txn *Txn, h Hash) (bool, error) { return txn.Has(KeyBlob(h)) }

// HasTree reports whether tree h is stored.
func HasTree(txn *Txn, h Hash) (bool, error) { return txn.Has(KeyTree(h)) }

// EncodeTree checks entries (sorted by name, no duplicates, valid names
// and kinds) and returns their encoding and its hash, the tree's identity.
// The hash covers every entry's name, kind, mode, size and hash.
//
// Layout: "T1", uvarint count, then per entry uvarint name length, name,
// kind byte, uvarint mode, uvarint size, and 32 hash bytes unless skipped.
func EncodeTree(entries []TreeEntry) (Hash, []byte, error) {
	n := 2 + binary.MaxVarintLen64
	for _, e := range entries {
		n += len(e.Name) + 1 + 3*binary.MaxVarintLen64 + len(e.Hash)
	}
	b := make([]byte, 0, n)
	b = append(b, treeMagic...)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for i, e := range entries {
		if err := checkEntry(e); err != nil {
			return Hash{}, nil, err
		}
		if i > 0 && entries[i-1].Name >= e.Name {
			return Hash{}, nil, fmt.Errorf("tree entries %q and %q are not sorted and unique", entries[i-1].Name, e.Name)
		}
		b = binary.AppendUvarint(b, uint64(len(e.Name)))
		b = append(b, e.Name...)
		b = append(b, byte(e.Kind))
		b = binary.AppendUvarint(b, uint64(e.Mode))
		b = binary.AppendUvarint(b, uint64(e.Size))
		if e.Kind != EntrySkipped {
			b = append(b, e.Hash[:]...)
		}
	}
	return sha256.Sum256(b), b, nil
}

const treeMagic = "T1"

// PutTree stores a tree of entries (see EncodeTree) and returns its hash.
func PutTree(w Writer, entries []TreeEntry) (Hash, error) {
	h, b, err := EncodeTree(entries)
	if err != nil {
		return Hash{}, fmt.Errorf("encode tree: %w", err)
	}
	if err := w.SetRaw(KeyTree(h), b); err != nil {
		return Hash{}, fmt.Errorf("store tree %s: %w", h, err)
	}
	return h, nil
}

// GetTree returns the entries of tree h, sorted by name, or an error
// wrapping ErrNotFound. It checks the stored bytes against h and every
// entry's name, so a damaged store cannot hand a restore a name like "..".
func GetTree(txn *Txn, h Hash) ([]TreeEntry, error) {
	item, err := txn.t.Get(KeyTree(h))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("tree %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", h, err)
	}
	var entries []TreeEntry
	err = item.Value(func(v []byte) error {
		if sha256.Sum256(v) != h {
			return errors.New("content does not match its hash")
		}
		entries, err = decodeTree(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("decode tree %s: %w (the store is damaged: restore the data dir)", h, err)
	}
	return entries, nil
}

func decodeTree(b []byte) ([]TreeEntry, error) {
	if !bytes.HasPrefix(b, []byte(treeMagic)) {
		return nil, errors.New("not a tree")
	}
	b = b[len(treeMagic):]
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errors.New("truncated")
		}
		b = b[n:]
		return v, nil
	}
	count, err := uv()
	if err != nil {
		return nil, err
	}
	if count > uint64(len(b)) { // every entry takes several bytes
		return nil, fmt.Errorf("claims %d entries in %d bytes", count, len(b))
	}
	entries := make([]TreeEntry, 0, count)
	for i := range count {
		nl, err := uv()
		if err != nil || nl >= uint64(len(b)) {
			return nil, fmt.Errorf("entry %d: truncated name", i)
		}
		e := TreeEntry{Name: string(b[:nl]), Kind: EntryKind(b[nl])}
		b = b[nl+1:]
		mode, err := uv()
		if err != nil {
			return nil, fmt.Errorf("entry %q: truncated mode", e.Name)
		}
		size, err := uv()
		if err != nil || mode > 0o7777 || size > 1<<62 {
			return nil, fmt.Errorf("entry %q: bad mode or size", e.Name)
		}
		e.Mode, e.Size = uint32(mode), int64(size)
		if e.Kind != EntrySkipped {
			if len(b) < len(e.Hash) {
				return nil, fmt.Errorf("entry %q: truncated hash", e.Name)
			}
			copy(e.Hash[:], b)
			b = b[len(e.Hash):]
		}
		if err := checkEntry(e); err != nil {
			return nil, err
		}
		if i > 0 && entries[i-1].Name >= e.Name {
			return nil, fmt.Errorf("entries %q and %q out of order", entries[i-1].Name, e.Name)
		}
		entries = append(entries, e)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(b))
	}
	return entries, nil
}

func checkEntry(e TreeEntry) error {
	if !ValidName(e.Name) {
		return fmt.Errorf("tree entry name %q is not a single path component", e.Name)
	}
	if e.Kind == EntryNone || e.Kind > EntrySkipped {
		return fmt.Errorf("tree entry %q has invalid kind %d", e.Name, e.Kind)
	}
	if e.Mode > 0o7777 || e.Size < 0 {
		return fmt.Errorf("tree entry %q has invalid mode %o or size %d", e.Name, e.Mode, e.Size)
	}
	return nil
}

// ValidName reports whether name can be one entry of a tree: a single
// path component, not "." or "..", without '/' or NUL.
func ValidName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// ScanObjects calls fn with every stored object, blobs first, for a
// mark-and-sweep collector. fn returns false to stop.
func ScanObjects(txn *Txn, fn func(kind ObjectKind, h Hash) (bool, error)) error {
	for _, p := range []struct {
		kind   ObjectKind
		prefix []byte
	}{{ObjectBlob, PrefixBlobs()}, {ObjectTree, PrefixTrees()}} {
		stopped := false
		err := txn.Scan(p.prefix, nil, false, true, func(key, _ []byte) (bool, error) {
			h, err := ParseHash(string(key[len(p.prefix):]))
			if err != nil {
				return false, fmt.Errorf("object key %q: %w", key, err)
			}
			more, err := fn(p.kind, h)
			stopped = !more
			return more, err
		})
		if err != nil || stopped {
			return err
		}
	}
	return nil
}

// SplitFileIndexKey returns the directory and name of an entry key under
// PrefixFileIndex(idxID) (prefix is that prefix).
func SplitFileIndexKey(key, prefix []byte) (dir, name string, ok bool) {
	if !bytes.HasPrefix(key, prefix) {
		return "", "", false
	}
	rest := key[len(prefix):]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return "", "", false
	}
	return string(rest[:i]), string(rest[i+1:]), true
}

// maxBatchPending bounds the value bytes a Batch holds before it commits
// them: Badger counts values in the value log only by their pointers, so
// without this a batch of large blobs would grow without limit in memory.
const maxBatchPending = 32 << 20

// Batch writes many records outside any transaction, committing as it
// goes: for objects, which are safe to write ahead of the records that
// refer to them, and for large index rebuilds. Safe for concurrent use.
// Values must not be modified after SetRaw. Every Batch must end with
// Flush or Cancel.
type Batch struct {
	db      *DB
	mu      sync.Mutex
	wb      *badger.WriteBatch // nil until the first write after a commit
	pending int
}

// NewBatch starts a Batch.
func (db *DB) NewBatch() *Batch { return &Batch{db: db} }

// SetRaw stores value at key.
func (b *Batch) SetRaw(key, value []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wb == nil {
		// Opened lazily: an open WriteBatch holds a read timestamp that
		// keeps Badger from discarding old versions until it ends.
		b.wb = b.db.bdb.NewWriteBatch()
	}
	if err := b.wb.Set(key, value); err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	b.pending += len(key) + len(value)
	if b.pending >= maxBatchPending {
		return b.flushLocked()
	}
	return nil
}

// Delete removes key; deleting an absent key is not an error.
func (b *Batch) Delete(key []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wb == nil {
		b.wb = b.db.bdb.NewWriteBatch()
	}
	if err := b.wb.Delete(key); err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	return nil
}

// Flush commits everything written so far and waits for it. The Batch
// can be used again afterwards.
func (b *Batch) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *Batch) flushLocked() error {
	if b.wb == nil {
		return nil
	}
	err := b.wb.Flush()
	b.wb, b.pending = nil, 0
	if err != nil {
		return fmt.Errorf("commit write batch: %w", err)
	}
	return nil
}

// Cancel drops what has not been committed yet; what was is kept.
func (b *Batch) Cancel() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wb != nil {
		b.wb.Cancel()
		b.wb, b.pending = nil, 0
	}
}
