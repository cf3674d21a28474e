// Package snapshot is the workspace time machine's engine: it captures a
// workspace directory into content-addressed objects in the store, reads
// files back from a snapshot, lists and diffs what changed between two
// snapshots, and applies a list of paths back onto the disk.
//
// A snapshot is identified by the hash of its root tree (see store's
// objects): the same files give the same ID, in any session or project,
// and two snapshots share every unchanged subtree. A persistent file index
// per workspace root (path → stat and hash, and per directory its last
// tree hash) makes a capture cost O(files changed): only paths whose stat
// changed are read, and only the trees on their way to the root are
// rebuilt.
//
// The package is a library with no RPC and no watcher: the session layer
// decides when to capture (with the watcher's dirty paths) and what to
// apply (reverts), and journals applies itself.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/store"
)

// DefaultMaxFileSize is the size above which a file is recorded as skipped
// rather than stored: large generated files and media would fill the data
// dir's budget with content nobody reverts.
const DefaultMaxFileSize = 10 << 20

// ID names a snapshot: the hash of its root tree. It is content-derived,
// so a capture that finds nothing changed returns the previous ID, and it
// needs no record of its own: the messages that refer to a snapshot hold
// its ID, and the collector walks from those.
type ID = store.Hash

// Ignorer decides which paths are left out of snapshots. rel is
// slash-separated and relative to the workspace root; isDir is true for
// directories (not for symlinks to them). An ignored directory is not
// descended into. ".git" is always ignored, whatever the Ignorer says.
type Ignorer interface {
	Ignored(rel string, isDir bool) bool
}

// Entry is what a path is in a snapshot. The zero Entry (Kind
// store.EntryNone) means the path is absent. Entries are small and
// JSON-friendly, so an apply list of them can be journaled.
type Entry struct {
	Kind store.EntryKind `json:"kind"`
	// Mode holds the permission bits of a file (and of a skipped file).
	Mode fs.FileMode `json:"mode,omitempty"`
	// Size is the length of a file or of a symlink's target.
	Size int64 `json:"size,omitempty"`
	// Hash is the content blob of a file, the target blob of a symlink or
	// the tree of a directory; zero for skipped files.
	Hash store.Hash `json:"hash,omitzero"`
}

// Exists reports whether the path is present.
func (e Entry) Exists() bool { return e.Kind != store.EntryNone }

// Content is an Entry with what it holds.
type Content struct {
	Entry
	// Data is the content of a file.
	Data []byte `json:"data,omitempty"`
	// Target is the target of a symlink, as stored, never resolved.
	Target string `json:"target,omitempty"`
}

// Options configure New.
type Options struct {
	// MaxFileSize is the largest file stored; bigger ones are recorded as
	// skipped. 0 means DefaultMaxFileSize.
	MaxFileSize int64
	// Exclude lists absolute paths never captured nor written, wherever
	// they sit in a workspace: the daemon's data dir.
	Exclude []string
	// Logger receives debug lines per capture and warnings about
	// unreadable files. Nil discards them.
	Logger *slog.Logger
}

// Engine captures, reads, diffs and applies snapshots. It is safe for
// concurrent use; captures and applies of one workspace root take turns.
type Engine struct {
	db      *store.DB
	objs    *store.Objects
	log     *slog.Logger
	maxSize int64
	exclude []string // cleaned absolute paths, and their resolved forms

	now     func() time.Time // tests move the clock
	workers int

	locksMu sync.Mutex
	locks   map[string]chan struct{} // canonical root → a one-slot semaphore

	// hashed counts files whose content was read and hashed: what the
	// index exists to avoid, so tests assert on it.
	hashed atomic.Int64
	// treesBuilt counts directory trees recomputed by captures.
	treesBuilt atomic.Int64

	// gc pins recent captures and tracks what running captures rely on,
	// for Collect (gc.go).
	gc gcState
}

// New returns an Engine over db. Close it to release its codecs.
func New(db *store.DB, opts Options) (*Engine, error) {
	objs, err := store.NewObjects()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		db:      db,
		objs:    objs,
		log:     opts.Logger,
		maxSize: opts.MaxFileSize,
		now:     time.Now,
		// Reading small files waits on system calls, large ones on the
		// CPU: a few more workers than cores keep both busy.
		workers: min(8, max(2, 2*runtime.GOMAXPROCS(0))),
		locks:   make(map[string]chan struct{}),
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.maxSize <= 0 {
		e.maxSize = DefaultMaxFileSize
	}
	for _, x := range opts.Exclude {
		if !filepath.IsAbs(x) {
			objs.Close()
			return nil, fmt.Errorf("snapshot: excluded path %q is not absolute: pass the data dir as an absolute path", x)
		}
		x = filepath.Clean(x)
		e.exclude = append(e.exclude, x)
		if r, err := filepath.EvalSymlinks(x); err == nil && r != x {
			e.exclude = append(e.exclude, r)
		}
	}
	return e, nil
}

