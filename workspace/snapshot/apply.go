package snapshot

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/sessiond/sessiond/store"
)

// Change says what one path must become: Target, or absent when Target is
// the zero Entry. It is small and JSON-friendly so that the session layer
// can journal a list of them before applying it.
type Change struct {
	Path string `json:"path"`
	// Before is what the path held when the change was planned. ApplyGuarded
	// writes the path only while it still holds Before (or already holds
	// Target): anything else was written by someone else since, and is
	// kept. Apply ignores it. Journals older than the field lack it.
	Before *Entry `json:"before,omitempty"`
	Target Entry  `json:"target"`
}

// ApplyReport tells what an Apply did. Paths already as wanted are in none
// of the lists, so a re-run reports only what was left to do.
type ApplyReport struct {
	// Written lists files and links written and directories created.
	Written []string `json:"written,omitempty"`
	// Deleted lists files, links and directories removed.
	Deleted []string `json:"deleted,omitempty"`
	// Kept lists directories that were to be removed but still hold
	// entries outside the change list (ignored files, most likely).
	Kept []string `json:"kept,omitempty"`
	// Conflicts lists the paths ApplyGuarded left alone because they hold
	// neither their Before nor their Target, with the reason.
	Conflicts []PathIssue `json:"conflicts,omitempty"`
}

// PathIssue is one path a change list cannot or may not write, and why,
// in words for the person who has to act on it.
type PathIssue struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// UnsafeError refuses a change list before anything is written: some of
// its paths cannot be written safely (through a symlink, into .git or the
// data dir, below a file, over a directory holding other files). Each
// issue is a *PathError, so errors.As finds one and errors.Is(err,
// ErrEscape) holds.
type UnsafeError struct {
	Issues []*PathError
}

func (e *UnsafeError) Error() string {
	is := make([]PathIssue, len(e.Issues))
	for i, pe := range e.Issues {
		is[i] = PathIssue{Path: pe.Path, Reason: pe.Reason}
	}
	return fmt.Sprintf("%d path(s) cannot be written safely (this attempt wrote nothing): %s", len(is), GroupIssues(is))
}

// GroupIssues says what is wrong with each path in one line, naming the
// paths that share a reason together (the files of one symlinked
// directory, say), and at most five of them.
func GroupIssues(is []PathIssue) string {
	var reasons []string
	paths := map[string][]string{}
	for _, i := range is {
		if paths[i.Reason] == nil {
			reasons = append(reasons, i.Reason)
		}
		paths[i.Reason] = append(paths[i.Reason], i.Path)
	}
	var b strings.Builder
	for n, r := range reasons {
		if n > 0 {
			b.WriteString("; ")
		}
		ps := paths[r]
		if len(ps) > 5 {
			ps = append(ps[:5:5], fmt.Sprintf("and %d more", len(ps)-5))
		}
		fmt.Fprintf(&b, "%s: %s", strings.Join(ps, ", "), r)
	}
	return b.String()
}

// Unwrap gives errors.As and errors.Is each issue.
func (e *UnsafeError) Unwrap() []error {
	out := make([]error, len(e.Issues))
	for i, pe := range e.Issues {
		out[i] = pe
	}
	return out
}

// dirPerm is the mode of directories Apply creates (less the umask):
// snapshots do not record directory modes, as git does not.
const dirPerm = 0o755

// Apply makes each path under root what its Change says, and nothing
// else: files outside the list keep their contents and mtimes.
//
// Files are written to a temporary file in their directory and renamed
// over, with the recorded mode; symlinks are created as links (their
// target is never followed or written through); absent targets are
// deleted, directories only when empty; missing parent directories are
// created. Skipped files are never touched. Paths already as wanted are
// left alone, so Apply is idempotent: re-running a list that was half
// applied when the daemon died finishes it, which is what the session
// layer's journal relies on.
//
// Every path is checked before anything is written: a path that is
// absolute, has a ".." component, lies in .git or the data dir, goes
// through a symlink on disk (one the list does not itself replace by a
// directory) or below a file, or must replace a directory holding entries
// the list does not remove fails the whole Apply with an *UnsafeError
// listing every such path. All file contents must be stored.
func (e *Engine) Apply(ctx context.Context, root string, changes []Change) (ApplyReport, error) {
	return e.apply(ctx, root, changes, false)
}

