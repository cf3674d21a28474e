package tools

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// gitDir is the repository metadata directory: never written, never walked.
const gitDir = ".git"

// maxLinks bounds the symbolic links followed in one path, as the kernel
// does.
const maxLinks = 40

// errEscapes says a path leaves the workspace through a symbolic link.
var errEscapes = errors.New("path escapes from parent")

// workspace is an Env opened for one call.
type workspace struct {
	root     *os.Root
	rootPath string // Env.Root, cleaned
	realRoot string // rootPath with its links evaluated ("" if that failed)
	dirRel   string // Env.Dir relative to rootPath; "." for the root
}

// open checks env and opens its root; the caller closes it.
func (e *Env) open() (*workspace, error) {
	if e == nil || e.Root == "" {
		return nil, errors.New("tools: no workspace root set")
	}
	if !filepath.IsAbs(e.Root) {
		return nil, fmt.Errorf("tools: workspace root %q is not an absolute path", e.Root)
	}
	w := &workspace{rootPath: filepath.Clean(e.Root), dirRel: "."}
	if real, err := filepath.EvalSymlinks(w.rootPath); err == nil && real != w.rootPath {
		w.realRoot = real
	}
	switch dir := e.Dir; {
	case dir == "":
	case filepath.IsAbs(dir):
		rel, ok := w.within(filepath.Clean(dir))
		if !ok {
			return nil, fmt.Errorf("tools: session directory %s is outside the workspace %s", dir, w.rootPath)
		}
		w.dirRel = rel
	default:
		rel := filepath.Clean(dir)
		if !isLocal(rel) {
			return nil, fmt.Errorf("tools: session directory %q is outside the workspace %s", dir, w.rootPath)
		}
		w.dirRel = rel
	}
	root, err := os.OpenRoot(w.rootPath)
	if err != nil {
		return nil, fmt.Errorf("tools: cannot open the workspace %s: %v", w.rootPath, plainErr(err))
	}
	w.root = root
	return w, nil
}

func (w *workspace) Close() { w.root.Close() }

// dirAbs is the session's directory as an absolute path.
func (w *workspace) dirAbs() string { return filepath.Join(w.rootPath, w.dirRel) }

// isLocal says rel (clean, relative) stays inside the directory it is
// relative to.
func isLocal(rel string) bool { return rel == "." || filepath.IsLocal(rel) }

// within returns the path of abs (clean, absolute) relative to the root,
// if it is inside it, under the root's name as given or its real one.
func (w *workspace) within(abs string) (string, bool) {
	for _, base := range []string{w.rootPath, w.realRoot} {
		if base == "" {
			continue
		}
		if rel, err := filepath.Rel(base, abs); err == nil && isLocal(rel) {
			return rel, true
		}
	}
	return "", false
}

// resolve turns a path from the model into a clean path relative to the
// root ("." for the root itself), refusing one that leaves the workspace.
// Links are not looked at here: os.Root refuses those that lead out.
func (w *workspace) resolve(p string) (string, error) {
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path %q contains a NUL byte", p)
	}
	if filepath.IsAbs(p) {
		rel, ok := w.within(filepath.Clean(p))
		if !ok {
			return "", fmt.Errorf("%s is outside the workspace %s; use a path inside it (relative paths start at %s)", p, w.rootPath, w.dirAbs())
		}
		return rel, nil
	}
	rel := filepath.Join(w.dirRel, p)
	if !isLocal(rel) {
		return "", fmt.Errorf("%s is outside the workspace: it climbs above the workspace root %s with \"..\"; use a path inside it (relative paths start at %s)", p, w.rootPath, w.dirAbs())
	}
	return rel, nil
}

// display names rel (relative to the root) for the model: relative to the
// session's directory, slash-separated, so that it can be passed back to
// any tool.
func (w *workspace) display(rel string) string {
	d, err := filepath.Rel(w.dirRel, rel)
	if err != nil {
		d = rel
	}
	return filepath.ToSlash(d)
}

