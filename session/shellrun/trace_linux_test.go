//go:build linux

package shellrun

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sessiond/sessiond/session/shellrun/writetrace"
)

// helperEnv makes the test binary, run as a command, do one thing and
// exit (see TestHelperProcess).
const helperEnv = "SHELLRUN_TEST_HELPER"

// TestHelperProcess is not a test: it is what the test binary does when a
// traced command runs it.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "":
		t.Skip("a helper for other tests")
	case "io_uring":
		// Asking for a ring is enough: the tracer sees the call whether
		// the kernel then allows io_uring or not.
		var params [120]byte
		unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&params)), 0)
		fmt.Println("asked for io_uring")
	case "calls":
		// Calls a shell does not make: openat2, and ones relative to a
		// directory fd or on an fd alone.
		must := func(err error) {
			if err != nil {
				fmt.Println("error:", err)
				os.Exit(1)
			}
		}
		fd, err := unix.Openat2(unix.AT_FDCWD, "r.txt", &unix.OpenHow{Flags: unix.O_RDONLY})
		must(err)
		unix.Close(fd)
		fd, err = unix.Openat2(unix.AT_FDCWD, "w.txt", &unix.OpenHow{Flags: unix.O_WRONLY | unix.O_CREAT, Mode: 0o644})
		must(err)
		unix.Close(fd)
		fd, err = unix.Open("m.txt", unix.O_RDONLY, 0)
		must(err)
		must(unix.Fchmod(fd, 0o600))
		unix.Close(fd)
		dir, err := unix.Open("sub", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		must(err)
		must(unix.Renameat(dir, "a", dir, "b"))
		must(unix.Mkdirat(dir, "d", 0o755))
		must(unix.UtimesNanoAt(dir, "t.txt", nil, 0))
		fmt.Println("made the calls")
	case "nested":
		// A traced Run inside a traced command.
		dir, _ := os.Getwd()
		res, err := Run(t.Context(), Options{Dir: dir, Shell: "/bin/sh", Command: "echo inner > inner.txt", TraceWrites: true})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		b, _ := json.Marshal(res.Writes)
		fmt.Printf("%s\n", b)
	}
	os.Exit(0)
}

// traced runs command traced in dir and returns the report, which must be
// available, with its paths relative to dir ("/abs" for the others).
func traced(t *testing.T, dir, command string) (Result, []writetrace.Write) {
	t.Helper()
	res := run(t, t.Context(), Options{Dir: dir, Command: command, TraceWrites: true})
	if res.Writes == nil || !res.Writes.Available {
		t.Fatalf("Writes = %+v, want an available report (output %q)", res.Writes, res.Output)
	}
	return res, relative(t, dir, res.Writes.Writes)
}

func relative(t *testing.T, dir string, ws []writetrace.Write) []writetrace.Write {
	t.Helper()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := []writetrace.Write{}
	for _, w := range ws {
		if rel, err := filepath.Rel(real, w.Path); err == nil && !strings.HasPrefix(rel, "..") {
			w.Path = rel
		}
		out = append(out, w)
	}
	return out
}

