// Package workspace maps directories to the projects the daemon knows.
//
// A project is the unit sessions belong to: for a git repository it is the
// repository (identified by its root commit, so clones and worktrees share
// one project), otherwise a directory and everything below it.
package workspace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The values of Project.VCS.
const (
	VCSGit  = "git"
	VCSNone = "none"
)

// Project is a workspace root the daemon knows.
type Project struct {
	// ID is "prj_<ULID>", from store.DB.NewID.
	ID string `json:"id"`
	// Root is the canonical top-level directory first seen.
	Root string `json:"root"`
	// Worktrees are the other canonical top-level directories of the same
	// repository (clones, git worktrees), in the order they were seen.
	Worktrees []string `json:"worktrees,omitempty"`
	// VCS is VCSGit or VCSNone.
	VCS string `json:"vcs"`
	// Name is the base name of Root, for display.
	Name string      `json:"name"`
	Time ProjectTime `json:"time"`
}

// ProjectTime holds epoch milliseconds.
type ProjectTime struct {
	Created int64 `json:"created"`
	Updated int64 `json:"updated"`
}

// Errors a DirError wraps besides fs.ErrNotExist, so callers can tell the
// cases apart with errors.Is.
var (
	ErrNotAbsolute  = errors.New("not an absolute path")
	ErrNotDirectory = errors.New("not a directory")
)

// DirError reports a directory argument that cannot be a workspace. It is
// the caller's mistake, not the daemon's, so the RPC layer answers it with
// InvalidParams on field "directory".
type DirError struct {
	Dir string
	Err error
}

func (e *DirError) Error() string {
	const fix = "pass an existing absolute directory"
	switch {
	case e.Dir == "":
		return "directory is empty: " + fix
	case errors.Is(e.Err, ErrNotAbsolute):
		return fmt.Sprintf("directory %q is not absolute: pass an absolute path", e.Dir)
	case errors.Is(e.Err, fs.ErrNotExist):
		return fmt.Sprintf("directory %q does not exist: %s", e.Dir, fix)
	case errors.Is(e.Err, ErrNotDirectory):
		return fmt.Sprintf("directory %q is not a directory: %s", e.Dir, fix)
	default:
		return fmt.Sprintf("directory %q cannot be opened: %v: %s you can read", e.Dir, e.Err, fix)
	}
}

func (e *DirError) Unwrap() error { return e.Err }

// canonicalDir checks that dir is an existing absolute directory and returns
// it with symlinks resolved, so that every spelling of a directory maps to
// one key.
func canonicalDir(dir string) (string, error) {
	if dir == "" || !filepath.IsAbs(dir) {
		return "", &DirError{Dir: dir, Err: ErrNotAbsolute}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		// "/file/sub" fails with ENOTDIR: to the caller that is a
		// directory that does not exist.
		if errors.Is(err, syscall.ENOTDIR) {
			err = fmt.Errorf("%w: %w", fs.ErrNotExist, err)
		}
		return "", &DirError{Dir: dir, Err: err}
	}
	if !fi.IsDir() {
		return "", &DirError{Dir: dir, Err: ErrNotDirectory}
	}
	canon, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", &DirError{Dir: dir, Err: err}
	}
	return filepath.Clean(canon), nil
}

// Contains reports whether path is root or lies beneath it, comparing whole
// path components, so "/a/bc" is not inside "/a/b". Both are cleaned first;
// neither is resolved on disk.
func Contains(root, path string) bool {
	root, path = filepath.Clean(root), filepath.Clean(path)
	if root == path {
		return true
	}
	if !strings.HasSuffix(root, string(filepath.Separator)) {
		root += string(filepath.Separator)
	}
	return strings.HasPrefix(path, root)
}
