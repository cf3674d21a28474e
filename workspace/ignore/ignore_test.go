package ignore

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// writeTree creates files (slash-separated path → content) under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newMatcher(t *testing.T, root string, opts Options) *Matcher {
	t.Helper()
	m, err := New(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type ignoreCase struct {
	rel   string
	isDir bool
	want  bool
}

func checkCases(t *testing.T, m *Matcher, cases []ignoreCase) {
	t.Helper()
	for _, c := range cases {
		if got := m.Ignored(c.rel, c.isDir); got != c.want {
			t.Errorf("Ignored(%q, dir=%v) = %v, want %v", c.rel, c.isDir, got, c.want)
		}
		// A walk reaches rel only through parents that are not ignored;
		// there IgnoredEntry must agree.
		if !parentIgnored(m, c.rel) {
			if got := m.IgnoredEntry(c.rel, c.isDir); got != c.want {
				t.Errorf("IgnoredEntry(%q, dir=%v) = %v, want %v", c.rel, c.isDir, got, c.want)
			}
		}
	}
}

func parentIgnored(m *Matcher, rel string) bool {
	for d := path.Dir(rel); d != "." && d != "/" && d != ".."; d = path.Dir(d) {
		if m.Ignored(d, true) {
			return true
		}
	}
	return false
}

// gitRules is a tree whose answers git itself agrees with (see
// TestMatchesGitCheckIgnore): nested files, negation, directory-only
// patterns, anchoring, "**" and info/exclude.
var gitRules = map[string]string{
	".gitignore": "# comment\n*.log\n!keep.log\nbuild/\nbuild2/\n!build2/keep.txt\n/rootonly\n" +
		"doc/*.txt\n**/tmp\na/**/b\nlogs/**\n!logs/keep\nout/**/\n\\#hash\ntrailing   \r\n",
	"sub/.gitignore":       "!*.log\nlocal\n/anchored\n*.tmp\n!important.tmp\n",
	"sub/inner/.gitignore": "*.tmp\n!*.keep.tmp\n",
	".git/info/exclude":    "secret.txt\n",
}

var gitCases = []ignoreCase{
	{"x.log", false, true},
	{"keep.log", false, false},
	{"d/x.log", false, true},
	{"sub/x.log", false, false}, // re-included by sub/.gitignore
	{"sub/deeper/x.log", false, false},
	{"build", true, true},
	{"build/f", false, true},
	{"sub/build/f", false, true},
	{"build2/keep.txt", false, true}, // parent excluded: cannot re-include
	{"rootonly", false, true},
	{"sub/rootonly", false, false},
	{"doc/a.txt", false, true},
	{"doc/sub/a.txt", false, false},
	{"tmp", true, true},
	{"x/y/tmp", false, true},
	{"a/b", false, true},
	{"a/x/y/b", false, true},
	{"logs", true, false},
	{"logs/f", false, true},
	{"logs/keep", false, false},
	{"out/f", false, false}, // out/**/ ignores directories in out only
	{"out/d", true, true},
	{"out/d/f", false, true},
	{"#hash", false, true},
	{"trailing", false, true},
	{"sub/local", false, true},
	{"sub/x/local", false, true},
	{"sub/anchored", false, true},
	{"sub/x/anchored", false, false},
	{"anchored", false, false},
	{"sub/a.tmp", false, true},
	{"sub/important.tmp", false, false},
	{"a.tmp", false, false},
	{"sub/inner/b.tmp", false, true},
	{"sub/inner/b.keep.tmp", false, false},
	{"sub/inner/important.tmp", false, true}, // the deeper file wins
	{"secret.txt", false, true},
	{"sub/secret.txt", false, true},
	{"src/main.go", false, false},
}

func TestIgnored(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, gitRules)
	writeTree(t, root, map[string]string{
		".sessiondignore": "*.bin\n!.env\n!sub/*.tmp\n",
		".gitignore.more": "",
	})
	// .env is ignored by git but re-included by .sessiondignore.
	if err := os.WriteFile(filepath.Join(root, ".gitignore"), []byte(gitRules[".gitignore"]+".env\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(root, "state", "sessiond")
	m := newMatcher(t, root, Options{Exclude: []string{data, "/elsewhere/data"}})

	cases := append([]ignoreCase{
		{"", true, false},
		{".", true, false},
		{"../x", false, true},
		{"/etc/passwd", false, true},
		{".git", true, true},
		{".git", false, true},
		{".git/config", false, true},
		{"vendor/mod/.git", false, true}, // a submodule's .git file
		{"vendor/mod/.git/HEAD", false, true},
		{".gitignore", false, false},
		{"sub/.gitignore", false, false},
		{"build", false, false}, // directory-only pattern, and build is a file here
		{"state", true, false},
		{"state/sessiond", true, true},
		{"state/sessiond/store/000001.vlog", false, true},
		{"state/sessiondx", true, false},
		{"x.bin", false, true},
		{"sub/x.bin", false, true},
		{".env", false, false},
		{"sub/.env", false, false},
		{"sub/a.tmp", false, false}, // .sessiondignore overrides sub/.gitignore
		{"sub/inner/b.tmp", false, true},
	}, gitCases...)
	// The sessiondignore re-include overrides the git answer above.
	for i, c := range cases {
		if c.rel == "sub/a.tmp" && c.want {
			cases[i].want = false
		}
	}
	checkCases(t, m, cases)
}

// TestMatchesGitCheckIgnore runs the same tree through git itself, so the
// expectations in gitCases are git's and not our reading of gitignore(5).
func TestMatchesGitCheckIgnore(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	root := t.TempDir()
	cmd := exec.Command("git", "init", "-q", root)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	writeTree(t, root, gitRules)
	var paths []string
	for _, c := range gitCases {
		p := filepath.Join(root, filepath.FromSlash(c.rel))
		if c.isDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		} else {
			writeTree(t, root, map[string]string{c.rel: "x"})
		}
		paths = append(paths, c.rel)
	}
	cmd = exec.Command("git", "-C", root, "check-ignore", "--no-index", "--stdin")
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader(strings.Join(paths, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		t.Fatalf("git check-ignore: %v", err)
	}
	gitSays := make(map[string]bool)
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		gitSays[l] = true
	}
	m := newMatcher(t, root, Options{})
	for _, c := range gitCases {
		if gitSays[c.rel] != c.want {
			t.Errorf("test expectation for %q is %v, git says %v", c.rel, c.want, gitSays[c.rel])
		}
		if got := m.Ignored(c.rel, c.isDir); got != gitSays[c.rel] {
			t.Errorf("Ignored(%q) = %v, git check-ignore says %v", c.rel, got, gitSays[c.rel])
		}
	}
}

func TestReload(t *testing.T) {
	tests := []struct {
		name   string
		before map[string]string
		edit   map[string]string
		tell   func(m *Matcher)
		cases  []ignoreCase // after the edit; the opposite held before
	}{{
		name:   "root .gitignore edited",
		before: map[string]string{".gitignore": "*.log\n"},
		edit:   map[string]string{".gitignore": "*.log\n!a.log\n*.txt\n"},
		tell:   func(m *Matcher) { m.Invalidate(".gitignore") },
		cases:  []ignoreCase{{"a.log", false, false}, {"notes.txt", false, true}},
	}, {
		name:   "nested .gitignore created",
		before: map[string]string{"sub/f.go": ""},
		edit:   map[string]string{"sub/.gitignore": "gen/\n"},
		tell:   func(m *Matcher) { m.Invalidate("sub/.gitignore") },
		cases:  []ignoreCase{{"sub/gen", true, true}, {"sub/gen/x.go", false, true}},
	}, {
		name:   ".sessiondignore edited",
		before: map[string]string{".sessiondignore": "*.bin\n"},
		edit:   map[string]string{".sessiondignore": "*.iso\n"},
		tell:   func(m *Matcher) { m.Invalidate(".sessiondignore") },
		cases:  []ignoreCase{{"x.bin", false, false}, {"x.iso", false, true}},
	}, {
		name:   "info/exclude edited",
		before: map[string]string{".git/info/exclude": ""},
		edit:   map[string]string{".git/info/exclude": "scratch/\n"},
		tell:   func(m *Matcher) { m.Reload() },
		cases:  []ignoreCase{{"scratch", true, true}, {"scratch/x", false, true}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tt.before)
			m := newMatcher(t, root, Options{})
			for _, c := range tt.cases {
				if got := m.Ignored(c.rel, c.isDir); got == c.want {
					t.Fatalf("before the edit Ignored(%q) = %v already", c.rel, got)
				}
			}
			writeTree(t, root, tt.edit)
			for _, c := range tt.cases { // still cached
				if got := m.Ignored(c.rel, c.isDir); got == c.want {
					t.Fatalf("Ignored(%q) = %v before the matcher was told", c.rel, got)
				}
			}
			tt.tell(m)
			checkCases(t, m, tt.cases)
		})
	}
}

