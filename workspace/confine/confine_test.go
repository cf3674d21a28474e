package confine

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// world is a workspace next to an outside directory:
//
//	outside/secret.txt
//	ws/a.txt, ws/sub/b.txt, ws/.git/config, ws/sub/.git/HEAD
//	ws/in      -> sub              ws/inf   -> a.txt
//	ws/linkgit -> .git             ws/cfg   -> .git/config
//	ws/sub/hk  -> ../.git/hooks    ws/viasub -> sub/../.git
//	ws/out     -> ../outside       ws/abs   -> <ws>/a.txt
//	ws/sub/up  -> ../..            ws/loop1 -> loop2 -> loop1
func world(t *testing.T) (ws, outside string) {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ws, outside = filepath.Join(base, "ws"), filepath.Join(base, "outside")
	for name, content := range map[string]string{
		filepath.Join(outside, "secret.txt"):     "secret",
		filepath.Join(ws, "a.txt"):               "a",
		filepath.Join(ws, "sub", "b.txt"):        "b",
		filepath.Join(ws, ".git", "config"):      "[core]",
		filepath.Join(ws, "sub", ".git", "HEAD"): "ref",
	} {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"in": "sub", "inf": "a.txt", "linkgit": ".git", "cfg": ".git/config",
		"sub/hk": "../.git/hooks", "viasub": "sub/../.git", "out": "../outside",
		"abs": filepath.Join(ws, "a.txt"), "sub/up": "../..", "loop1": "loop2", "loop2": "loop1",
	} {
		if err := os.Symlink(target, filepath.Join(ws, link)); err != nil {
			t.Fatal(err)
		}
	}
	return ws, outside
}

