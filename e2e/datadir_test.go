package e2e

// The data dir holds the store, the sessions and the log: sessiond uses
// only one that belongs to the user running it, and never writes through
// a symbolic link planted in it.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDataDirLogSymlinkNotFollowed: a sessiond.log that is a symbolic link
// (here to a file outside the data dir) is refused with a message naming
// it and the fix, by the daemon, a standalone connection and a verb that
// auto-starts the daemon; the link's target is never written.
func TestDataDirLogSymlinkNotFollowed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"serve", []string{"serve", "--idle-timeout", "1s"}},
		{"standalone", []string{"stdio", "--standalone"}},
		{"auto-start", []string{"ls"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			target := filepath.Join(s.dir("elsewhere"), "precious.txt")
			tmWriteFile(t, target, "precious\n", 0o644)
			if err := os.MkdirAll(s.data, 0o700); err != nil {
				t.Fatal(err)
			}
			logPath := filepath.Join(s.data, "sessiond.log")
			if err := os.Symlink(target, logPath); err != nil {
				t.Fatal(err)
			}
			_, stderr, code := s.runEnv(s.env, s.dir("ws"), tt.args...)
			if code == 0 {
				t.Fatalf("sessiond %s succeeded with a symlinked log; stderr:\n%s", strings.Join(tt.args, " "), stderr)
			}
			for _, want := range []string{"sessiond.log", "symbolic link", "remove"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, stderr)
				}
			}
			if b, err := os.ReadFile(target); err != nil || string(b) != "precious\n" {
				t.Errorf("the link's target now holds %q (%v)", b, err)
			}
			if fi, err := os.Lstat(logPath); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("the link was replaced or removed: %v %v", fi, err)
			}
		})
	}
}

// TestDataDirOwnedByAnotherUser: a data dir that belongs to another user
// is refused before anything is written in it, with a message naming the
// owner and what to do, by the daemon and by a verb that would start it.
// It needs a second uid, so it runs as root only (the dir is given to
// nobody, uid 65534).
func TestDataDirOwnedByAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give the data dir to another user (uid 65534)")
	}
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"serve", []string{"serve", "--idle-timeout", "1s"}},
		{"standalone", []string{"stdio", "--standalone"}},
		{"auto-start", []string{"ls"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			if err := os.MkdirAll(s.data, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(s.data, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			_, stderr, code := s.runEnv(s.env, s.dir("ws"), tt.args...)
			if code == 0 {
				t.Fatalf("sessiond %s succeeded in another user's data dir; stderr:\n%s", strings.Join(tt.args, " "), stderr)
			}
			for _, want := range []string{s.data, "uid 65534", "--data-dir"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, stderr)
				}
			}
			ents, err := os.ReadDir(s.data)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 0 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("sessiond wrote into the other user's data dir: %v", names)
			}
		})
	}
}
