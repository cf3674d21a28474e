// Package ignore decides which paths of a workspace the daemon leaves alone:
// neither watched nor captured in snapshots (DESIGN §4).
//
// A path is ignored when any of these says so, checked for the path and for
// each of its parent directories (a file inside an ignored directory cannot
// be re-included, as in git):
//   - a component named .git: repository metadata, at any level;
//   - an extra excluded path given to New, such as the daemon's data dir;
//   - the gitignore rules, from lowest to highest precedence:
//     .git/info/exclude, the .gitignore files from the root down to the
//     path's own directory (each relative to its directory), and the root's
//     .sessiondignore. Within one file the last matching pattern wins; a
//     higher file's match, negated or not, overrides a lower one's, so a
//     .sessiondignore "!.env" captures a file git ignores.
//
// Only rule files at or below the root are read: the root is expected to be
// a project root (the git top level for a repository). The user's global
// git excludes file is not read, so that what is captured does not depend on
// whose account runs the daemon.
//
// # The pattern library
//
// Patterns are parsed and matched by go-git's plumbing/format/gitignore
// (github.com/go-git/go-git/v5). The alternatives were weighed as follows:
//   - go-git: maintained (v5.19, 2026), used by go-git's own worktree
//     status, and it models what we need: a pattern scoped to the directory
//     of its .gitignore (ParsePattern's domain), negation, directory-only
//     patterns given isDir, and "**". The package pulls in only go-billy,
//     gcfg and a few small modules, not the rest of go-git.
//   - github.com/sabhiram/go-gitignore: unmaintained since 2021, regexp
//     based, with no isDir argument and no notion of nested files. On 79
//     paths checked against `git check-ignore` (nested files, negation,
//     "**", anchoring) it got 8 wrong; go-git with the fixes below got 3,
//     all the backtracking case.
//   - github.com/monochromegane/go-gitignore: unmaintained since 2020, and
//     a negation always wins whatever its order.
//   - github.com/denormal/go-gitignore, github.com/boyter/gocodewalker and
//     github.com/git-pkgs/gitignore: not served by the module proxy we use.
//
// go-git's known deviations from git, and what is done about them:
//   - it matches a path against its own patterns only, so "build/" then
//     "!build/keep" re-includes build/keep, which git does not: Ignored
//     checks every parent directory first, which is git's rule;
//   - a trailing "/**" also matches the directory itself ("logs/**" ignores
//     logs, so a later "!logs/keep" cannot re-include), and "dir/**/" also
//     matches the files directly in dir (go-git issue #2278): such patterns
//     are rewritten to "/**/*", which is what git means by them;
//   - a "**" in the middle does not backtrack, so "**/a/b" misses a/x/a/b
//     (go-git issue #2317, unfixed): rare in practice, and left as is.
package ignore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// Names of the rule files, and of the repository metadata directory.
const (
	GitIgnoreFile      = ".gitignore"
	SessiondIgnoreFile = ".sessiondignore"
	gitDir             = ".git"
)

// maxRuleFile caps how much of one rule file is read: a multi-megabyte
// .gitignore is a mistake (or a generated file), and every match walks its
// patterns.
const maxRuleFile = 4 << 20

// Options configures a Matcher.
type Options struct {
	// Exclude lists absolute paths that are always ignored with everything
	// below them, such as the daemon's data dir when it lies inside the
	// workspace. Paths outside the root are dropped.
	Exclude []string
	// Logger receives unreadable rule files; nil discards.
	Logger *slog.Logger
}

// Matcher answers whether a path of one workspace is ignored. Rule files
// are read lazily, once, and cached until Invalidate or Reload says they
// changed. It is safe for concurrent use.
type Matcher struct {
	root    string
	exclude []string // slash-separated, relative to root
	log     *slog.Logger

	mu sync.RWMutex
	// gen counts invalidations, so that a rule file read while one happened
	// is used for that query but not cached.
	gen         uint64
	dirs        map[string][]gitignore.Pattern // dir rel ("" = root) → its .gitignore
	top         []gitignore.Pattern            // .sessiondignore; nil until loaded
	base        []gitignore.Pattern            // info/exclude; nil until loaded
	topLoaded   bool
	baseLoaded  bool
	excludeFile string // absolute path of info/exclude, "" outside git
	excludeSet  bool
}