func TestTraceWrites(t *testing.T) {
	t.Parallel()
	needTracing(t)
	w := func(path string) writetrace.Write { return writetrace.Write{Path: path} }
	tree := func(path string) writetrace.Write { return writetrace.Write{Path: path, Tree: true} }
	tests := []struct {
		name    string
		setup   string // a command run untraced first
		command string
		want    []writetrace.Write
	}{
		{name: "create", command: "echo hi > f.txt", want: []writetrace.Write{w("f.txt")}},
		{name: "append", setup: "echo a > f.txt", command: "echo b >> f.txt", want: []writetrace.Write{w("f.txt")}},
		{name: "relative after cd", setup: "mkdir sub", command: "cd sub && echo hi > g.txt", want: []writetrace.Write{w("sub/g.txt")}},
		{name: "absolute", setup: "mkdir sub", command: `echo hi > "$PWD/sub/abs.txt"`, want: []writetrace.Write{w("sub/abs.txt")}},
		{name: "mv", setup: "mkdir a && echo x > a/f", command: "mv a b", want: []writetrace.Write{tree("a"), tree("b")}},
		{name: "rm", setup: "echo x > f", command: "rm f", want: []writetrace.Write{w("f")}},
		{name: "rm -r", setup: "mkdir -p d/e && echo x > d/e/f", command: "rm -r d", want: []writetrace.Write{w("d"), w("d/e"), w("d/e/f")}},
		{name: "mkdir -p", command: "mkdir -p x/y/z", want: []writetrace.Write{w("x"), w("x/y"), w("x/y/z")}},
		{name: "ln -s", command: "ln -s target link", want: []writetrace.Write{w("link")}},
		{name: "ln", setup: "echo x > f", command: "ln f hard", want: []writetrace.Write{w("hard")}},
		{name: "chmod", setup: "echo x > f", command: "chmod 600 f", want: []writetrace.Write{w("f")}},
		{name: "touch existing", setup: "echo x > f", command: "touch f", want: []writetrace.Write{w("f")}},
		{name: "grandchild", command: `sh -c 'sh -c "echo x > f"'`, want: []writetrace.Write{w("f")}},
		{name: "background child", command: "(echo x > bg.txt) & wait", want: []writetrace.Write{w("bg.txt")}},
		{name: "dot-dot", setup: "mkdir d", command: "echo x > d/../e.txt", want: []writetrace.Write{w("e.txt")}},
		// The kernel resolves l before "..": l/.. is sub, not the top.
		{name: "dot-dot after symlink", setup: "mkdir -p sub/deep && ln -s sub/deep l", command: "echo x > l/../y.txt", want: []writetrace.Write{w("sub/y.txt")}},
		{name: "failed write is still named", command: "(echo x > nodir/f) 2>&1; true", want: []writetrace.Write{w("nodir/f")}},
		{name: "read-only", setup: "mkdir -p d/e && echo x > d/e/f && echo y > g", command: "cat g d/e/f; ls -la d; find . -type f; wc -c g < g; head -c 1 g", want: []writetrace.Write{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if tt.setup != "" {
				if res := run(t, t.Context(), Options{Dir: dir, Command: tt.setup}); res.ExitCode != 0 {
					t.Fatalf("setup: %q", res.Output)
				}
			}
			res, got := traced(t, dir, tt.command)
			if res.ExitCode != 0 {
				t.Errorf("ExitCode = %d, output %q", res.ExitCode, res.Output)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Writes = %+v\nwant     %+v", got, tt.want)
			}
		})
	}
}

// A file another process writes while the command runs is not the
// command's.
func TestTraceIgnoresOtherProcesses(t *testing.T) {
	t.Parallel()
	needTracing(t)
	dir := t.TempDir()
	for _, fifo := range []string{"ready.fifo", "go.fifo"} {
		if err := syscall.Mkfifo(filepath.Join(dir, fifo), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	other := make(chan error, 1)
	go func() {
		// Wait until the command runs, write a file from a process
		// outside its tree (an editor, say), then let the command go on.
		ready, err := os.ReadFile(filepath.Join(dir, "ready.fifo"))
		if err == nil && string(ready) != "ready\n" {
			err = fmt.Errorf("read %q from ready.fifo", ready)
		}
		if err == nil {
			err = shell(dir, "echo other > other.txt && mkdir otherdir")
		}
		if err == nil {
			err = shell(dir, "echo go > go.fifo")
		}
		other <- err
	}()
	res, got := traced(t, dir, "echo ready > ready.fifo; read x < go.fifo; echo mine > mine.txt")
	if err := <-other; err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Errorf("ExitCode = %d, output %q", res.ExitCode, res.Output)
	}
	want := []writetrace.Write{{Path: "mine.txt"}, {Path: "ready.fifo"}}
	if !slices.Equal(got, want) {
		t.Errorf("Writes = %+v, want %+v", got, want)
	}
}

// shell runs script in dir, untraced and outside Run: another process.
func shell(dir, script string) error {
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", script, err, out)
	}
	return nil
}