// MaxFileSize is the largest file a snapshot keeps; bigger ones are
// recorded as skipped and never restored.
func (e *Engine) MaxFileSize() int64 { return e.maxSize }

// Close releases the engine's codecs. Calls in flight must have returned.
func (e *Engine) Close() error {
	e.objs.Close()
	return nil
}

// lockRoot serializes captures and applies of one root, so two never
// interleave their index updates or their writes.
func (e *Engine) lockRoot(ctx context.Context, root string) (unlock func(), err error) {
	e.locksMu.Lock()
	ch, ok := e.locks[root]
	if !ok {
		ch = make(chan struct{}, 1)
		e.locks[root] = ch
	}
	e.locksMu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for another capture or apply of %s: %w", root, ctx.Err())
	}
}

// canonicalRoot checks that root is an existing absolute directory and
// returns it with symlinks resolved, so every spelling of a workspace
// shares one index; it refuses a root that is or lies inside an excluded
// path.
func (e *Engine) canonicalRoot(root string) (string, error) {
	if !filepath.IsAbs(root) {
		return "", fmt.Errorf("workspace root %q is not absolute: pass the project's absolute root", root)
	}
	canon, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("workspace root %s: %w", root, err)
	}
	fi, err := os.Lstat(canon)
	if err != nil {
		return "", fmt.Errorf("workspace root %s: %w", root, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("workspace root %s is not a directory", root)
	}
	for _, x := range e.exclude {
		if within(x, canon) {
			return "", fmt.Errorf("refusing to use %s as a workspace: it is inside the excluded path %s (the data dir)", root, x)
		}
	}
	return canon, nil
}

// excludedRels returns the excluded paths that lie inside root, relative
// to it and slash-separated.
func (e *Engine) excludedRels(root string) map[string]bool {
	out := make(map[string]bool)
	for _, x := range e.exclude {
		if x != root && within(root, x) {
			rel, err := filepath.Rel(root, x)
			if err == nil {
				out[filepath.ToSlash(rel)] = true
			}
		}
	}
	return out
}

// within reports whether p is dir or lies beneath it, by whole components.
func within(dir, p string) bool {
	if dir == p {
		return true
	}
	if !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	return strings.HasPrefix(p, dir)
}

// PathError reports a path argument that the engine refuses: it escapes
// the workspace, goes through a symlink, or names something never
// captured. It is the caller's mistake (or a damaged journal), not a
// failure of the disk.
type PathError struct {
	Path   string
	Reason string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("refusing path %q: %s", e.Path, e.Reason)
}

// ErrEscape is what every *PathError matches with errors.Is.
var ErrEscape = errors.New("path escapes the workspace")

// Is lets errors.Is(err, ErrEscape) find a *PathError.
func (e *PathError) Is(target error) bool { return target == ErrEscape }

// checkRel accepts a slash-separated path relative to the workspace root
// in canonical form: not absolute, no "." or ".." component, no empty
// component, no NUL, and nothing inside ".git".
func checkRel(p string) error {
	switch {
	case p == "" || p == ".":
		return &PathError{p, "it names the workspace root, not a path in it"}
	case strings.HasPrefix(p, "/") || filepath.IsAbs(p):
		return &PathError{p, "it is absolute; pass a path relative to the workspace root"}
	case strings.ContainsRune(p, 0):
		return &PathError{p, "it contains a NUL byte"}
	}
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "..":
			return &PathError{p, `it has a ".." component and could leave the workspace`}
		case "", ".":
			return &PathError{p, "it is not in canonical form (empty or \".\" component); pass path.Clean of it"}
		case ".git":
			return &PathError{p, "it lies in .git, which snapshots never hold"}
		}
	}
	return nil
}

// splitRel returns the directory ("" for the root) and base name of a
// relative path.
func splitRel(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

// joinRel joins a relative directory ("" for the root) and a name.
func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// depth counts the components of a relative path; the root has depth 0.
func depth(rel string) int {
	if rel == "" {
		return 0
	}
	return strings.Count(rel, "/") + 1
}

// entryOf converts a tree entry to an Entry.
func entryOf(te store.TreeEntry) Entry {
	return Entry{Kind: te.Kind, Mode: fs.FileMode(te.Mode), Size: te.Size, Hash: te.Hash}
}

// cleanLookup accepts "" (the root) or a canonical relative path.
func cleanLookup(p string) (string, error) {
	if p == "" || p == "." {
		return "", nil
	}
	if err := checkRel(p); err != nil {
		return "", err
	}
	return p, nil
}