// New returns a Matcher for the workspace at root, an absolute directory.
func New(root string, opts Options) (*Matcher, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("ignore: workspace root %q is not absolute: pass the project's root directory", root)
	}
	root = filepath.Clean(root)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Matcher{root: root, log: log, dirs: make(map[string][]gitignore.Pattern)}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		realRoot = root
	}
	for _, ex := range opts.Exclude {
		if !filepath.IsAbs(ex) {
			return nil, fmt.Errorf("ignore: excluded path %q is not absolute", ex)
		}
		ex = filepath.Clean(ex)
		cands := []string{ex}
		if real, err := filepath.EvalSymlinks(ex); err == nil && real != ex {
			cands = append(cands, real)
		}
		for _, c := range cands {
			for _, r := range []string{root, realRoot} {
				if rel, ok := within(r, c); ok {
					m.exclude = append(m.exclude, rel)
				}
			}
		}
	}
	return m, nil
}

// within returns p relative to root, slash-separated, when p is root or
// below it.
func within(root, p string) (string, bool) {
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	if rel == "." {
		rel = ""
	}
	return filepath.ToSlash(rel), true
}

// Root returns the workspace root the Matcher was made for.
func (m *Matcher) Root() string { return m.root }

// Ignored reports whether rel, a slash-separated path relative to the root,
// is ignored; isDir tells whether it is a directory, for patterns ending in
// "/". The root itself is never ignored; a path leaving the root ("../x")
// or an absolute one always is, since it is not part of the workspace.
func (m *Matcher) Ignored(rel string, isDir bool) bool {
	return m.ignored(rel, isDir, false)
}

// IgnoredEntry is Ignored for a walk that prunes ignored directories: it
// trusts that rel's parent directories are not ignored and checks rel alone,
// which spares re-matching every ancestor for every entry.
func (m *Matcher) IgnoredEntry(rel string, isDir bool) bool {
	return m.ignored(rel, isDir, true)
}

func (m *Matcher) ignored(rel string, isDir, parentsChecked bool) bool {
	rel = path.Clean(filepath.ToSlash(rel))
	if path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return true
	}
	if rel == "." {
		return false
	}
	for _, ex := range m.exclude {
		if ex == "" || rel == ex || strings.HasPrefix(rel, ex+"/") {
			return true
		}
	}
	parts := strings.Split(rel, "/")
	for _, p := range parts {
		if p == gitDir {
			return true
		}
	}
	r := m.rulesFor(parts)
	first := 1
	if parentsChecked {
		first = len(parts)
	}
	for i := first; i <= len(parts); i++ {
		if r.excluded(parts[:i], i < len(parts) || isDir) {
			return true
		}
	}
	return false
}

// rules holds the pattern lists that apply to one path, from lowest to
// highest precedence except that dirs[k] is the .gitignore of the path's
// k-th ancestor (0 = root).
type rules struct {
	base, top []gitignore.Pattern
	dirs      [][]gitignore.Pattern
}

// excluded reports whether the last matching pattern for parts, searched
// from the highest precedence down, excludes it. A directory's own
// .gitignore does not apply to the directory itself: go-git's domain check
// returns NoMatch there.
func (r *rules) excluded(parts []string, isDir bool) bool {
	if res := lastMatch(r.top, parts, isDir); res != gitignore.NoMatch {
		return res == gitignore.Exclude
	}
	for k := min(len(parts)-1, len(r.dirs)-1); k >= 0; k-- {
		if res := lastMatch(r.dirs[k], parts, isDir); res != gitignore.NoMatch {
			return res == gitignore.Exclude
		}
	}
	return lastMatch(r.base, parts, isDir) == gitignore.Exclude
}

