//go:build linux && (amd64 || arm64)

package writetrace

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// helperEnv makes the test binary print a line and exit (see
// TestHelperProcess).
const helperEnv = "WRITETRACE_TEST_HELPER"

// TestHelperProcess is not a test: it is what the test binary does when a
// test runs it as a plain program.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("a helper for other tests")
	}
	_, marked := os.LookupEnv(markerEnv)
	fmt.Printf("ran as usual, marker still set: %v\n", marked)
	os.Exit(0)
}

func needTracing(t *testing.T) {
	t.Helper()
	if ok, why := Probe(t.Context()); !ok {
		t.Skip("write tracing is unavailable here:", why)
	}
}

func TestProbe(t *testing.T) {
	t.Parallel()
	ok, detail := Probe(t.Context())
	major, minor, known := kernelVersion()
	if !known {
		t.Fatal("cannot read the kernel version")
	}
	if !ok {
		// Possible only where the kernel or the environment refuses; the
		// detail must say why.
		if detail == "" {
			t.Error("Probe failed without saying why")
		}
		t.Skipf("tracing unavailable on Linux %d.%d: %s", major, minor, detail)
	}
	if want := fmt.Sprintf("seccomp user notification (kernel %d.%d)", major, minor); detail != want {
		t.Errorf("detail = %q, want %q", detail, want)
	}
}

// startSh starts script under sh in dir, traced.
func startSh(t *testing.T, dir, script string) (*exec.Cmd, *Trace, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	tr, err := Start(cmd)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return cmd, tr, &out
}

// A command with no Args gets its path as argv[0], as with exec.Cmd, not
// the shim's /proc/self/exe.
func TestStartNoArgs(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	cmd := &exec.Cmd{Path: "/bin/sh", Stdin: strings.NewReader("echo \"$0\"\n"), Stdout: &out}
	tr, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	tr.Stop()
	if out.String() != "/bin/sh\n" {
		t.Errorf("argv[0] = %q, want /bin/sh", out.String())
	}
}

// The supervisor keeps answering a process left behind after Stop, and
// ends when the last one exits.
func TestDoneOnceTheTreeHasExited(t *testing.T) {
	t.Parallel()
	needTracing(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "go.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, tr, out := startSh(t, dir, "(read x < go.fifo; echo late > late.txt) >/dev/null 2>&1 & echo $! > pid")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	rep := tr.Stop()
	if !rep.Available {
		t.Fatalf("report unavailable: %s", rep.Reason)
	}
	select {
	case <-tr.Done():
		t.Fatal("Done before the background process exited")
	default:
	}
	if err := os.WriteFile(fifo, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	<-tr.Done()
	if b, err := os.ReadFile(filepath.Join(dir, "late.txt")); err != nil || string(b) != "late\n" {
		t.Errorf("late.txt = %q, %v", b, err)
	}
	for _, w := range rep.Writes {
		if strings.HasSuffix(w.Path, "late.txt") {
			t.Errorf("Writes has %s, written after Stop", w.Path)
		}
	}
}

// A shim that dies before it reports leaves the report unavailable, and
// Stop does not wait for it.
func TestShimDiesBeforeReporting(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("/bin/sh", "-c", "echo should not run > ran.txt")
	cmd.Dir = t.TempDir()
	tr, err := start(cmd, modeDie)
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Errorf("Wait = %v, want the shim's exit status 3", err)
	}
	rep := tr.Stop()
	if rep.Available || rep.Reason != "the write tracer shim exited before reporting" {
		t.Errorf("Stop() = %+v, want unavailable: the shim exited before reporting", rep)
	}
	<-tr.Done()
	if _, err := os.Stat(filepath.Join(cmd.Dir, "ran.txt")); err == nil {
		t.Error("the command ran")
	}
}

// A marker that did not come from the process's parent (inherited through
// some other program) is dropped, and the program runs as usual.
func TestStrayMarkerIgnored(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	stray := marker{fd: 3, ppid: 1, mode: modeExec, path: "/bin/false"}
	cmd := exec.Command(exe, "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", markerEnv+"="+stray.String())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ran as usual, marker still set: false") {
		t.Errorf("got %v, %q; want the helper to run without the marker", err, out)
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cmd     func() *exec.Cmd
		wantMsg string
	}{
		{name: "relative path", cmd: func() *exec.Cmd { return &exec.Cmd{Path: "sh", Args: []string{"sh"}} }, wantMsg: `command path "sh" is not absolute`},
		{name: "started twice", cmd: func() *exec.Cmd {
			c := exec.Command("/bin/true")
			if err := c.Run(); err != nil {
				t.Fatal(err)
			}
			return c
		}, wantMsg: "already started"},
		{name: "missing dir", cmd: func() *exec.Cmd {
			c := exec.Command("/bin/true")
			c.Dir = "/no/such/dir"
			return c
		}, wantMsg: "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Start(tt.cmd()); err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Start = %v, want an error saying %q", err, tt.wantMsg)
			}
		})
	}
}

func TestParseMarker(t *testing.T) {
	t.Parallel()
	good := marker{fd: 4, ppid: 77, mode: modeExec, path: "/bin/with:colon"}
	if got, ok := parseMarker(good.String()); !ok || got != good {
		t.Errorf("parseMarker(%q) = %+v, %v; want %+v", good.String(), got, ok, good)
	}
	for _, bad := range []string{"", "1", "2:4:77:exec:/bin/sh", "1:x:77:exec:/bin/sh", "1:4:y:exec:/bin/sh", "1:2:77:exec:/bin/sh", "1:4:77:exec:"} {
		if got, ok := parseMarker(bad); ok {
			t.Errorf("parseMarker(%q) = %+v, want it refused", bad, got)
		}
	}
}
