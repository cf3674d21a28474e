package tools

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestList(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{
		"README.md":            "r",
		"cmd/main.go":          "m",
		"cmd/sub/x.go":         "x",
		"node_modules/a/b.js":  "b",
		"empty/":               "",
		".git/HEAD":            "ref",
		"pkg/.git/HEAD":        "nested repo",
		"logs/today.log":       "l",
		".github/workflow.yml": "w",
	})
	symlink(t, "cmd", filepath.Join(env.Root, "cmdlink"))

	res := mustCall(t, env, "list", obj{})
	wantTree := strings.Join([]string{
		"./",
		"  .github/",
		"    workflow.yml",
		"  README.md",
		"  cmd/",
		"    main.go",
		"    sub/",
		"      x.go",
		"  cmdlink -> cmd",
		"  empty/",
		"  logs/",
		"    today.log",
		"  node_modules/",
		"    a/",
		"      b.js",
		"  pkg/",
	}, "\n")
	if res.Output != wantTree {
		t.Errorf("Output =\n%s\nwant\n%s", res.Output, wantTree)
	}
	if res.Metadata["count"] != 15 || res.Metadata["truncated"] != false || res.Title != "List ." {
		t.Errorf("Metadata = %v, Title = %q", res.Metadata, res.Title)
	}

	res = mustCall(t, env, "list", obj{"path": "cmd", "ignore": []string{"node_modules", "*.log", "sub/"}})
	if res.Output != "cmd/\n  main.go" {
		t.Errorf("Output = %q", res.Output)
	}
	res = mustCall(t, env, "list", obj{"ignore": []string{"node_modules/", "**/*.log", ".github"}})
	if strings.Contains(res.Output, "node_modules") || strings.Contains(res.Output, "today.log") || strings.Contains(res.Output, "github") || !strings.Contains(res.Output, "  logs/\n") {
		t.Errorf("ignore did not apply:\n%s", res.Output)
	}
	res = mustCall(t, env, "list", obj{"path": "empty"})
	if res.Output != "empty/\n(empty directory)" {
		t.Errorf("Output = %q", res.Output)
	}
	res = mustCall(t, env, "list", obj{"path": env.Root + "/cmd/sub"})
	if res.Output != "cmd/sub/\n  x.go" {
		t.Errorf("Output = %q", res.Output)
	}

	_, err := call(t, env, "list", obj{"path": "README.md"})
	wantErr(t, err, "cannot list README.md: it is a file", "use read")
	_, err = call(t, env, "list", obj{"path": "nope"})
	wantErr(t, err, "cannot list nope: it does not exist")
	_, err = call(t, env, "list", obj{"ignore": []string{"[a"}})
	wantErr(t, err, `ignore pattern "[a" is not a valid glob`)
}

func TestListCap(t *testing.T) {
	t.Parallel()
	files := map[string]string{}
	for i := range 30 {
		for j := range 40 {
			files[fmt.Sprintf("d%02d/f%02d.txt", i, j)] = ""
		}
	}
	env := newEnv(t, files)
	res := mustCall(t, env, "list", obj{})
	if res.Metadata["count"] != MaxListEntries || res.Metadata["truncated"] != true {
		t.Errorf("Metadata = %v", res.Metadata)
	}
	// Breadth first: every top-level directory is there.
	for i := range 30 {
		if !strings.Contains(res.Output, fmt.Sprintf("\n  d%02d/\n", i)) {
			t.Errorf("d%02d is missing", i)
		}
	}
	if !strings.HasSuffix(res.Output, "(the listing was cut at 1000 entries; list a subdirectory, add ignore patterns, or use glob to see the rest)") {
		t.Errorf("Output ends %q", tail(res.Output))
	}
	if n := strings.Count(res.Output, "\n    f"); n != MaxListEntries-30 {
		t.Errorf("%d files listed, want %d", n, MaxListEntries-30)
	}
	// The byte cap cuts the rendering too.
	env.OutputCap = 2000
	res = mustCall(t, env, "list", obj{})
	if len(res.Output) > 2300 || res.Metadata["truncated"] != true {
		t.Errorf("Output is %d bytes, Metadata = %v", len(res.Output), res.Metadata)
	}
}

