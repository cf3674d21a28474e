package tools

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sessiond/sessiond/workspace/confine"
)

// gitDir is the repository metadata directory: never written, never
// read, never walked.
const gitDir = confine.GitDir

// workspace is an Env opened for one call: the shared resolver of
// workspace/confine, which every path a tool takes goes through.
type workspace struct {
	*confine.Root
	root *os.Root // the os.Root every access goes through
}

// open checks env and opens its root; the caller closes it.
func (e *Env) open() (*workspace, error) {
	if e == nil || e.Root == "" {
		return nil, errors.New("tools: no workspace root set")
	}
	r, err := confine.Open(e.Root, e.Dir)
	if err != nil {
		return nil, fmt.Errorf("tools: %w", err)
	}
	return &workspace{Root: r, root: r.OS()}, nil
}

// dirAbs is the session's directory as an absolute path.
func (w *workspace) dirAbs() string { return w.DirAbs() }

// check resolves a path from the model fully (see confine.Root.Check):
// rel is the path as given, relative to the root, for display; real is
// where its links lead, the file to use. It refuses a path outside the
// workspace, through a link that leads out, or into .git, for reads as
// for writes: .git/config may hold credentials the model must not see.
func (w *workspace) check(p, verb string, a confine.Access) (rel, real string, err error) {
	rel, real, err = w.Check(p, verb, a)
	var ce *confine.Error
	if err != nil && !errors.As(err, &ce) {
		return "", "", fsError(verb, p, err)
	}
	return rel, real, err
}

// display names rel (relative to the root) for the model: relative to the
// session's directory, slash-separated, so that it can be passed back to
// any tool.
func (w *workspace) display(rel string) string {
	d, err := filepath.Rel(w.Dir(), rel)
	if err != nil {
		d = rel
	}
	return filepath.ToSlash(d)
}

// inGit says a relative path has a .git component.
func inGit(rel string) bool { return confine.InGit(rel) }

// isEscape says err is a link, or os.Root, refusing a path that leads out
// of the root. os keeps its own error unexported, hence the text.
func isEscape(err error) bool {
	return err != nil && (errors.Is(err, confine.ErrEscapes) || strings.Contains(err.Error(), "path escapes from parent"))
}

// fsError turns a file system error into a message for the model, naming
// the path as the model knows it.
func fsError(op, shown string, err error) error {
	switch {
	case isEscape(err):
		return fmt.Errorf("cannot %s %s: it is, or goes through, a symbolic link that leads outside the workspace (or is absolute); the tools only use files inside the workspace", op, shown)
	case errors.Is(err, confine.ErrGit):
		return fmt.Errorf("cannot %s %s: it leads into .git/, which the tools never use", op, shown)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cannot %s %s: it does not exist", op, shown)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("cannot %s %s: permission denied", op, shown)
	case errors.Is(err, syscall.ELOOP):
		return fmt.Errorf("cannot %s %s: too many levels of symbolic links", op, shown)
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("cannot %s %s: part of the path is a file, not a directory", op, shown)
	case errors.Is(err, syscall.EISDIR):
		return fmt.Errorf("cannot %s %s: it is a directory", op, shown)
	}
	return fmt.Errorf("cannot %s %s: %v", op, shown, plainErr(err))
}

// plainErr drops the op and path a *PathError adds, since the messages
// here name the path as the model gave it.
func plainErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// binarySample is how much of a file decides whether it is text.
const binarySample = 8 << 10

// isBinary says data (a file's start) is not text: it holds a NUL byte, or
// over 30% of its bytes are control characters that text does not use.
func isBinary(data []byte) bool {
	data = data[:min(len(data), binarySample)]
	if bytes.IndexByte(data, 0) >= 0 {
		return true
	}
	odd := 0
	for _, b := range data {
		if b < 0x20 && b != '\t' && b != '\n' && b != '\r' && b != '\f' && b != '\v' && b != '\b' && b != 0x1b {
			odd++
		}
	}
	return len(data) > 0 && odd*10 > len(data)*3
}

// treeFS is the workspace seen from one of its directories, for walks:
// every name resolves as check does (confine.FS), a link into .git or out
// of the workspace looks like a file that does not exist, and .git is
// left out of listings.
type treeFS struct {
	cfs  *confine.FS
	fsys fs.FS  // the os.Root's FS, for reading a link's target
	base string // slash-separated, relative to the root
}

func (w *workspace) tree(rel string) treeFS {
	cfs := w.FS(rel)
	return treeFS{cfs: cfs, fsys: w.root.FS(), base: cfs.Base()}
}

// hide makes a refusal look like a missing file to a walker.
func hide(name string, err error) error {
	if errors.Is(err, confine.ErrGit) || errors.Is(err, confine.ErrEscapes) {
		return &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return err
}

func (t treeFS) Open(name string) (fs.File, error) {
	f, err := t.cfs.Open(name)
	return f, hide(name, err)
}

func (t treeFS) Stat(name string) (fs.FileInfo, error) {
	fi, err := t.cfs.Stat(name)
	return fi, hide(name, err)
}

func (t treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	ents, err := t.cfs.ReadDir(name)
	return ents, hide(name, err)
}

func (t treeFS) ReadFile(name string) ([]byte, error) {
	b, err := t.cfs.ReadFile(name)
	return b, hide(name, err)
}

// countLines counts the lines of s, a last line without a newline
// included.
func countLines(s string) int {
	n := strings.Count(s, "\n")
	if s != "" && !strings.HasSuffix(s, "\n") {
		n++
	}
	return n
}

// cutLine cuts a line to max characters, saying so.
func cutLine(s string, max int) string {
	if len(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max {
			return s[:i] + fmt.Sprintf("… (line cut at %d characters)", max)
		}
		n++
	}
	return s
}