// ApplyGuarded is Apply that never overwrites what someone else wrote: a
// path is changed only while it holds its Change's Before (or already
// holds its Target). Any other path, and the paths below it, are left
// as they are and listed in the report's Conflicts. A change without a
// Before is left unless it is already done. It is what finishing a
// journal needs: between planning and writing (a crash, a restart) a
// person may have edited some of the files.
func (e *Engine) ApplyGuarded(ctx context.Context, root string, changes []Change) (ApplyReport, error) {
	return e.apply(ctx, root, changes, true)
}

// CheckApply runs the checks Apply and ApplyGuarded run before writing,
// and writes nothing: it returns every path that cannot be written
// safely, with the reason, so a caller can refuse before it commits to
// the list. An error is a bad list or an unreadable store or workspace.
func (e *Engine) CheckApply(ctx context.Context, root string, changes []Change) ([]PathIssue, error) {
	canon, err := e.canonicalRoot(root)
	if err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(canon)
	if err != nil {
		return nil, fmt.Errorf("open workspace %s: %w", canon, err)
	}
	defer r.Close()
	a := &applier{e: e, ctx: ctx, root: r, rootPath: canon, targets: make(map[string]Entry, len(changes))}
	bad, err := a.check(changes)
	if err != nil {
		return nil, fmt.Errorf("check changes to %s: %w", canon, err)
	}
	out := make([]PathIssue, len(bad))
	for i, pe := range bad {
		out[i] = PathIssue{Path: pe.Path, Reason: pe.Reason}
	}
	return out, nil
}

func (e *Engine) apply(ctx context.Context, root string, changes []Change, guard bool) (ApplyReport, error) {
	canon, err := e.canonicalRoot(root)
	if err != nil {
		return ApplyReport{}, err
	}
	unlock, err := e.lockRoot(ctx, canon)
	if err != nil {
		return ApplyReport{}, err
	}
	defer unlock()
	r, err := os.OpenRoot(canon)
	if err != nil {
		return ApplyReport{}, fmt.Errorf("open workspace %s: %w", canon, err)
	}
	defer r.Close()
	a := &applier{e: e, ctx: ctx, root: r, rootPath: canon, targets: make(map[string]Entry, len(changes)), guard: guard}
	bad, err := a.check(changes)
	if err != nil {
		return ApplyReport{}, fmt.Errorf("apply to %s: %w", canon, err)
	}
	if len(bad) > 0 {
		return ApplyReport{}, fmt.Errorf("apply to %s: %w", canon, &UnsafeError{Issues: bad})
	}
	if err := a.run(changes); err != nil {
		return a.report, fmt.Errorf("apply to %s: %w (the report lists what was done; re-running the same list finishes it)", canon, err)
	}
	return a.report, nil
}

type applier struct {
	e        *Engine
	ctx      context.Context
	root     *os.Root // refuses any escape from the workspace, even racing a swap
	rootPath string
	targets  map[string]Entry
	report   ApplyReport
	// guard: change only paths that hold their Before (ApplyGuarded).
	guard bool
	// left holds the paths guard left alone: their descendants are too.
	left map[string]bool
}

