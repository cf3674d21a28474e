package tools

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// confinedEnv is a workspace next to an outside directory, with links of
// every kind:
//
//	outside/secret.txt         SECRET
//	ws/inside.txt              inside
//	ws/sub/deep.txt            deep
//	ws/link_in.txt   -> inside.txt          (stays inside)
//	ws/sub/up.txt    -> ../inside.txt       (stays inside)
//	ws/linkdir_in    -> sub                 (stays inside)
//	ws/outdir        -> ../outside          (leads out)
//	ws/outfile.txt   -> ../outside/secret.txt
//	ws/absfile.txt   -> <abs>/ws/inside.txt (absolute: refused by os.Root)
//	ws/gitlink       -> .git
//	ws/gitcfg        -> .git/config
//	ws/.git/config
func confinedEnv(t *testing.T) (env *Env, outside string) {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	outside = filepath.Join(base, "outside")
	root := filepath.Join(base, "ws")
	writeFiles(t, outside, map[string]string{"secret.txt": "SECRET\n"})
	writeFiles(t, root, map[string]string{
		"inside.txt":   "inside\n",
		"sub/deep.txt": "deep\n",
		".git/config":  "[core] SECRET\n",
	})
	symlink(t, "inside.txt", filepath.Join(root, "link_in.txt"))
	symlink(t, "../inside.txt", filepath.Join(root, "sub/up.txt"))
	symlink(t, "sub", filepath.Join(root, "linkdir_in"))
	symlink(t, "../outside", filepath.Join(root, "outdir"))
	symlink(t, "../outside/secret.txt", filepath.Join(root, "outfile.txt"))
	symlink(t, filepath.Join(root, "inside.txt"), filepath.Join(root, "absfile.txt"))
	symlink(t, ".git", filepath.Join(root, "gitlink"))
	symlink(t, ".git/config", filepath.Join(root, "gitcfg"))
	return &Env{Root: root, Dir: root}, outside
}