func TestCheck(t *testing.T) {
	t.Parallel()
	ws, outside := world(t)
	r, err := Open(ws, filepath.Join(ws, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tests := []struct {
		path      string
		rel, real string // on success
		err       error  // the reason refused
		msg       string // in the message
	}{
		{path: "b.txt", rel: "sub/b.txt", real: "sub/b.txt"},
		{path: "../a.txt", rel: "a.txt", real: "a.txt"},
		{path: "../in/b.txt", rel: "in/b.txt", real: "sub/b.txt"},
		{path: "../inf", rel: "inf", real: "a.txt"},
		{path: "../in/new/dir/f", rel: "in/new/dir/f", real: "sub/new/dir/f"},
		{path: filepath.Join(ws, "a.txt"), rel: "a.txt", real: "a.txt"},
		{path: "..", rel: ".", real: "."},
		{path: "../../x", err: ErrOutside, msg: `climbs above the workspace root`},
		{path: filepath.Join(outside, "secret.txt"), err: ErrOutside, msg: "is outside the workspace " + ws},
		{path: "/etc/passwd", err: ErrOutside},
		{path: "../out/secret.txt", err: ErrEscapes, msg: "symbolic link that leads outside the workspace"},
		{path: "../out/new.txt", err: ErrEscapes},
		{path: "up/outside/secret.txt", err: ErrEscapes},
		{path: "../abs", err: ErrEscapes},
		{path: "../.git/config", err: ErrGit, msg: "is inside .git/"},
		{path: ".git/HEAD", err: ErrGit},
		{path: "../linkgit/config", err: ErrGit, msg: "resolves through a symbolic link into .git/ (.git/config), which sessiond never writes"},
		{path: "../linkgit/hooks/new", err: ErrGit},
		{path: "../cfg", err: ErrGit},
		{path: "hk/pre-commit", err: ErrGit},
		{path: "../viasub/config", err: ErrGit},
		{path: "../in/.git/HEAD", err: ErrGit},
		{path: "../in/../linkgit/x", err: ErrGit},
		{path: "../loop1", err: syscall.ELOOP, msg: "too many levels"},
		{path: "a\x00b", err: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rel, real, err := r.Check(tt.path, "write", Write)
			if tt.err == nil {
				if err != nil || rel != tt.rel || real != tt.real {
					t.Fatalf("Check = %q, %q, %v; want %q, %q", rel, real, err, tt.rel, tt.real)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || !errors.Is(err, tt.err) {
				t.Fatalf("Check = %q, %q, %v; want an *Error for %v", rel, real, err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "cannot write") {
				t.Errorf("message %q does not say %q", err, tt.msg)
			}
		})
	}
}

// The resolver must agree with the kernel wherever a path exists: for
// every link of the world that stays inside, Check's real path is what
// filepath.EvalSymlinks finds.
func TestCheckAgreesWithTheKernel(t *testing.T) {
	t.Parallel()
	ws, _ := world(t)
	r, err := Open(ws, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, p := range []string{"in/b.txt", "inf", "in", "sub/up/ws/a.txt"} {
		_, real, err := r.Check(p, "read", Read)
		if p == "sub/up/ws/a.txt" {
			// The kernel would come back in through the parent; a path
			// that leaves the workspace on its way is refused all the
			// same, as os.Root does.
			if !errors.Is(err, ErrEscapes) {
				t.Errorf("Check(%s) = %q, %v; want ErrEscapes", p, real, err)
			}
			continue
		}
		want, kerr := filepath.EvalSymlinks(filepath.Join(ws, p))
		if err != nil || kerr != nil || filepath.Join(ws, real) != want {
			t.Errorf("Check(%s) = %q, %v; the kernel says %q, %v", p, real, err, want, kerr)
		}
	}
}

func TestReadWriteFile(t *testing.T) {
	t.Parallel()
	ws, _ := world(t)
	r, err := Open(ws, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if b, err := r.ReadFile("inf", "read", 1<<20); err != nil || string(b) != "a" {
		t.Errorf("ReadFile(inf) = %q, %v", b, err)
	}
	if b, err := r.ReadFile("a.txt", "read", 0); err != nil || len(b) != 0 {
		t.Errorf("ReadFile with limit 0 = %q, %v", b, err)
	}
	if _, err := r.ReadFile("cfg", "read", 1<<20); !errors.Is(err, ErrGit) || !strings.Contains(err.Error(), "never reads") {
		t.Errorf("ReadFile(cfg) = %v; want ErrGit saying sessiond never reads .git", err)
	}
	if _, err := r.ReadFile("sub", "read", 1<<20); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ReadFile(sub) = %v", err)
	}
	real, err := r.WriteFile("in/new/f.txt", "write", []byte("new"))
	if err != nil || real != "sub/new/f.txt" {
		t.Fatalf("WriteFile(in/new/f.txt) = %q, %v", real, err)
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "sub", "new", "f.txt")); string(b) != "new" {
		t.Errorf("the write reached %q", b)
	}
	for _, p := range []string{"linkgit/config", "cfg", "linkgit/hooks/pre-commit"} {
		if _, err := r.WriteFile(p, "write", []byte("x")); !errors.Is(err, ErrGit) {
			t.Errorf("WriteFile(%s) = %v; want ErrGit", p, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(ws, ".git", "config")); string(b) != "[core]" {
		t.Errorf(".git/config = %q", b)
	}
	if _, err := os.Stat(filepath.Join(ws, ".git", "hooks")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf(".git/hooks was created: %v", err)
	}
	if _, err := r.WriteFile(".", "write", []byte("x")); err == nil || !strings.Contains(err.Error(), "workspace root") {
		t.Errorf("WriteFile(.) = %v", err)
	}
}

// FS resolves every name of a walk, hides .git, and refuses names that
// lead into it or out.
func TestFS(t *testing.T) {
	t.Parallel()
	ws, _ := world(t)
	r, err := Open(ws, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f := r.FS(".")
	var files []string
	err = fs.WalkDir(f, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if _, err := f.ReadFile(p); err == nil {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(files, " "); got != "a.txt inf sub/b.txt" {
		t.Errorf("readable files = %s; want a.txt inf sub/b.txt", got)
	}
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"cfg", ErrGit}, {"linkgit", ErrGit}, {"linkgit/config", ErrGit}, {"sub/hk", ErrGit},
		{".git/config", ErrGit}, {"out/secret.txt", ErrEscapes}, {"abs", ErrEscapes},
	} {
		if _, err := f.Open(tt.name); !errors.Is(err, tt.err) {
			t.Errorf("Open(%s) = %v; want %v", tt.name, err, tt.err)
		}
	}
	sub := r.FS("in")
	if b, err := sub.ReadFile("b.txt"); err != nil || string(b) != "b" {
		t.Errorf("FS(in).ReadFile(b.txt) = %q, %v", b, err)
	}
	if _, err := sub.Open(".git/HEAD"); !errors.Is(err, ErrGit) {
		t.Errorf("FS(in).Open(.git/HEAD) = %v", err)
	}
	if ents, err := sub.ReadDir("."); err != nil || len(ents) != 3 { // b.txt, hk, up
		t.Errorf("FS(in).ReadDir(.) = %v, %v", ents, err)
	}
}
