// Package confine resolves the paths a client or the model names to files
// of one workspace. Every method and tool that takes a path goes through
// it, so one set of rules holds everywhere: a path must stay inside the
// workspace root however it is spelt ("..", absolute, symbolic links at
// any component), and it must not be inside a .git directory, neither as
// given nor where its links lead. Git runs what it finds in .git (hooks,
// core.fsmonitor), and .git/config may hold credentials, so sessiond
// neither writes nor reads there on anyone's behalf.
//
// Checks resolve links themselves, component by component, through an
// os.Root; the file is then used at the resolved path through the same
// os.Root, which by itself keeps every access inside the root. A link
// swapped in between the check and the use (by another process, at that
// moment) can still lead the access to .git, never out of the root.
package confine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// GitDir is the repository metadata directory.
const GitDir = ".git"

// maxLinks bounds the symbolic links followed in one path, as the kernel
// does.
const maxLinks = 40

// The reasons a path is refused; an *Error wraps one of them.
var (
	// ErrOutside: the path names a place outside the workspace ("..",
	// an absolute path elsewhere).
	ErrOutside = errors.New("outside the workspace")
	// ErrEscapes: a symbolic link on the way leads outside the
	// workspace, or is absolute.
	ErrEscapes = errors.New("a symbolic link leads outside the workspace")
	// ErrGit: the path, as given or where its links lead, is inside .git.
	ErrGit = errors.New("inside .git")
	// ErrInvalid: the path cannot be a file name (a NUL byte).
	ErrInvalid = errors.New("invalid path")
)

// Access says what a caller does with a path, for messages: sessiond
// refuses .git for both, for different reasons.
type Access int

const (
	Read Access = iota
	Write
)

// Error says why a path is refused, in words for a user or a model.
type Error struct {
	// Verb is what was refused ("write", "read", "attach", ...).
	Verb string
	// Path is the path as given.
	Path string
	// Real is where the path's links lead, relative to the root and
	// slash-separated, when that is what was refused.
	Real string
	// Err is one of ErrOutside, ErrEscapes, ErrGit, ErrInvalid, or
	// syscall.ELOOP.
	Err error

	access  Access
	root    string
	dir     string // where relative paths start (absolute)
	climbed bool   // ErrOutside through ".."
}