func TestConfinement(t *testing.T) {
	t.Parallel()
	env, outside := confinedEnv(t)
	secret := filepath.Join(outside, "secret.txt")
	const escaped = "outside the workspace"
	const viaLink = "symbolic link that leads outside the workspace"
	tests := []struct {
		tool    string
		input   obj
		wantErr string // "" means success
		has     string // in Output on success
		lacks   string // not in Output on success
	}{
		// read
		{tool: "read", input: obj{"path": "../outside/secret.txt"}, wantErr: escaped},
		{tool: "read", input: obj{"path": "sub/../../outside/secret.txt"}, wantErr: escaped},
		{tool: "read", input: obj{"path": secret}, wantErr: escaped},
		{tool: "read", input: obj{"path": "/etc/passwd"}, wantErr: escaped},
		{tool: "read", input: obj{"path": "outdir/secret.txt"}, wantErr: viaLink},
		{tool: "read", input: obj{"path": "outfile.txt"}, wantErr: viaLink},
		{tool: "read", input: obj{"path": "absfile.txt"}, wantErr: viaLink},
		{tool: "read", input: obj{"path": "link_in.txt"}, has: "inside"},
		{tool: "read", input: obj{"path": "sub/up.txt"}, has: "inside"},
		{tool: "read", input: obj{"path": "linkdir_in/deep.txt"}, has: "deep"},
		{tool: "read", input: obj{"path": ".git/config"}, wantErr: "inside .git/"}, // .git/config may hold credentials
		{tool: "read", input: obj{"path": "gitlink/config"}, wantErr: "symbolic link into .git/"},
		{tool: "read", input: obj{"path": "gitcfg"}, wantErr: "symbolic link into .git/"},
		// write
		{tool: "write", input: obj{"path": "../outside/new.txt", "content": "x"}, wantErr: escaped},
		{tool: "write", input: obj{"path": filepath.Join(outside, "new.txt"), "content": "x"}, wantErr: escaped},
		{tool: "write", input: obj{"path": "outdir/new.txt", "content": "x"}, wantErr: viaLink},
		{tool: "write", input: obj{"path": "outdir/deep/new.txt", "content": "x"}, wantErr: viaLink},
		{tool: "write", input: obj{"path": "outfile.txt", "content": "x"}, wantErr: viaLink},
		{tool: "write", input: obj{"path": ".git/config", "content": "x"}, wantErr: "inside .git"},
		{tool: "write", input: obj{"path": "sub/.git/HEAD", "content": "x"}, wantErr: "inside .git"},
		{tool: "write", input: obj{"path": "gitlink/config", "content": "x"}, wantErr: "symbolic link into .git"},
		{tool: "write", input: obj{"path": "gitlink/hooks/pre-commit", "content": "x"}, wantErr: "symbolic link into .git"},
		// edit
		{tool: "edit", input: obj{"path": "../outside/secret.txt", "old_string": "SECRET", "new_string": "x"}, wantErr: escaped},
		{tool: "edit", input: obj{"path": secret, "old_string": "SECRET", "new_string": "x"}, wantErr: escaped},
		{tool: "edit", input: obj{"path": "outfile.txt", "old_string": "SECRET", "new_string": "x"}, wantErr: viaLink},
		{tool: "edit", input: obj{"path": "outdir/secret.txt", "old_string": "SECRET", "new_string": "x"}, wantErr: viaLink},
		{tool: "edit", input: obj{"path": "outdir/new.txt", "old_string": "", "new_string": "x"}, wantErr: viaLink},
		{tool: "edit", input: obj{"path": ".git/config", "old_string": "SECRET", "new_string": "x"}, wantErr: "inside .git"},
		{tool: "edit", input: obj{"path": "gitcfg", "old_string": "SECRET", "new_string": "x"}, wantErr: "symbolic link into .git/"},
		// list
		{tool: "list", input: obj{"path": ".."}, wantErr: escaped},
		{tool: "list", input: obj{"path": outside}, wantErr: escaped},
		{tool: "list", input: obj{"path": "outdir"}, wantErr: viaLink},
		{tool: "list", input: obj{}, has: "outdir -> ../outside\n", lacks: "  secret.txt"}, // a link is shown, not followed
		{tool: "list", input: obj{"path": "linkdir_in"}, has: "deep.txt"},
		{tool: "list", input: obj{"path": "gitlink"}, wantErr: "symbolic link into .git/"},
		{tool: "list", input: obj{"path": ".git"}, wantErr: "inside .git/"},
		// glob
		{tool: "glob", input: obj{"pattern": "**/*", "path": ".."}, wantErr: escaped},
		{tool: "glob", input: obj{"pattern": "*", "path": outside}, wantErr: escaped},
		{tool: "glob", input: obj{"pattern": "*", "path": "outdir"}, wantErr: viaLink},
		{tool: "glob", input: obj{"pattern": "../outside/*"}, wantErr: `contains ".."`},
		{tool: "glob", input: obj{"pattern": outside + "/*"}, wantErr: "is absolute"},
		{tool: "glob", input: obj{"pattern": "**/*.txt"}, has: "link_in.txt", lacks: "secret"},
		{tool: "glob", input: obj{"pattern": "outdir/*"}, has: "No files match"},
		{tool: "glob", input: obj{"pattern": "*file.txt"}, has: "No files match"}, // outfile.txt and absfile.txt lead nowhere readable
		{tool: "glob", input: obj{"pattern": "gitlink/*"}, has: "No files match"},
		{tool: "glob", input: obj{"pattern": "git*"}, has: "No files match"}, // gitcfg leads into .git
		{tool: "glob", input: obj{"pattern": "*", "path": "gitlink"}, wantErr: "symbolic link into .git/"},
		// grep
		{tool: "grep", input: obj{"pattern": "SECRET", "path": ".."}, wantErr: escaped},
		{tool: "grep", input: obj{"pattern": "SECRET", "path": secret}, wantErr: escaped},
		{tool: "grep", input: obj{"pattern": "SECRET", "path": "outdir"}, wantErr: viaLink},
		{tool: "grep", input: obj{"pattern": "SECRET", "path": "outfile.txt"}, wantErr: viaLink},
		{tool: "grep", input: obj{"pattern": "SECRET"}, has: "No matches"},
		{tool: "grep", input: obj{"pattern": "inside"}, has: "link_in.txt:1: inside"},
		{tool: "grep", input: obj{"pattern": "core"}, has: "No matches"}, // gitcfg is not followed into .git
		{tool: "grep", input: obj{"pattern": "core", "path": "gitcfg"}, wantErr: "symbolic link into .git/"},
		{tool: "grep", input: obj{"pattern": "core", "path": "gitlink"}, wantErr: "symbolic link into .git/"},
	}
	for _, tt := range tests {
		t.Run(tt.tool+" "+label(tt.input), func(t *testing.T) {
			res, err := call(t, env, tt.tool, tt.input)
			if tt.wantErr != "" {
				wantErr(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(res.Output, tt.has) {
				t.Errorf("Output does not contain %q:\n%s", tt.has, res.Output)
			}
			if tt.lacks != "" && strings.Contains(res.Output, tt.lacks) {
				t.Errorf("Output contains %q:\n%s", tt.lacks, res.Output)
			}
		})
	}

	// Nothing outside changed, nothing was created there, and .git is as it was.
	if got := readString(t, secret); got != "SECRET\n" {
		t.Errorf("secret.txt = %q", got)
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 1 {
		t.Errorf("outside holds %d entries, want 1", len(ents))
	}
	if got := readString(t, filepath.Join(env.Root, ".git/config")); got != "[core] SECRET\n" {
		t.Errorf(".git/config = %q", got)
	}
	if _, err := os.Stat(filepath.Join(env.Root, ".git/hooks")); err == nil {
		t.Error(".git/hooks was created")
	}
}

// A session directory below the root: relative paths start there, and
// ".." may climb up to the root but not above it.
func TestConfinementFromSubdir(t *testing.T) {
	t.Parallel()
	env, _ := confinedEnv(t)
	sub := &Env{Root: env.Root, Dir: filepath.Join(env.Root, "sub")}
	res := mustCall(t, sub, "read", obj{"path": "../inside.txt"})
	if !strings.Contains(res.Output, "inside") || res.Title != "Read ../inside.txt" {
		t.Errorf("res = %+v", res)
	}
	mustCall(t, sub, "read", obj{"path": "deep.txt"})
	_, err := call(t, sub, "read", obj{"path": "../../outside/secret.txt"})
	wantErr(t, err, "outside the workspace")
	res = mustCall(t, sub, "glob", obj{"pattern": "*.txt", "path": ".."})
	if !strings.Contains(res.Output, "../inside.txt") {
		t.Errorf("glob Output = %q", res.Output)
	}
}

func label(o obj) string {
	var b strings.Builder
	for _, k := range []string{"tool", "path", "pattern", "old_string"} {
		if v, ok := o[k]; ok {
			b.WriteString(k + "=" + v.(string) + " ")
		}
	}
	return strings.TrimSpace(b.String())
}