// writable checks that rel may be written: not inside .git, neither as
// given nor where its links lead. It returns the path links lead to, which
// is the file a write changes.
func (w *workspace) writable(rel, shown string) (string, error) {
	if inGit(rel) {
		return "", fmt.Errorf("cannot write %s: it is inside %s, the repository's metadata, which the tools never change", shown, gitDir)
	}
	real, err := w.evalLinks(rel)
	if err != nil {
		return "", fsError("write", shown, err)
	}
	if inGit(real) {
		return "", fmt.Errorf("cannot write %s: it leads through a symbolic link into %s (%s), the repository's metadata, which the tools never change", shown, gitDir, w.display(real))
	}
	return real, nil
}

// inGit says a relative path has a .git component.
func inGit(rel string) bool {
	for _, c := range strings.Split(filepath.ToSlash(rel), "/") {
		if c == gitDir {
			return true
		}
	}
	return false
}

// evalLinks follows the symbolic links in rel inside the root and returns
// the path they lead to, relative to the root. Components that do not
// exist yet are kept as they are. A link that leads out, or is absolute,
// is errEscapes.
func (w *workspace) evalLinks(rel string) (string, error) {
	todo := strings.Split(filepath.ToSlash(rel), "/")
	var done []string
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", &fs.PathError{Op: "resolve", Path: rel, Err: errEscapes}
			}
			done = done[:len(done)-1]
			continue
		}
		cur := filepath.Join(append(done, name)...)
		fi, err := w.root.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			rest := filepath.Join(append(append(done, name), todo...)...)
			if !isLocal(rest) {
				return "", &fs.PathError{Op: "resolve", Path: rel, Err: errEscapes}
			}
			return rest, nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, name)
			continue
		}
		if links++; links > maxLinks {
			return "", &fs.PathError{Op: "resolve", Path: rel, Err: syscall.ELOOP}
		}
		target, err := w.root.Readlink(cur)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			return "", &fs.PathError{Op: "resolve", Path: rel, Err: errEscapes}
		}
		todo = append(strings.Split(filepath.ToSlash(target), "/"), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return filepath.Join(done...), nil
}

// isEscape says err is os.Root refusing a path that leads out of the root.
// os keeps its error unexported, hence the text.
func isEscape(err error) bool {
	return err != nil && (errors.Is(err, errEscapes) || strings.Contains(err.Error(), errEscapes.Error()))
}

// fsError turns a file system error into a message for the model, naming
// the path as the model knows it.
func fsError(op, shown string, err error) error {
	switch {
	case isEscape(err):
		return fmt.Errorf("cannot %s %s: it is, or goes through, a symbolic link that leads outside the workspace (or is absolute); the tools only use files inside the workspace", op, shown)
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

// treeFS is the workspace seen from one of its directories, for walks: it
// hides .git and leads nowhere outside the workspace (the os.Root behind it
// refuses that), though links may lead above base.
type treeFS struct {
	fsys fs.FS  // the os.Root's FS
	base string // slash-separated, relative to the root
}

func (w *workspace) tree(rel string) treeFS {
	return treeFS{fsys: w.root.FS(), base: filepath.ToSlash(rel)}
}

func (t treeFS) full(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if inGit(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return path.Join(t.base, name), nil
}

func (t treeFS) Open(name string) (fs.File, error) {
	p, err := t.full("open", name)
	if err != nil {
		return nil, err
	}
	return t.fsys.Open(p)
}

func (t treeFS) Stat(name string) (fs.FileInfo, error) {
	p, err := t.full("stat", name)
	if err != nil {
		return nil, err
	}
	return fs.Stat(t.fsys, p)
}

func (t treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := t.full("readdir", name)
	if err != nil {
		return nil, err
	}
	ents, err := fs.ReadDir(t.fsys, p)
	out := ents[:0]
	for _, e := range ents {
		if e.Name() != gitDir {
			out = append(out, e)
		}
	}
	return out, err
}

func (t treeFS) ReadFile(name string) ([]byte, error) {
	p, err := t.full("read", name)
	if err != nil {
		return nil, err
	}
	return fs.ReadFile(t.fsys, p)
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