func (e *Error) Error() string {
	switch {
	case errors.Is(e.Err, ErrInvalid):
		return fmt.Sprintf("cannot %s %q: the path contains a NUL byte", e.Verb, e.Path)
	case errors.Is(e.Err, ErrOutside) && e.climbed:
		return fmt.Sprintf("cannot %s %s: it is outside the workspace: it climbs above the workspace root %s with \"..\"; use a path inside it (relative paths start at %s)", e.Verb, e.Path, e.root, e.dir)
	case errors.Is(e.Err, ErrOutside):
		return fmt.Sprintf("cannot %s %s: it is outside the workspace %s; use a path inside it (relative paths start at %s)", e.Verb, e.Path, e.root, e.dir)
	case errors.Is(e.Err, ErrEscapes):
		return fmt.Sprintf("cannot %s %s: it is, or goes through, a symbolic link that leads outside the workspace (or is absolute); sessiond only uses files inside the workspace", e.Verb, e.Path)
	case errors.Is(e.Err, ErrGit) && e.Real != "":
		return fmt.Sprintf("cannot %s %s: it resolves through a symbolic link into .git/ (%s), %s", e.Verb, e.Path, e.Real, gitReason(e.access))
	case errors.Is(e.Err, ErrGit):
		return fmt.Sprintf("cannot %s %s: it is inside .git/, %s", e.Verb, e.Path, gitReason(e.access))
	case errors.Is(e.Err, syscall.ELOOP):
		return fmt.Sprintf("cannot %s %s: too many levels of symbolic links", e.Verb, e.Path)
	}
	return fmt.Sprintf("cannot %s %s: %v", e.Verb, e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func gitReason(a Access) string {
	if a == Write {
		return "which sessiond never writes: git would run what it finds there (hooks, core.fsmonitor); name a file of the workspace instead"
	}
	return "which sessiond never reads: .git/config may hold credentials; name a file of the workspace instead"
}

// Root is a workspace root opened for checks and access. Its methods are
// safe for concurrent use; an FS it makes is not.
type Root struct {
	os       *os.Root
	path     string // clean absolute root, as given
	realPath string // path with its links evaluated, "" if the same
	dir      string // where relative paths start, relative to path; "."
}

// Open opens root (an absolute directory) for paths relative to dir: an
// absolute directory inside root, a path relative to root, or "" for the
// root itself. The caller closes it.
func Open(root, dir string) (*Root, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("workspace root %q is not an absolute path", root)
	}
	r := &Root{path: filepath.Clean(root), dir: "."}
	if real, err := filepath.EvalSymlinks(r.path); err == nil && real != r.path {
		r.realPath = real
	}
	switch {
	case dir == "":
	case filepath.IsAbs(dir):
		rel, ok := r.Within(filepath.Clean(dir))
		if !ok {
			return nil, fmt.Errorf("directory %s is outside the workspace %s", dir, r.path)
		}
		r.dir = rel
	default:
		rel := filepath.Clean(dir)
		if !isLocal(rel) {
			return nil, fmt.Errorf("directory %q is outside the workspace %s", dir, r.path)
		}
		r.dir = rel
	}
	osr, err := os.OpenRoot(r.path)
	if err != nil {
		return nil, fmt.Errorf("cannot open the workspace %s: %w", r.path, plain(err))
	}
	r.os = osr
	return r, nil
}

// Close releases the root.
func (r *Root) Close() error { return r.os.Close() }

// OS is the os.Root every access goes through.
func (r *Root) OS() *os.Root { return r.os }

// Path is the root's absolute path.
func (r *Root) Path() string { return r.path }

// Dir is where relative paths start, relative to the root ("." for the
// root).
func (r *Root) Dir() string { return r.dir }

// DirAbs is Dir as an absolute path.
func (r *Root) DirAbs() string { return filepath.Join(r.path, r.dir) }

// Within returns abs (clean, absolute) relative to the root, if it is
// inside it, under the root's name as given or its real one.
func (r *Root) Within(abs string) (string, bool) {
	for _, base := range []string{r.path, r.realPath} {
		if base == "" {
			continue
		}
		if rel, err := filepath.Rel(base, abs); err == nil && isLocal(rel) {
			return rel, true
		}
	}
	return "", false
}

// isLocal says rel (clean, relative) stays inside the directory it is
// relative to.
func isLocal(rel string) bool { return rel == "." || filepath.IsLocal(rel) }

// Rel turns p (relative to Dir, or absolute) into a clean path relative
// to the root ("." for the root itself), refusing one that is outside
// it. It does not look at links: Check does.
func (r *Root) Rel(p, verb string, a Access) (string, error) {
	fail := func(err error, climbed bool) error {
		return &Error{Verb: verb, Path: p, Err: err, access: a, root: r.path, dir: r.DirAbs(), climbed: climbed}
	}
	if strings.ContainsRune(p, 0) {
		return "", fail(ErrInvalid, false)
	}
	if filepath.IsAbs(p) {
		rel, ok := r.Within(filepath.Clean(p))
		if !ok {
			return "", fail(ErrOutside, false)
		}
		return rel, nil
	}
	rel := filepath.Join(r.dir, p)
	if !isLocal(rel) {
		return "", fail(ErrOutside, true)
	}
	return rel, nil
}

// Check resolves p fully: it returns p relative to the root as given
// (rel, for display and records) and with every link followed (real,
// the file an access reaches). It refuses p when it is outside the
// workspace, when a link on its way leads out (or is absolute), and when
// rel or real is inside .git. Components that do not exist yet are kept
// as they are, so a file to be created checks like an existing one.
// Errors other than an *Error come from the file system (permission
// denied, a file where a directory should be).
func (r *Root) Check(p, verb string, a Access) (rel, real string, err error) {
	if rel, err = r.Rel(p, verb, a); err != nil {
		return "", "", err
	}
	fail := func(err error, real string) error {
		return &Error{Verb: verb, Path: p, Real: real, Err: err, access: a, root: r.path, dir: r.DirAbs()}
	}
	if InGit(rel) {
		return "", "", fail(ErrGit, "")
	}
	real, err = r.resolve(nil, split(rel))
	switch {
	case errors.Is(err, ErrEscapes), errors.Is(err, syscall.ELOOP):
		return "", "", fail(errors.Unwrap(err), "")
	case err != nil:
		return "", "", err
	case InGit(real):
		return "", "", fail(ErrGit, filepath.ToSlash(real))
	}
	return rel, real, nil
}

// InGit says a relative path has a .git component.
func InGit(rel string) bool {
	for _, c := range split(rel) {
		if c == GitDir {
			return true
		}
	}
	return false
}

func split(rel string) []string { return strings.Split(filepath.ToSlash(rel), "/") }

// resolve follows the links of todo, below done (a path of the root with
// no links, as components), and returns the path they lead to, relative
// to the root. Components that do not exist are kept as they are. A link
// that leads out, or is absolute, is ErrEscapes; too many links ELOOP.
func (r *Root) resolve(done, todo []string) (string, error) {
	orig := filepath.Join(append(append([]string{}, done...), todo...)...)
	escapes := &fs.PathError{Op: "resolve", Path: orig, Err: ErrEscapes}
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", escapes
			}
			done = done[:len(done)-1]
			continue
		}
		cur := filepath.Join(append(done, name)...)
		fi, err := r.os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			rest := filepath.Join(append(append(done, name), todo...)...)
			if !isLocal(rest) {
				return "", escapes
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
			return "", &fs.PathError{Op: "resolve", Path: orig, Err: syscall.ELOOP}
		}
		target, err := r.os.Readlink(cur)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			return "", escapes
		}
		todo = append(split(target), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return filepath.Join(done...), nil
}

