package tools

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func numbered(from int, lines ...string) string {
	var b strings.Builder
	for i, l := range lines {
		fmt.Fprintf(&b, "%6d\t%s\n", from+i, l)
	}
	return b.String()
}

func TestRead(t *testing.T) {
	t.Parallel()
	var long strings.Builder
	for i := 1; i <= 2500; i++ {
		fmt.Fprintf(&long, "line %d\n", i)
	}
	env := newEnv(t, map[string]string{
		"a.txt":         "one\ntwo\nthree\n",
		"noeol.txt":     "one\ntwo",
		"crlf.txt":      "one\r\ntwo\r\n",
		"empty.txt":     "",
		"long.txt":      long.String(),
		"wide.txt":      strings.Repeat("é", 2500) + "\nshort\n",
		"bin.dat":       "PK\x03\x04\x00\x00binary",
		"dir/inner.txt": "inner\n",
		"ctl.txt":       strings.Repeat("\x01\x02\x03abc", 100),
		"ansi.log":      "\x1b[31mred\x1b[0m\n",
	})
	tests := []struct {
		name    string
		input   obj
		want    string // the whole Output, when set
		has     []string
		meta    map[string]any
		wantErr []string
	}{
		{name: "whole", input: obj{"path": "a.txt"}, want: numbered(1, "one", "two", "three"), meta: obj{"lines": 3, "truncated": false}},
		{name: "absolute", input: obj{"path": env.Root + "/a.txt"}, want: numbered(1, "one", "two", "three")},
		{name: "dotdot inside", input: obj{"path": "dir/../a.txt"}, want: numbered(1, "one", "two", "three")},
		{name: "no final newline", input: obj{"path": "noeol.txt"}, want: numbered(1, "one", "two")},
		{name: "crlf", input: obj{"path": "crlf.txt"}, want: numbered(1, "one", "two")},
		{name: "ansi is text", input: obj{"path": "ansi.log"}, has: []string{"red"}},
		{name: "offset", input: obj{"path": "a.txt", "offset": 2}, want: numbered(2, "two", "three"), meta: obj{"from": 2, "to": 3}},
		{name: "offset and limit", input: obj{"path": "a.txt", "offset": 2, "limit": 1}, has: []string{numbered(2, "two"), "lines 2-2 of 3 shown; read again with offset=3 to continue"}, meta: obj{"truncated": true}},
		{name: "offset 0 is 1", input: obj{"path": "a.txt", "offset": 0}, want: numbered(1, "one", "two", "three")},
		{name: "default limit", input: obj{"path": "long.txt"}, has: []string{"  2000\tline 2000\n", "lines 1-2000 of 2500 shown; read again with offset=2001"}, meta: obj{"lines": 2500, "to": 2000, "truncated": true}},
		{name: "rest", input: obj{"path": "long.txt", "offset": 2001}, has: []string{"  2001\tline 2001\n", "  2500\tline 2500\n"}, meta: obj{"truncated": false}},
		{name: "long line cut", input: obj{"path": "wide.txt"}, has: []string{strings.Repeat("é", 2000) + "… (line cut at 2000 characters)\n", "     2\tshort\n"}},
		{name: "empty", input: obj{"path": "empty.txt"}, want: "(empty.txt is empty)", meta: obj{"lines": 0}},
		{name: "offset past end", input: obj{"path": "a.txt", "offset": 9}, wantErr: []string{"offset 9 is past the end of a.txt, which has 3 lines"}},
		{name: "missing", input: obj{"path": "nope.txt"}, wantErr: []string{"cannot read nope.txt: it does not exist", "glob"}},
		{name: "directory", input: obj{"path": "dir"}, wantErr: []string{"cannot read dir: it is a directory", "use list"}},
		{name: "binary", input: obj{"path": "bin.dat"}, wantErr: []string{"cannot read bin.dat: it is a binary file", "text files only"}},
		{name: "control bytes", input: obj{"path": "ctl.txt"}, wantErr: []string{"binary"}},
		{name: "file as directory", input: obj{"path": "a.txt/x"}, wantErr: []string{"a.txt/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := call(t, env, "read", tt.input)
			if tt.wantErr != nil {
				wantErr(t, err, tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && res.Output != tt.want {
				t.Errorf("Output = %q, want %q", res.Output, tt.want)
			}
			for _, h := range tt.has {
				if !strings.Contains(res.Output, h) {
					t.Errorf("Output does not contain %q:\n%s", h, tail(res.Output))
				}
			}
			for k, v := range tt.meta {
				if fmt.Sprint(res.Metadata[k]) != fmt.Sprint(v) {
					t.Errorf("Metadata[%s] = %v, want %v", k, res.Metadata[k], v)
				}
			}
			if !strings.HasPrefix(res.Title, "Read ") || res.Changed != nil {
				t.Errorf("Title = %q, Changed = %v", res.Title, res.Changed)
			}
		})
	}
}

func tail(s string) string {
	if len(s) > 400 {
		return "…" + s[len(s)-400:]
	}
	return s
}

func TestReadOutputCap(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "%s %d\n", strings.Repeat("x", 90), i+1)
	}
	env := newEnv(t, map[string]string{"big.txt": b.String(), "one.txt": strings.Repeat("y", 1500) + "\n"})
	env.OutputCap = 10 << 10
	res := mustCall(t, env, "read", obj{"path": "big.txt"})
	if len(res.Output) > 10<<10+200 {
		t.Errorf("Output is %d bytes, over the cap", len(res.Output))
	}
	to, _ := res.Metadata["to"].(int)
	if to < 50 || to > 120 {
		t.Errorf("to = %d", to)
	}
	want := fmt.Sprintf("(lines 1-%d of 1000 shown (the output cap of 10240 bytes was reached); read again with offset=%d to continue)", to, to+1)
	if !strings.HasSuffix(res.Output, want) {
		t.Errorf("Output ends %q, want %q", tail(res.Output), want)
	}
	// One line over the cap is still shown.
	env.OutputCap = 100
	res = mustCall(t, env, "read", obj{"path": "one.txt"})
	if !strings.Contains(res.Output, "yyyy") {
		t.Errorf("Output = %q", res.Output)
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"a.txt": "old\n", "dir/": "", "real/target.txt": "t\n"})
	if err := os.Chmod(filepath.Join(env.Root, "a.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	symlink(t, "real/target.txt", filepath.Join(env.Root, "link.txt"))

	res := mustCall(t, env, "write", obj{"path": "new/deep/b.txt", "content": "x\ny\n"})
	if got := readString(t, filepath.Join(env.Root, "new/deep/b.txt")); got != "x\ny\n" {
		t.Errorf("content = %q", got)
	}
	if res.Title != "Write new/deep/b.txt" || res.Output != "Created new/deep/b.txt (2 lines, 4 bytes)." ||
		len(res.Changed) != 1 || res.Changed[0] != "new/deep/b.txt" || res.Metadata["created"] != true {
		t.Errorf("res = %+v", res)
	}

	res = mustCall(t, env, "write", obj{"path": "a.txt", "content": "new"})
	if got := readString(t, filepath.Join(env.Root, "a.txt")); got != "new" {
		t.Errorf("content = %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(env.Root, "a.txt")); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600 kept", fi.Mode())
	}
	if res.Output != "Wrote a.txt (1 lines, 3 bytes)." || res.Metadata["created"] != false {
		t.Errorf("res = %+v", res)
	}

	mustCall(t, env, "write", obj{"path": "empty.txt", "content": ""})
	if got := readString(t, filepath.Join(env.Root, "empty.txt")); got != "" {
		t.Errorf("content = %q", got)
	}

	// A write through a link inside the workspace changes the target.
	res = mustCall(t, env, "write", obj{"path": "link.txt", "content": "via link"})
	if got := readString(t, filepath.Join(env.Root, "real/target.txt")); got != "via link" {
		t.Errorf("target = %q", got)
	}
	if len(res.Changed) != 1 || res.Changed[0] != "real/target.txt" {
		t.Errorf("Changed = %v, want the link's target", res.Changed)
	}

	// From a subdirectory.
	sub := &Env{Root: env.Root, Dir: filepath.Join(env.Root, "dir")}
	res = mustCall(t, sub, "write", obj{"path": "../top.txt", "content": "t"})
	if res.Changed[0] != "top.txt" || res.Title != "Write ../top.txt" {
		t.Errorf("res = %+v", res)
	}

	_, err := call(t, env, "write", obj{"path": "dir", "content": "x"})
	wantErr(t, err, "cannot write dir: it is a directory")
	_, err = call(t, env, "write", obj{"path": "a.txt/x", "content": "x"})
	wantErr(t, err, "a.txt/x")
	_, err = call(t, env, "write", obj{"path": "", "content": "x"})
	wantErr(t, err, "path is empty")
}

func TestEdit(t *testing.T) {
	t.Parallel()
	const src = "package main\n\nfunc a() {\n\treturn\n}\n\nfunc b() {\n\treturn\n}\n"
	tests := []struct {
		name    string
		files   map[string]string
		input   obj
		path    string // file to check; default a.go
		want    string // its content after
		output  []string
		meta    obj
		wantErr []string
	}{
		{
			name:   "unique",
			input:  obj{"path": "a.go", "old_string": "func a() {\n\treturn", "new_string": "func a() {\n\tprintln()\n\treturn"},
			want:   "package main\n\nfunc a() {\n\tprintln()\n\treturn\n}\n\nfunc b() {\n\treturn\n}\n",
			output: []string{"Edited a.go: replaced 1 occurrence. The result:\n", "     3\tfunc a() {\n     4\t\tprintln()\n     5\t\treturn\n"},
			meta:   obj{"replacements": 1, "additions": 1, "deletions": 0, "created": false},
		},
		{
			name:    "not found",
			input:   obj{"path": "a.go", "old_string": "func c()", "new_string": "func d()"},
			wantErr: []string{"old_string not found in a.go; read the file again and copy the text exactly"},
		},
		{
			name:    "indentation differs",
			input:   obj{"path": "a.go", "old_string": "    return", "new_string": "x"},
			wantErr: []string{"old_string not found in a.go"},
		},
		{
			name:    "ambiguous",
			input:   obj{"path": "a.go", "old_string": "\treturn\n", "new_string": "\treturn nil\n"},
			wantErr: []string{"old_string occurs 2 times in a.go (at lines 4, 8); include more surrounding lines to make it unique, or set replace_all"},
		},
		{
			name:   "replace all",
			input:  obj{"path": "a.go", "old_string": "return", "new_string": "return nil", "replace_all": true},
			want:   strings.ReplaceAll(src, "return", "return nil"),
			output: []string{"Edited a.go: replaced 2 occurrences."},
			meta:   obj{"replacements": 2, "additions": 2, "deletions": 2},
		},
		{
			name:   "replace all with one occurrence",
			input:  obj{"path": "a.go", "old_string": "package main", "new_string": "package x", "replace_all": true},
			want:   strings.Replace(src, "package main", "package x", 1),
			output: []string{"replaced 1 occurrence"},
		},
		{
			name:   "delete",
			input:  obj{"path": "a.go", "old_string": "\nfunc b() {\n\treturn\n}\n", "new_string": ""},
			want:   "package main\n\nfunc a() {\n\treturn\n}\n",
			output: []string{"replaced 1 occurrence"},
			meta:   obj{"deletions": 4},
		},
		{
			name:    "same strings",
			input:   obj{"path": "a.go", "old_string": "x", "new_string": "x"},
			wantErr: []string{"old_string and new_string are the same"},
		},
		{
			name:   "create",
			input:  obj{"path": "new/b.go", "old_string": "", "new_string": "package b\n"},
			path:   "new/b.go",
			want:   "package b\n",
			output: []string{"Created new/b.go (1 lines)."},
			meta:   obj{"created": true},
		},
		{
			name:   "fill an empty file",
			files:  map[string]string{"e.txt": ""},
			input:  obj{"path": "e.txt", "old_string": "", "new_string": "hi\n"},
			path:   "e.txt",
			want:   "hi\n",
			output: []string{"Wrote e.txt, which was empty (1 lines)."},
		},
		{
			name:    "empty old_string on a file",
			input:   obj{"path": "a.go", "old_string": "", "new_string": "x"},
			wantErr: []string{"old_string is empty, but the file exists", "use write"},
		},
		{
			name:    "missing file",
			input:   obj{"path": "nope.go", "old_string": "a", "new_string": "b"},
			wantErr: []string{"cannot edit nope.go: it does not exist", "empty old_string"},
		},
		{
			name:  "crlf file",
			files: map[string]string{"w.txt": "one\r\ntwo\r\nthree\r\n"},
			input: obj{"path": "w.txt", "old_string": "one\ntwo\n", "new_string": "1\n2\n"},
			path:  "w.txt",
			want:  "1\r\n2\r\nthree\r\n",
		},
		{
			name:    "binary",
			files:   map[string]string{"b.bin": "a\x00b"},
			input:   obj{"path": "b.bin", "old_string": "a", "new_string": "c"},
			wantErr: []string{"cannot edit b.bin: it is a binary file"},
		},
		{
			name:    "directory",
			files:   map[string]string{"d/": ""},
			input:   obj{"path": "d", "old_string": "a", "new_string": "c"},
			wantErr: []string{"cannot edit d: it is a directory"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{"a.go": src}
			for k, v := range tt.files {
				files[k] = v
			}
			env := newEnv(t, files)
			res, err := call(t, env, "edit", tt.input)
			if tt.wantErr != nil {
				wantErr(t, err, tt.wantErr...)
				if got := readString(t, filepath.Join(env.Root, "a.go")); got != src {
					t.Errorf("a.go changed by a failed edit: %q", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := tt.path
			if p == "" {
				p = "a.go"
			}
			if got := readString(t, filepath.Join(env.Root, p)); got != tt.want {
				t.Errorf("%s = %q, want %q", p, got, tt.want)
			}
			if len(res.Changed) != 1 || res.Changed[0] != p || res.Title != "Edit "+p {
				t.Errorf("Changed = %v, Title = %q", res.Changed, res.Title)
			}
			for _, o := range tt.output {
				if !strings.Contains(res.Output, o) {
					t.Errorf("Output %q does not contain %q", res.Output, o)
				}
			}
			for k, v := range tt.meta {
				if fmt.Sprint(res.Metadata[k]) != fmt.Sprint(v) {
					t.Errorf("Metadata[%s] = %v, want %v", k, res.Metadata[k], v)
				}
			}
			if d, _ := res.Metadata["diff"].(string); !strings.Contains(d, "+++ b/"+p) {
				t.Errorf("diff = %q", d)
			}
		})
	}
}

func TestEditKeepsMode(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"run.sh": "echo a\n"})
	p := filepath.Join(env.Root, "run.sh")
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	mustCall(t, env, "edit", obj{"path": "run.sh", "old_string": "a", "new_string": "b"})
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode = %v", fi.Mode())
	}
}

func TestOccurrenceLines(t *testing.T) {
	t.Parallel()
	s := strings.Repeat("x\n", 12)
	if got := occurrenceLines(s, "x", 10); got != "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, …" {
		t.Errorf("got %q", got)
	}
	if got := occurrenceLines("a\nb\nab\n", "a\nb", 10); got != "1" {
		t.Errorf("got %q", got)
	}
}

func TestNamedPipe(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"d/a.txt": "needle\n"})
	if err := syscall.Mkfifo(filepath.Join(env.Root, "d/pipe"), 0o644); err != nil {
		t.Skip("no named pipes:", err)
	}
	_, err := call(t, env, "read", obj{"path": "d/pipe"})
	wantErr(t, err, "cannot read d/pipe: it is not a regular file")
	_, err = call(t, env, "edit", obj{"path": "d/pipe", "old_string": "a", "new_string": "b"})
	wantErr(t, err, "cannot edit d/pipe: it is not a regular file")
	_, err = call(t, env, "write", obj{"path": "d/pipe", "content": "x"})
	wantErr(t, err, "cannot write d/pipe: it is not a regular file")
	_, err = call(t, env, "grep", obj{"pattern": "x", "path": "d/pipe"})
	wantErr(t, err, "cannot search d/pipe: it is not a regular file")
	if res := mustCall(t, env, "grep", obj{"pattern": "needle"}); res.Output != "d/a.txt:1: needle" {
		t.Errorf("grep Output = %q", res.Output)
	}
	if res := mustCall(t, env, "glob", obj{"pattern": "d/*"}); res.Output != "d/a.txt" {
		t.Errorf("glob Output = %q", res.Output)
	}
}