func lastMatch(ps []gitignore.Pattern, parts []string, isDir bool) gitignore.MatchResult {
	for i := len(ps) - 1; i >= 0; i-- {
		if res := ps[i].Match(parts, isDir); res != gitignore.NoMatch {
			return res
		}
	}
	return gitignore.NoMatch
}

// rulesFor gathers, reading what is not cached yet, the rule files that
// apply to parts: those of the root and of each parent directory.
func (m *Matcher) rulesFor(parts []string) *rules {
	r := &rules{dirs: make([][]gitignore.Pattern, len(parts))}
	key := func(k int) string { return strings.Join(parts[:k], "/") }
	var missing []int
	m.mu.RLock()
	gen := m.gen
	topLoaded, baseLoaded := m.topLoaded, m.baseLoaded
	excl, exclSet := m.excludeFile, m.excludeSet
	r.top, r.base = m.top, m.base
	for k := range r.dirs {
		if ps, ok := m.dirs[key(k)]; ok {
			r.dirs[k] = ps
		} else {
			missing = append(missing, k)
		}
	}
	m.mu.RUnlock()
	if topLoaded && baseLoaded && len(missing) == 0 {
		return r
	}

	// Read what is missing without the lock: it is file I/O.
	if !topLoaded {
		r.top = m.readRules(filepath.Join(m.root, SessiondIgnoreFile), nil)
	}
	if !exclSet {
		excl = findExcludeFile(m.root)
	}
	if !baseLoaded && excl != "" {
		r.base = m.readRules(excl, nil)
	}
	for _, k := range missing {
		r.dirs[k] = m.readRules(filepath.Join(m.root, filepath.FromSlash(key(k)), GitIgnoreFile), parts[:k])
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != gen {
		return r // the rules changed meanwhile: use, don't cache
	}
	if !topLoaded {
		m.top, m.topLoaded = r.top, true
	}
	if !baseLoaded {
		m.base, m.baseLoaded = r.base, true
		m.excludeFile, m.excludeSet = excl, true
	}
	for _, k := range missing {
		m.dirs[key(k)] = r.dirs[k]
	}
	return r
}

// readRules parses the rule file at name, its patterns scoped to domain
// (the path of its directory relative to the root). A missing file has no
// rules; an unreadable one is logged and has none either, which errs on the
// side of capturing too much rather than silently dropping files.
func (m *Matcher) readRules(name string, domain []string) []gitignore.Pattern {
	f, err := os.Open(name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			m.log.Warn("ignore: cannot read rule file; its patterns are not applied", "file", name, "err", err)
		}
		return nil
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil
	}
	var ps []gitignore.Pattern
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), maxRuleFile)
	first := true
	for sc.Scan() {
		line := sc.Bytes()
		if first {
			line = bytes.TrimPrefix(line, []byte("\uFEFF"))
			first = false
		}
		if p, ok := parseLine(string(line), domain); ok {
			ps = append(ps, p)
		}
	}
	if err := sc.Err(); err != nil {
		m.log.Warn("ignore: rule file only partly read; fix or shorten it", "file", name, "err", err)
	}
	return ps
}

// parseLine turns one line of a rule file into a pattern; blank lines and
// comments give none.
func parseLine(line string, domain []string) (gitignore.Pattern, bool) {
	line = strings.TrimSuffix(line, "\r")
	if strings.HasPrefix(line, "#") {
		return nil, false
	}
	// Trailing spaces do not count unless escaped; ParsePattern keeps an
	// escaped one ("\ ") itself.
	if strings.TrimRight(line, " ") == "" {
		return nil, false
	}
	return gitignore.ParsePattern(fixTrailingGlobstar(line), domain), true
}

// fixTrailingGlobstar rewrites "x/**" and "x/**/" to "x/**/*" and
// "x/**/*/": git means "everything inside x", but go-git would also match x
// itself, or the files directly in x for the directory-only form.
func fixTrailingGlobstar(line string) string {
	body, dirOnly := strings.CutSuffix(strings.TrimRight(line, " "), "/")
	if body == "**" || body == "!**" || !strings.HasSuffix(body, "/**") {
		return line
	}
	body += "/*"
	if dirOnly {
		body += "/"
	}
	return body
}