// ReadFile reads p (see Check) up to limit bytes, refusing anything but
// a regular file: a named pipe would block.
func (r *Root) ReadFile(p, verb string, limit int64) ([]byte, error) {
	_, real, err := r.Check(p, verb, Read)
	if err != nil {
		return nil, err
	}
	fi, err := r.os.Stat(real)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cannot %s %s: it is not a regular file", verb, p)
	}
	f, err := r.os.Open(real)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// WriteFile writes data at p (see Check), creating missing parent
// directories (0755) and a missing file (0644); an existing file keeps
// its mode. It returns the path written, relative to the root.
func (r *Root) WriteFile(p, verb string, data []byte) (string, error) {
	_, real, err := r.Check(p, verb, Write)
	if err != nil {
		return "", err
	}
	if real == "." {
		return "", fmt.Errorf("cannot %s %s: it is the workspace root, a directory; name a file inside it", verb, p)
	}
	if dir := filepath.Dir(real); dir != "." {
		if err := r.os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
	}
	return real, r.os.WriteFile(real, data, 0o644)
}

// FS is the workspace seen from base (a path relative to the root), for
// walks and reads: every name is resolved as Check does, with the
// directories already resolved cached, and refused (ErrGit, ErrEscapes)
// when it leads into .git or out; ReadDir leaves out entries named .git.
// An FS is for one goroutine and one walk: the cache does not see later
// changes to the tree.
func (r *Root) FS(base string) *FS {
	return &FS{r: r, base: filepath.ToSlash(filepath.Clean(base)), dirs: map[string]string{}}
}

// FS implements fs.FS, fs.StatFS, fs.ReadDirFS and fs.ReadFileFS.
type FS struct {
	r    *Root
	base string
	dirs map[string]string // a directory (slash path from the root) → its real path
}

// Base is the directory the FS is rooted at, relative to the root.
func (f *FS) Base() string { return f.base }

// Real resolves name (relative to the FS's base, fs.ValidPath) to the
// path it reaches, relative to the root, slash-separated. A name that
// leads into .git or out of the workspace is an *Error whose Verb is
// verb.
func (f *FS) Real(verb, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: verb, Path: name, Err: fs.ErrInvalid}
	}
	full := path.Join(f.base, name)
	fail := func(err error, real string) error {
		return &Error{Verb: verb, Path: full, Real: real, Err: err, access: Read, root: f.r.path, dir: f.r.DirAbs()}
	}
	if InGit(full) {
		return "", fail(ErrGit, "")
	}
	real, err := f.resolve(full)
	switch {
	case errors.Is(err, ErrEscapes), errors.Is(err, syscall.ELOOP):
		return "", fail(plain(err), "")
	case err != nil:
		return "", &fs.PathError{Op: verb, Path: name, Err: plain(err)}
	case InGit(real):
		return "", fail(ErrGit, real)
	}
	return real, nil
}

// resolve is Root.resolve with the parent directory taken from the cache:
// a walk asks for many names in one directory.
func (f *FS) resolve(full string) (string, error) {
	if full == "." {
		return ".", nil
	}
	dir, name := path.Split(full)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		return f.r.resolve(nil, []string{name})
	}
	realDir, ok := f.dirs[dir]
	if !ok {
		var err error
		if realDir, err = f.resolve(dir); err != nil {
			return "", err
		}
		f.dirs[dir] = realDir
	}
	var done []string
	if realDir != "." {
		done = split(realDir)
	}
	real, err := f.r.resolve(done, []string{name})
	return filepath.ToSlash(real), err
}

func plain(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Open opens name for reading.
func (f *FS) Open(name string) (fs.File, error) {
	real, err := f.Real("read", name)
	if err != nil {
		return nil, err
	}
	return f.r.os.FS().Open(real)
}

// Stat returns the file info of what name leads to.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	real, err := f.Real("read", name)
	if err != nil {
		return nil, err
	}
	return fs.Stat(f.r.os.FS(), real)
}

// ReadDir lists a directory, leaving out .git.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	real, err := f.Real("list", name)
	if err != nil {
		return nil, err
	}
	ents, err := fs.ReadDir(f.r.os.FS(), real)
	out := ents[:0]
	for _, e := range ents {
		if e.Name() != GitDir {
			out = append(out, e)
		}
	}
	return out, err
}

// ReadFile reads a whole file.
func (f *FS) ReadFile(name string) ([]byte, error) {
	real, err := f.Real("read", name)
	if err != nil {
		return nil, err
	}
	return fs.ReadFile(f.r.os.FS(), real)
}