func TestGlob(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{
		"a.go":          "",
		"b.go":          "",
		"c.txt":         "",
		"sub/d.go":      "",
		"sub/deep/e.go": "",
		"web/x.ts":      "",
		"web/y.tsx":     "",
		".git/hook.go":  "",
		".hidden.go":    "",
		"dir.go/f":      "",
	})
	// mtimes: e.go newest, then a.go, then the rest (ties by path).
	base := time.Now().Add(-time.Hour)
	same := base.Add(-2 * time.Hour)
	for _, name := range []string{"c.txt", "web/x.ts", "web/y.tsx", "dir.go/f"} {
		if err := os.Chtimes(filepath.Join(env.Root, name), same, same); err != nil {
			t.Fatal(err)
		}
	}
	for name, age := range map[string]time.Duration{"sub/deep/e.go": 0, "a.go": time.Minute} {
		mt := base.Add(-age)
		if err := os.Chtimes(filepath.Join(env.Root, name), mt, mt.Add(30*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	old := base.Add(-24 * time.Hour)
	for _, name := range []string{"b.go", "sub/d.go", ".hidden.go"} {
		if err := os.Chtimes(filepath.Join(env.Root, name), old, old); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		input obj
		want  string
	}{
		{obj{"pattern": "**/*.go"}, "sub/deep/e.go\na.go\n.hidden.go\nb.go\nsub/d.go"},
		{obj{"pattern": "*.go"}, "a.go\n.hidden.go\nb.go"},
		{obj{"pattern": "./*.txt"}, "c.txt"},
		{obj{"pattern": "web/*.{ts,tsx}"}, "web/x.ts\nweb/y.tsx"},
		{obj{"pattern": "*.go", "path": "sub"}, "sub/d.go"},
		{obj{"pattern": "**/*.go", "path": env.Root + "/sub"}, "sub/deep/e.go\nsub/d.go"},
		{obj{"pattern": "**/hook.go"}, "No files match **/hook.go in the working directory."},
		{obj{"pattern": "*.rs"}, "No files match *.rs in the working directory."},
		{obj{"pattern": "sub/deep/e.go"}, "sub/deep/e.go"},
	}
	for _, tt := range tests {
		t.Run(label(tt.input), func(t *testing.T) {
			t.Parallel()
			res := mustCall(t, env, "glob", tt.input)
			if res.Output != tt.want {
				t.Errorf("Output = %q, want %q", res.Output, tt.want)
			}
		})
	}

	sub := &Env{Root: env.Root, Dir: filepath.Join(env.Root, "sub")}
	if res := mustCall(t, sub, "glob", obj{"pattern": "**/*.go"}); res.Output != "deep/e.go\nd.go" {
		t.Errorf("from sub: %q", res.Output)
	}

	for _, tt := range []struct {
		input obj
		want  string
	}{
		{obj{"pattern": ""}, "pattern is empty"},
		{obj{"pattern": "[a"}, "not a valid glob"},
		{obj{"pattern": "/etc/*"}, "is absolute"},
		{obj{"pattern": "sub/../*"}, `contains ".."`},
		{obj{"pattern": "*", "path": "a.go"}, "cannot search a.go: it is a file"},
		{obj{"pattern": "*", "path": "nope"}, "cannot search nope: it does not exist"},
	} {
		_, err := call(t, env, "glob", tt.input)
		wantErr(t, err, tt.want)
	}
}

func TestGlobCap(t *testing.T) {
	t.Parallel()
	files := map[string]string{}
	for i := range 150 {
		files[fmt.Sprintf("f%03d.txt", i)] = ""
	}
	env := newEnv(t, files)
	now := time.Now()
	for i := range 150 {
		mt := now.Add(-time.Duration(i) * time.Minute) // f000 newest
		if err := os.Chtimes(filepath.Join(env.Root, fmt.Sprintf("f%03d.txt", i)), mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	res := mustCall(t, env, "glob", obj{"pattern": "*.txt"})
	lines := strings.Split(res.Output, "\n")
	if lines[0] != "f000.txt" || lines[99] != "f099.txt" {
		t.Errorf("first %q, 100th %q", lines[0], lines[99])
	}
	if !strings.HasSuffix(res.Output, "(150 files match; the 100 most recently modified are shown; narrow the pattern or the path for the rest)") {
		t.Errorf("Output ends %q", tail(res.Output))
	}
	if res.Metadata["count"] != 150 || res.Metadata["truncated"] != true {
		t.Errorf("Metadata = %v", res.Metadata)
	}
}

func TestGrep(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{
		"a.go":          "package a\n\nfunc Run() {}\n// TODO: fix\n",
		"b.txt":         "run fast\r\nTODO later\r\n",
		"sub/c.go":      "package sub\nfunc run() { Run() }\n",
		"web/x.ts":      "const Run = 1\n",
		"bin.dat":       "Run\x00\x01",
		".git/objects":  "Run",
		"long.txt":      strings.Repeat("z", 600) + "Run\n",
		"sub/empty.txt": "",
	})
	tests := []struct {
		input obj
		want  string
		meta  obj
	}{
		{obj{"pattern": `func \w+\(`}, "a.go:3: func Run() {}\nsub/c.go:2: func run() { Run() }", obj{"matches": 2, "files": 2}},
		{obj{"pattern": "TODO"}, "a.go:4: // TODO: fix\nb.txt:2: TODO later", nil},
		{obj{"pattern": "(?i)^run"}, "b.txt:1: run fast", nil},
		{obj{"pattern": "^TODO"}, "b.txt:2: TODO later", nil},
		{obj{"pattern": "later$"}, "b.txt:2: TODO later", nil},
		{obj{"pattern": "^// TODO: fix$", "path": "a.go"}, "a.go:4: // TODO: fix", nil},
		{obj{"pattern": "Run", "include": "*.go"}, "a.go:3: func Run() {}\nsub/c.go:2: func run() { Run() }", nil},
		{obj{"pattern": "Run", "include": "*.{ts,txt}"}, "long.txt:1: " + strings.Repeat("z", 500) + "… (line cut at 500 characters)\nweb/x.ts:1: const Run = 1", nil},
		{obj{"pattern": "Run", "include": "sub/**"}, "sub/c.go:2: func run() { Run() }", nil},
		{obj{"pattern": "Run", "path": "sub"}, "sub/c.go:2: func run() { Run() }", nil},
		{obj{"pattern": "Run", "path": "a.go", "include": "*.ts"}, "a.go:3: func Run() {}", nil},
		{obj{"pattern": "Run", "path": "bin.dat"}, "No matches for Run in bin.dat.", obj{"matches": 0}},
		{obj{"pattern": "nothing here"}, "No matches for nothing here in the working directory.", obj{"matches": 0, "files": 0, "truncated": false}},
	}
	for _, tt := range tests {
		t.Run(label(tt.input), func(t *testing.T) {
			t.Parallel()
			res := mustCall(t, env, "grep", tt.input)
			if res.Output != tt.want {
				t.Errorf("Output = %q, want %q", res.Output, tt.want)
			}
			for k, v := range tt.meta {
				if fmt.Sprint(res.Metadata[k]) != fmt.Sprint(v) {
					t.Errorf("Metadata[%s] = %v, want %v", k, res.Metadata[k], v)
				}
			}
		})
	}
	sub := &Env{Root: env.Root, Dir: filepath.Join(env.Root, "sub")}
	if res := mustCall(t, sub, "grep", obj{"pattern": "package", "path": ".."}); res.Output != "../a.go:1: package a\nc.go:1: package sub" {
		t.Errorf("from sub: %q", res.Output)
	}

	for _, tt := range []struct {
		input obj
		want  string
	}{
		{obj{"pattern": ""}, "pattern is empty"},
		{obj{"pattern": "(a"}, `pattern "(a" is not a valid Go (RE2) regular expression: missing closing )`},
		{obj{"pattern": "(?<=a)b"}, "not a valid Go (RE2) regular expression"},
		{obj{"pattern": "a", "include": "[x"}, "not a valid glob"},
		{obj{"pattern": "a", "path": "nope"}, "cannot search nope: it does not exist"},
	} {
		_, err := call(t, env, "grep", tt.input)
		wantErr(t, err, tt.want)
	}
}

func TestGrepCap(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := range 80 {
		fmt.Fprintf(&b, "hit %d\n", i+1)
	}
	env := newEnv(t, map[string]string{"a.txt": b.String(), "b.txt": b.String(), "c.txt": "hit\n"})
	res := mustCall(t, env, "grep", obj{"pattern": "hit"})
	if res.Metadata["matches"] != MaxGrepMatches || res.Metadata["truncated"] != true || res.Metadata["files"] != 2 {
		t.Errorf("Metadata = %v", res.Metadata)
	}
	if !strings.Contains(res.Output, "b.txt:20: hit 20\n\n(stopped after 100 matches") || strings.Contains(res.Output, "c.txt") {
		t.Errorf("Output ends %q", tail(res.Output))
	}
	env.OutputCap = 500
	res = mustCall(t, env, "grep", obj{"pattern": "hit"})
	if len(res.Output) > 700 || res.Metadata["truncated"] != true {
		t.Errorf("Output is %d bytes, Metadata = %v", len(res.Output), res.Metadata)
	}
}

func TestGrepSkipsLargeFiles(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"small.txt": "needle\n"})
	f, err := os.Create(filepath.Join(env.Root, "big.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("needle\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxGrepFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	res := mustCall(t, env, "grep", obj{"pattern": "needle"})
	if res.Output != "small.txt:1: needle\n(1 files over 10 MiB were not searched)" || res.Metadata["skippedLarge"] != 1 {
		t.Errorf("Output = %q, Metadata = %v", res.Output, res.Metadata)
	}
}
