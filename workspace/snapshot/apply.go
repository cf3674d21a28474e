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
	Path   string `json:"path"`
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
// absolute, has a ".." component, lies in .git or the data dir, or goes
// through a symlink on disk (one the list does not itself replace by a
// directory) fails the whole Apply with a *PathError. All file contents
// must be stored.
func (e *Engine) Apply(ctx context.Context, root string, changes []Change) (ApplyReport, error) {
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
	a := &applier{e: e, ctx: ctx, root: r, rootPath: canon, targets: make(map[string]Entry, len(changes))}
	if err := a.check(changes); err != nil {
		return ApplyReport{}, fmt.Errorf("apply to %s: %w", canon, err)
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
}

// check validates the whole list before anything is touched, so a bad
// journal fails without leaving a half-applied workspace behind.
func (a *applier) check(changes []Change) error {
	excl := a.e.excludedRels(a.rootPath)
	for _, c := range changes {
		if err := checkRel(c.Path); err != nil {
			return err
		}
		for x := range excl {
			if within(x, c.Path) {
				return &PathError{c.Path, "it lies in the data dir, which snapshots never hold"}
			}
		}
		if _, dup := a.targets[c.Path]; dup {
			return fmt.Errorf("path %q is listed twice: pass one change per path", c.Path)
		}
		t := c.Target
		switch t.Kind {
		case store.EntryNone, store.EntryDir, store.EntrySkipped:
		case store.EntryFile, store.EntrySymlink:
			if t.Hash.IsZero() {
				return fmt.Errorf("change of %q: a %s target needs its content hash", c.Path, t.Kind)
			}
		default:
			return fmt.Errorf("change of %q: invalid target kind %d", c.Path, t.Kind)
		}
		if t.Mode&^fs.ModePerm != 0 {
			return fmt.Errorf("change of %q: mode %v has more than permission bits", c.Path, t.Mode)
		}
		a.targets[c.Path] = t
	}
	for _, c := range changes {
		present := c.Target.Kind == store.EntryFile || c.Target.Kind == store.EntrySymlink || c.Target.Kind == store.EntryDir
		if present {
			for anc := range ancestors(c.Path) {
				if t, ok := a.targets[anc]; ok && t.Kind != store.EntryDir {
					return fmt.Errorf("change of %q needs its parent %q to be a directory, but the list makes that a %s: the list is inconsistent", c.Path, anc, t.Kind)
				}
			}
		}
		if _, err := a.reachable(c.Path, present); err != nil {
			return err
		}
	}
	// Every content must be there before the first write.
	return a.e.db.View(a.ctx, func(txn *store.Txn) error {
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
			return false, &PathError{p, fmt.Sprintf("its parent %q is a symlink, and a path through a symlink can lead anywhere", anc)}
		}
		if !wantPresent {
			return false, nil // below a file: nothing to delete
		}
		return false, &PathError{p, fmt.Sprintf("its parent %q is a %s, not a directory", anc, kindOnDisk(fi))}
	}
	return true, nil
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