// check validates the whole list before anything is touched, so a bad
// journal fails without leaving a half-applied workspace behind. It
// returns every path that cannot be written safely; an error is a list
// that is wrong in itself, or a failure to read.
func (a *applier) check(changes []Change) ([]*PathError, error) {
	var bad []*PathError
	refuse := func(err error) error {
		var pe *PathError
		if errors.As(err, &pe) {
			bad = append(bad, pe)
			return nil
		}
		return err
	}
	excl := a.e.excludedRels(a.rootPath)
	for _, c := range changes {
		if err := checkRel(c.Path); err != nil {
			if err := refuse(err); err != nil {
				return nil, err
			}
			continue
		}
		inData := false
		for x := range excl {
			inData = inData || within(x, c.Path)
		}
		if inData {
			bad = append(bad, &PathError{c.Path, "it lies in sessiond's data dir, which snapshots never hold; nothing there is the session's to write"})
			continue
		}
		if _, dup := a.targets[c.Path]; dup {
			return nil, fmt.Errorf("path %q is listed twice: pass one change per path", c.Path)
		}
		t := c.Target
		switch t.Kind {
		case store.EntryNone, store.EntryDir, store.EntrySkipped:
		case store.EntryFile, store.EntrySymlink:
			if t.Hash.IsZero() {
				return nil, fmt.Errorf("change of %q: a %s target needs its content hash", c.Path, t.Kind)
			}
		default:
			return nil, fmt.Errorf("change of %q: invalid target kind %d", c.Path, t.Kind)
		}
		if t.Mode&^fs.ModePerm != 0 {
			return nil, fmt.Errorf("change of %q: mode %v has more than permission bits", c.Path, t.Mode)
		}
		a.targets[c.Path] = t
	}
	for _, c := range changes {
		if _, ok := a.targets[c.Path]; !ok {
			continue // refused above
		}
		present := c.Target.Kind == store.EntryFile || c.Target.Kind == store.EntrySymlink || c.Target.Kind == store.EntryDir
		if present {
			for anc := range ancestors(c.Path) {
				if t, ok := a.targets[anc]; ok && t.Kind != store.EntryDir {
					return nil, fmt.Errorf("change of %q needs its parent %q to be a directory, but the list makes that a %s: the list is inconsistent", c.Path, anc, t.Kind)
				}
			}
		}
		if _, err := a.reachable(c.Path, present); err != nil {
			if err := refuse(err); err != nil {
				return nil, err
			}
			continue
		}
		if k := c.Target.Kind; k == store.EntryFile || k == store.EntrySymlink {
			if err := a.replaceable(c.Path); err != nil {
				if err := refuse(err); err != nil {
					return nil, err
				}
			}
		}
	}
	// Every content must be there before the first write.
	err := a.e.db.View(a.ctx, func(txn *store.Txn) error {
		for _, c := range changes {
			if k := c.Target.Kind; k != store.EntryFile && k != store.EntrySymlink {
				continue
			}
			ok, err := store.HasBlob(txn, c.Target.Hash)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("content %s of %q is not in the store (collected, or the list is from another data dir): %w", c.Target.Hash, c.Path, store.ErrNotFound)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return bad, nil
}

// ancestors yields the proper ancestors of a relative path, outermost first.
func ancestors(p string) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for i := 0; i < len(p); i++ {
			if p[i] == '/' && !yield(p[:i]) {
				return
			}
		}
	}
}

// reachable reports whether p's parent directories exist on disk as real
// directories, so that p can be looked at. It refuses a path that goes
// through a symlink (or a file) the list does not replace: writing or
// deleting through it would act on something the snapshot never held,
// possibly outside the workspace. wantPresent tells a path to be written
// (missing parents will be created) from one to be deleted (missing
// parents mean it is gone already).
func (a *applier) reachable(p string, wantPresent bool) (bool, error) {
	for anc := range ancestors(p) {
		fi, err := a.root.Lstat(anc)
		if err != nil {
			if gone(err) {
				return false, nil
			}
			return false, fmt.Errorf("stat %s: %w", anc, err)
		}
		if fi.IsDir() {
			continue
		}
		if t, ok := a.targets[anc]; ok {
			// The list replaces it: with a directory, p's parents are
			// created after that; with anything else, p goes with it.
			if t.Kind == store.EntryDir || !wantPresent {
				return false, nil
			}
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return false, &PathError{p, fmt.Sprintf("%q is a symlink now, and writing through it could reach outside the workspace; put a real directory back at %q (or move the link away), then try again", anc, anc)}
		}
		if !wantPresent {
			return false, nil // below a file: nothing to delete
		}
		return false, &PathError{p, fmt.Sprintf("its parent %q is now a %s, not a directory; move it away, then try again", anc, kindOnDisk(fi))}
	}
	return true, nil
}

// replaceable refuses a file or link target where a directory stands that
// still holds entries the list does not remove: the directory could not
// be replaced, and the apply would stop halfway.
func (a *applier) replaceable(p string) error {
	fi, err := a.root.Lstat(p)
	if err != nil || !fi.IsDir() {
		return nil // absent, or not a directory: replaceable
	}
	if t, ok := a.targets[p]; ok && t.Kind == store.EntryDir {
		return nil
	}
	var stuck func(dir string) (string, error)
	stuck = func(dir string) (string, error) {
		f, err := a.root.Open(dir)
		if err != nil {
			return "", fmt.Errorf("read directory %s: %w", dir, err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("read directory %s: %w", dir, err)
		}
		slices.Sort(names)
		for _, n := range names {
			q := joinRel(dir, n)
			if t, ok := a.targets[q]; !ok || t.Exists() {
				return q, nil
			}
			if fi, err := a.root.Lstat(q); err == nil && fi.IsDir() {
				if s, err := stuck(q); s != "" || err != nil {
					return s, err
				}
			}
		}
		return "", nil
	}
	s, err := stuck(p)
	if err != nil {
		return err
	}
	if s != "" {
		return &PathError{p, fmt.Sprintf("it is now a directory, and %q in it is not the session's to remove; move the directory away, then try again", s)}
	}
	return nil
}

func kindOnDisk(fi fs.FileInfo) string {
	switch {
	case fi.Mode().IsRegular():
		return "file"
	case fi.Mode()&fs.ModeSymlink != 0:
		return "symlink"
	case fi.IsDir():
		return "directory"
	}
	return "special file"
}

func (a *applier) run(changes []Change) error {
	for _, c := range order(changes) {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		if a.guard {
			ok, err := a.stillPlanned(c)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		var err error
		if c.Target.Exists() {
			err = a.put(c.Path, c.Target)
		} else {
			err = a.remove(c.Path)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// order sorts changes the way they are carried out: deletions deepest
// first, so directories are emptied before their turn; then creations
// outermost first, so parents exist before their children.
func order(changes []Change) []Change {
	var dels, puts []Change
	for _, c := range changes {
		if c.Target.Exists() {
			puts = append(puts, c)
		} else {
			dels = append(dels, c)
		}
	}
	slices.SortFunc(dels, func(x, y Change) int {
		return cmp.Or(depth(y.Path)-depth(x.Path), strings.Compare(x.Path, y.Path))
	})
	slices.SortFunc(puts, func(x, y Change) int {
		return cmp.Or(depth(x.Path)-depth(y.Path), strings.Compare(x.Path, y.Path))
	})
	return append(dels, puts...)
}

// remove deletes p if it is there; a directory only when empty.
func (a *applier) remove(p string) error {
	ok, err := a.reachable(p, false)
	if err != nil || !ok {
		return err
	}
	fi, err := a.root.Lstat(p)
	if err != nil {
		if gone(err) {
			return nil
		}
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if err := a.root.Remove(p); err != nil {
		if fi.IsDir() && (errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)) {
			a.report.Kept = append(a.report.Kept, p)
			return nil
		}
		if gone(err) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", p, err)
	}
	a.report.Deleted = append(a.report.Deleted, p)
	return nil
}

// put makes p the target entry, unless it is already.
func (a *applier) put(p string, t Entry) error {
	if t.Kind == store.EntrySkipped {
		return nil // never stored, so never restored
	}
	if _, err := a.reachable(p, true); err != nil {
		return err
	}
	if err := a.mkdirParents(p); err != nil {
		return err
	}
	fi, err := a.root.Lstat(p)
	if err != nil && !gone(err) {
		return fmt.Errorf("stat %s: %w", p, err)
	}
	exists := err == nil
	switch t.Kind {
	case store.EntryDir:
		if exists && fi.IsDir() {
			return nil
		}
		if exists {
			if err := a.root.Remove(p); err != nil {
				return fmt.Errorf("replace %s with a directory: %w", p, err)
			}
		}
		if err := a.root.Mkdir(p, dirPerm); err != nil {
			return fmt.Errorf("create directory %s: %w", p, err)
		}
	case store.EntryFile:
		data, err := a.blob(p, t.Hash)
		if err != nil {
			return err
		}
		if exists && fi.Mode().IsRegular() {
			same, err := a.sameContent(p, fi, data)
			if err != nil {
				return err
			}
			if same && fi.Mode().Perm() == t.Mode {
				return a.dropTemp(p)
			}
			if same {
				// Only the mode differs: change it in place, keeping the mtime.
				if err := a.chmod(p, t.Mode); err != nil {
					return err
				}
				a.report.Written = append(a.report.Written, p)
				return nil
			}
		}
		if exists && fi.IsDir() {
			if err := a.removeEmptyDir(p); err != nil {
				return err
			}
		}
		if err := a.writeFile(p, data, t.Mode); err != nil {
			return err
		}
	case store.EntrySymlink:
		target, err := a.blob(p, t.Hash)
		if err != nil {
			return err
		}
		if exists && fi.Mode()&fs.ModeSymlink != 0 {
			if cur, err := a.root.Readlink(p); err == nil && cur == string(target) {
				return a.dropTemp(p)
			}
		}
		if exists && fi.IsDir() {
			if err := a.removeEmptyDir(p); err != nil {
				return err
			}
		}
		tmp := tempName(p)
		if err := a.root.Remove(tmp); err != nil && !gone(err) {
			return fmt.Errorf("remove leftover %s: %w", tmp, err)
		}
		if err := a.root.Symlink(string(target), tmp); err != nil {
			return fmt.Errorf("create link %s: %w", p, err)
		}
		if err := a.root.Rename(tmp, p); err != nil {
			a.root.Remove(tmp)
			return fmt.Errorf("create link %s: %w", p, err)
		}
	}
	a.report.Written = append(a.report.Written, p)
	return nil
}

// mkdirParents creates p's missing parent directories one by one, never
// through a symlink (reachable has checked; Lstat again as we go).
func (a *applier) mkdirParents(p string) error {
	for anc := range ancestors(p) {
		fi, err := a.root.Lstat(anc)
		if err == nil {
			if fi.IsDir() {
				continue
			}
			return &PathError{p, fmt.Sprintf("its parent %q is a %s, not a directory", anc, kindOnDisk(fi))}
		}
		if !gone(err) {
			return fmt.Errorf("stat %s: %w", anc, err)
		}
		if err := a.root.Mkdir(anc, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create directory %s: %w", anc, err)
		}
		a.report.Written = append(a.report.Written, anc)
	}
	return nil
}

// chmod sets the mode of the regular file p through a descriptor opened
// without following a symlink.
func (a *applier) chmod(p string, mode fs.FileMode) error {
	f, err := a.root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("change mode of %s: %w", p, err)
	}
	defer f.Close()
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("change mode of %s: %w", p, err)
	}
	return nil
}

// removeEmptyDir clears the way for a file or link where a directory is.
func (a *applier) removeEmptyDir(p string) error {
	if err := a.root.Remove(p); err != nil {
		if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("cannot replace directory %s: it holds entries the change list does not remove (ignored files?)", p)
		}
		return fmt.Errorf("replace directory %s: %w", p, err)
	}
	return nil
}

// blob reads a content and checks it against its hash: a damaged store
// must not write wrong bytes into somebody's workspace.
func (a *applier) blob(p string, h store.Hash) ([]byte, error) {
	var data []byte
	err := a.e.db.View(a.ctx, func(txn *store.Txn) error {
		var err error
		data, err = a.e.objs.GetBlob(txn, h)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read content of %s: %w", p, err)
	}
	if store.BlobHash(data) != h {
		return nil, fmt.Errorf("content %s of %s does not match its hash: the store is damaged", h, p)
	}
	return data, nil
}

// sameContent reports whether the regular file p holds data.
func (a *applier) sameContent(p string, fi fs.FileInfo, data []byte) (bool, error) {
	if fi.Size() != int64(len(data)) {
		return false, nil
	}
	f, err := a.root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false, nil // unreadable or changed kind: rewrite it
	}
	defer f.Close()
	cur, err := io.ReadAll(io.LimitReader(f, int64(len(data))+1))
	if err != nil {
		return false, nil
	}
	return bytes.Equal(cur, data), nil
}

// writeFile writes data to a temporary file next to p and renames it over
// p, so a reader never sees half a file and a crash leaves either the old
// or the new content. The temporary name is derived from p, so a re-run
// after a crash replaces a leftover instead of adding another.
func (a *applier) writeFile(p string, data []byte, mode fs.FileMode) error {
	tmp := tempName(p)
	if err := a.root.Remove(tmp); err != nil && !gone(err) {
		return fmt.Errorf("remove leftover %s: %w", tmp, err)
	}
	f, err := a.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	_, werr := f.Write(data)
	// Through the descriptor: the umask does not apply, and no other
	// file can be swapped in under the name.
	cerr := f.Chmod(mode)
	if err := cmp.Or(werr, cerr, f.Close()); err != nil {
		a.root.Remove(tmp)
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := a.root.Rename(tmp, p); err != nil {
		a.root.Remove(tmp)
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// dropTemp removes a temporary file of p left by an earlier run that
// died between writing it and renaming it: the re-run found p done by
// other means, so nothing else would clear it.
func (a *applier) dropTemp(p string) error {
	if err := a.root.Remove(tempName(p)); err != nil && !gone(err) {
		return fmt.Errorf("remove leftover %s: %w", tempName(p), err)
	}
	return nil
}

// tempName is the temporary file for p: in p's directory (a rename across
// directories could cross filesystems), hidden, of bounded length
// whatever the length of p's name.
func tempName(p string) string {
	dir, name := splitRel(p)
	sum := sha256.Sum256([]byte(name))
	return filepath.ToSlash(joinRel(dir, ".sessiond-"+hex.EncodeToString(sum[:8])+".tmp"))
}

// stillPlanned reports whether c may be carried out: the path holds what
// it held when c was planned, or is already done. Otherwise it records
// the path as left, with the reason, and so are the paths below it.
func (a *applier) stillPlanned(c Change) (bool, error) {
	for anc := range ancestors(c.Path) {
		if a.left[anc] {
			return false, a.leave(c.Path, fmt.Sprintf("its parent %q was left as it is, so it is left too", anc))
		}
	}
	cur, err := a.onDisk(c.Path, c.Before, &c.Target)
	if err != nil {
		return false, err
	}
	switch {
	case sameEntry(cur, c.Target):
		return true, nil // done already; put or remove finds nothing to do
	case c.Before == nil:
		return false, a.leave(c.Path, "the journal does not record what it held before (an older sessiond wrote it), and it is not yet what it was to become, so it is left as it is")
	case sameEntry(cur, *c.Before):
		return true, nil
	}
	return false, a.leave(c.Path, fmt.Sprintf("it was changed after this was planned: it now holds %s, neither what it held then nor its target, so it is left as it is", describe(cur)))
}

func (a *applier) leave(p, reason string) error {
	if a.left == nil {
		a.left = map[string]bool{}
	}
	a.left[p] = true
	a.report.Conflicts = append(a.report.Conflicts, PathIssue{Path: p, Reason: reason})
	return nil
}

func describe(e Entry) string {
	switch e.Kind {
	case store.EntryNone:
		return "nothing (it was deleted)"
	case store.EntryDir:
		return "a directory"
	case store.EntrySymlink:
		return "a symlink"
	case store.EntryFile:
		return "other content or permissions"
	}
	return "a special or oversized file"
}

// sameEntry compares what two entries hold; directories and absent paths
// match on kind alone (a directory's content is its files, each checked
// on its own).
func sameEntry(x, y Entry) bool {
	if x.Kind != y.Kind {
		return false
	}
	if x.Kind == store.EntryDir || x.Kind == store.EntryNone {
		return true
	}
	return x.Hash == y.Hash && x.Mode.Perm() == y.Mode.Perm()
}

// OnDisk returns what each path under root is now, as an Entry with the
// content hash a capture would record, without storing anything. A path
// below a symlink or a file is absent; a special file, or one over the
// size cap, is reported as skipped.
func (e *Engine) OnDisk(ctx context.Context, root string, paths []string) ([]Entry, error) {
	canon, err := e.canonicalRoot(root)
	if err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(canon)
	if err != nil {
		return nil, fmt.Errorf("open workspace %s: %w", canon, err)
	}
	defer r.Close()
	a := &applier{e: e, ctx: ctx, root: r, rootPath: canon}
	out := make([]Entry, len(paths))
	for i, p := range paths {
		if err := checkRel(p); err != nil {
			return nil, err
		}
		if out[i], err = a.onDisk(p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// onDisk returns what p is now. A file is hashed only when its size is
// that of one of the candidates (the only entries it is compared with);
// otherwise its hash is left zero, which matches no stored content.
func (a *applier) onDisk(p string, candidates ...*Entry) (Entry, error) {
	for anc := range ancestors(p) {
		fi, err := a.root.Lstat(anc)
		if err != nil {
			if gone(err) {
				return Entry{}, nil
			}
			return Entry{}, fmt.Errorf("stat %s: %w", anc, err)
		}
		if !fi.IsDir() {
			return Entry{}, nil // below a file or a link: nothing there
		}
	}
	fi, err := a.root.Lstat(p)
	if err != nil {
		if gone(err) {
			return Entry{}, nil
		}
		return Entry{}, fmt.Errorf("stat %s: %w", p, err)
	}
	switch m := fi.Mode(); {
	case m.IsDir():
		return Entry{Kind: store.EntryDir}, nil
	case m&fs.ModeSymlink != 0:
		target, err := a.root.Readlink(p)
		if err != nil {
			return Entry{}, fmt.Errorf("read link %s: %w", p, err)
		}
		return Entry{Kind: store.EntrySymlink, Size: int64(len(target)), Hash: store.BlobHash([]byte(target))}, nil
	case m.IsRegular() && fi.Size() <= a.e.maxSize:
		e := Entry{Kind: store.EntryFile, Mode: m.Perm(), Size: fi.Size()}
		sized := len(candidates) == 0
		for _, c := range candidates {
			sized = sized || c != nil && c.Kind == store.EntryFile && c.Size == fi.Size()
		}
		if !sized {
			return e, nil
		}
		f, err := a.root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if err != nil {
			return Entry{}, fmt.Errorf("read %s: %w", p, err)
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, a.e.maxSize+1))
		if err != nil {
			return Entry{}, fmt.Errorf("read %s: %w", p, err)
		}
		e.Size, e.Hash = int64(len(data)), store.BlobHash(data)
		return e, nil
	}
	return Entry{Kind: store.EntrySkipped, Mode: fi.Mode().Perm(), Size: fi.Size()}, nil
}