func TestInvalidateOnlyThatDirectory(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"a/.gitignore": "x\n", "b/.gitignore": "x\n"})
	m := newMatcher(t, root, Options{})
	checkCases(t, m, []ignoreCase{{"a/x", false, true}, {"b/x", false, true}})
	writeTree(t, root, map[string]string{"a/.gitignore": "", "b/.gitignore": ""})
	m.Invalidate("a/.gitignore")
	checkCases(t, m, []ignoreCase{{"a/x", false, false}, {"b/x", false, true}})
	m.Invalidate("README.md") // no rule file: nothing happens
	checkCases(t, m, []ignoreCase{{"b/x", false, true}})
}

func TestWorktreeExcludeFile(t *testing.T) {
	base := t.TempDir()
	main := filepath.Join(base, "main")
	wt := filepath.Join(base, "wt")
	writeTree(t, base, map[string]string{
		"main/.git/info/exclude":           "local-only\n",
		"main/.git/worktrees/wt/commondir": "../..\n",
		"wt/.git":                          "gitdir: ../main/.git/worktrees/wt\n",
	})
	m := newMatcher(t, wt, Options{})
	want := filepath.Join(main, ".git", "info", "exclude")
	if got := m.ExcludeFile(); got != want {
		t.Errorf("ExcludeFile() = %q, want %q", got, want)
	}
	checkCases(t, m, []ignoreCase{{"local-only", false, true}, {".git", false, true}})

	plain := newMatcher(t, t.TempDir(), Options{})
	if got := plain.ExcludeFile(); got != "" {
		t.Errorf("ExcludeFile() outside git = %q, want \"\"", got)
	}
}