// findExcludeFile returns where the repository at root keeps info/exclude:
// .git/info/exclude, or for a worktree or submodule (a .git file pointing
// elsewhere) the one in its common git dir. "" when root is no repository.
func findExcludeFile(root string) string {
	dot := filepath.Join(root, gitDir)
	st, err := os.Lstat(dot)
	if err != nil {
		return ""
	}
	if st.IsDir() {
		return filepath.Join(dot, "info", "exclude")
	}
	if !st.Mode().IsRegular() {
		return ""
	}
	b, err := os.ReadFile(dot)
	if err != nil {
		return ""
	}
	gd, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
	if !ok {
		return ""
	}
	gd = strings.TrimSpace(gd)
	if !filepath.IsAbs(gd) {
		gd = filepath.Join(root, gd)
	}
	if c, err := os.ReadFile(filepath.Join(gd, "commondir")); err == nil {
		common := strings.TrimSpace(string(c))
		if !filepath.IsAbs(common) {
			common = filepath.Join(gd, common)
		}
		gd = common
	}
	return filepath.Join(filepath.Clean(gd), "info", "exclude")
}

// ExcludeFile returns the absolute path of the info/exclude file the rules
// come from, or "" when the root is not a git repository. A watcher watches
// its directory, which may lie outside the root (git worktrees).
func (m *Matcher) ExcludeFile() string {
	m.mu.RLock()
	excl, ok := m.excludeFile, m.excludeSet
	gen := m.gen
	m.mu.RUnlock()
	if ok {
		return excl
	}
	excl = findExcludeFile(m.root)
	m.mu.Lock()
	if m.gen == gen {
		m.excludeFile, m.excludeSet = excl, true
	}
	m.mu.Unlock()
	return excl
}

// IsRuleFile reports whether rel (relative to the root) is a file whose
// change alters the rules: a .gitignore at any level or the root's
// .sessiondignore. info/exclude is told apart by ExcludeFile.
func (m *Matcher) IsRuleFile(rel string) bool {
	rel = path.Clean(filepath.ToSlash(rel))
	return path.Base(rel) == GitIgnoreFile || rel == SessiondIgnoreFile
}

// Invalidate forgets the rules read from the rule file at rel, which was
// created, changed or removed; they are read again when next needed. A rel
// that is no rule file invalidates nothing.
func (m *Matcher) Invalidate(rel string) {
	rel = path.Clean(filepath.ToSlash(rel))
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case rel == SessiondIgnoreFile:
		m.top, m.topLoaded = nil, false
	case path.Base(rel) == GitIgnoreFile:
		dir := path.Dir(rel)
		if dir == "." {
			dir = ""
		}
		delete(m.dirs, dir)
	default:
		return
	}
	m.gen++
}

// InvalidateDir forgets the rules read from every .gitignore at or below
// the directory rel, which appeared, vanished or moved as a whole: no event
// may come for the rule files inside it. "" is the same as Reload.
func (m *Matcher) InvalidateDir(rel string) {
	rel = path.Clean(filepath.ToSlash(rel))
	if rel == "." || rel == "" {
		m.Reload()
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	prefix := rel + "/"
	for dir := range m.dirs {
		if dir == rel || strings.HasPrefix(dir, prefix) {
			delete(m.dirs, dir)
		}
	}
	m.gen++
}

// Reload forgets every rule read so far, info/exclude and where it lives
// included: for a change the caller cannot pin to one file, such as an
// overflowed watcher or a new .git.
func (m *Matcher) Reload() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	m.dirs = make(map[string][]gitignore.Pattern)
	m.top, m.topLoaded = nil, false
	m.base, m.baseLoaded = nil, false
	m.excludeFile, m.excludeSet = "", false
}