// A process the command leaves behind keeps running after Run returned:
// its calls are still answered (not recorded), so it can write and exit.
func TestTraceBackgroundOutlivesRun(t *testing.T) {
	t.Parallel()
	needTracing(t)
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "go.fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, got := traced(t, dir, "(read x < go.fifo; echo late > late.txt; mkdir late.d) >/dev/null 2>&1 & echo $! > pid; echo started")
	pid := readPid(t, filepath.Join(dir, "pid"))
	if res.Output != "started\n" || res.ExitCode != 0 {
		t.Errorf("Output = %q, ExitCode = %d", res.Output, res.ExitCode)
	}
	want := []writetrace.Write{{Path: "/dev/null"}, {Path: "pid"}}
	if !slices.Equal(got, want) {
		t.Errorf("Writes = %+v, want %+v", got, want)
	}
	if gone(pid) {
		t.Fatal("the background process is gone before it was told to go on")
	}
	if err := shell(dir, "echo go > go.fifo"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	if b, err := os.ReadFile(filepath.Join(dir, "late.txt")); err != nil || string(b) != "late\n" {
		t.Errorf("late.txt = %q, %v; want the background process to have written it", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "late.d")); err != nil || !fi.IsDir() {
		t.Errorf("late.d: %v; want the background process to have made it", err)
	}
	if got := relative(t, dir, res.Writes.Writes); !slices.Equal(got, want) {
		t.Errorf("Writes changed after Run returned: %+v", got)
	}
}

// openat2's flags are read from its struct; calls relative to a directory
// fd resolve against it, and fd-only calls name the file open there.
func TestTraceCallsByFD(t *testing.T) {
	t.Parallel()
	needTracing(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := shell(dir, "mkdir sub && touch r.txt m.txt sub/a sub/t.txt"); err != nil {
		t.Fatal(err)
	}
	res, got := traced(t, dir, fmt.Sprintf("%s=calls '%s' -test.run='^TestHelperProcess$'", helperEnv, exe))
	if !strings.Contains(res.Output, "made the calls") {
		t.Fatalf("the helper failed: %q", res.Output)
	}
	// sub/t.txt only had its times set: snapshots do not hold times, so
	// that call is not traced.
	want := []writetrace.Write{{Path: "m.txt"}, {Path: "sub/a", Tree: true}, {Path: "sub/b", Tree: true}, {Path: "sub/d"}, {Path: "w.txt"}}
	if !slices.Equal(got, want) {
		t.Errorf("Writes = %+v\nwant     %+v", got, want)
	}
}

// A command that uses io_uring could write past the filter: the report
// says the trace is incomplete instead of listing what it saw.
func TestTraceIOURingIncomplete(t *testing.T) {
	t.Parallel()
	needTracing(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, t.Context(), Options{
		Command:     fmt.Sprintf("echo x > before.txt; %s=io_uring '%s' -test.run='^TestHelperProcess$'", helperEnv, exe),
		TraceWrites: true,
	})
	if !strings.Contains(res.Output, "asked for io_uring") || res.ExitCode != 0 {
		t.Fatalf("the helper did not run: %d, %q", res.ExitCode, res.Output)
	}
	if res.Writes == nil || res.Writes.Available || len(res.Writes.Writes) != 0 {
		t.Fatalf("Writes = %+v, want an unavailable report with no writes", res.Writes)
	}
	if !strings.Contains(res.Writes.Reason, "io_uring") {
		t.Errorf("Reason = %q, want it to name io_uring", res.Writes.Reason)
	}
}

// Tracing inside a traced command is refused by the kernel (one seccomp
// listener per process chain): the inner command runs untraced and says
// why, and the outer trace still sees its writes.
func TestTraceNestedUnavailable(t *testing.T) {
	t.Parallel()
	needTracing(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	res, got := traced(t, dir, fmt.Sprintf("%s=nested '%s' -test.run='^TestHelperProcess$'", helperEnv, exe))
	if res.ExitCode != 0 {
		t.Fatalf("ExitCode = %d, output %q", res.ExitCode, res.Output)
	}
	var inner *writetrace.Report
	lines := strings.Split(strings.TrimSpace(res.Output), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &inner); err != nil || inner == nil {
		t.Fatalf("the inner report is not JSON (%v): %q", err, res.Output)
	}
	if inner.Available || len(inner.Writes) != 0 {
		t.Errorf("inner report = %+v, want unavailable", inner)
	}
	if !strings.Contains(inner.Reason, "already traced by another seccomp listener") {
		t.Errorf("inner Reason = %q, want it to say the process is already traced", inner.Reason)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "inner.txt")); err != nil || string(b) != "inner\n" {
		t.Errorf("inner.txt = %q, %v: the inner command did not run", b, err)
	}
	if !slices.Contains(got, writetrace.Write{Path: "inner.txt"}) {
		t.Errorf("outer Writes = %+v, want inner.txt among them", got)
	}
}