func TestIsRuleFile(t *testing.T) {
	m := newMatcher(t, t.TempDir(), Options{})
	for rel, want := range map[string]bool{
		".gitignore": true, "a/b/.gitignore": true, ".sessiondignore": true,
		"a/.sessiondignore": false, "x.gitignore": false, ".gitignore/x": false,
	} {
		if got := m.IsRuleFile(rel); got != want {
			t.Errorf("IsRuleFile(%q) = %v, want %v", rel, got, want)
		}
	}
}

func TestNewRejectsRelative(t *testing.T) {
	if _, err := New("relative/dir", Options{}); err == nil {
		t.Error("New accepted a relative root")
	}
	if _, err := New(t.TempDir(), Options{Exclude: []string{"data"}}); err == nil {
		t.Error("New accepted a relative excluded path")
	}
}

func TestCRLFAndBOM(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{".gitignore": "\uFEFF*.log\r\nbuild/\r\n  \r\n"})
	m := newMatcher(t, root, Options{})
	checkCases(t, m, []ignoreCase{{"a.log", false, true}, {"build", true, true}, {"x", false, false}})
}

// TestConcurrent queries while rule files change; run with -race.
func TestConcurrent(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{".gitignore": "*.log\n", "a/b/.gitignore": "*.tmp\n"})
	m := newMatcher(t, root, Options{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 500 {
				if !m.Ignored("a/b/c/x.log", false) {
					t.Error("x.log not ignored")
					return
				}
				m.Ignored("a/b/x.tmp", false)
				if (i+j)%50 == 0 {
					m.Invalidate("a/b/.gitignore")
				}
				if (i+j)%97 == 0 {
					m.Reload()
				}
			}
		}()
	}
	wg.Wait()
}

func TestInvalidateDir(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"a/.gitignore": "x\n", "a/b/.gitignore": "y\n", "ab/.gitignore": "z\n"})
	m := newMatcher(t, root, Options{})
	checkCases(t, m, []ignoreCase{{"a/x", false, true}, {"a/b/y", false, true}, {"ab/z", false, true}})
	if err := os.RemoveAll(filepath.Join(root, "a")); err != nil {
		t.Fatal(err)
	}
	writeTree(t, root, map[string]string{"ab/.gitignore": ""})
	m.InvalidateDir("a")
	checkCases(t, m, []ignoreCase{{"a/x", false, false}, {"a/b/y", false, false}, {"ab/z", false, true}})
}
