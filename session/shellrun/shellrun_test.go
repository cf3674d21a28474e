package shellrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sessiond/sessiond/session/shellrun/writetrace"
)

// run runs opts with /bin/sh in a temporary directory unless told
// otherwise, failing the test on an error.
func run(t *testing.T, ctx context.Context, opts Options) Result {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Shell == "" {
		opts.Shell = "/bin/sh"
	}
	res, err := Run(ctx, opts)
	if err != nil {
		t.Fatalf("Run(%q): %v", opts.Command, err)
	}
	if (res.Writes != nil) != opts.TraceWrites {
		t.Fatalf("Run(%q) with TraceWrites %v: Writes = %+v", opts.Command, opts.TraceWrites, res.Writes)
	}
	return res
}

func TestRun(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	tests := []struct {
		name     string
		opts     Options
		stdin    string // Options.Stdin, a new reader for each run
		want     string
		wantCode int
		wantSig  string
	}{
		{name: "exit 0", opts: Options{Command: "echo hello"}, want: "hello\n"},
		{name: "exit 3", opts: Options{Command: "echo out; exit 3"}, want: "out\n", wantCode: 3},
		{name: "no output", opts: Options{Command: "true"}},
		{name: "stderr", opts: Options{Command: "echo oops >&2; exit 1"}, want: "oops\n", wantCode: 1},
		{name: "stderr interleaved", opts: Options{Command: "echo a; echo b >&2; echo c"}, want: "a\nb\nc\n"},
		{
			name: "stderr interleaved loop",
			opts: Options{Command: "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done"},
			want: "out1\nerr1\nout2\nerr2\nout3\nerr3\nout4\nerr4\nout5\nerr5\n",
		},
		{name: "killed by signal", opts: Options{Command: "echo before; kill -KILL $$"}, want: "before\n", wantCode: -1, wantSig: "killed"},
		{name: "env", opts: Options{Command: `echo "$FOO"`, Env: []string{"FOO=bar baz"}}, want: "bar baz\n"},
		{name: "env empty", opts: Options{Command: `echo "[$HOME]"`, Env: []string{}}, want: "[]\n"},
		{name: "env nil inherits", opts: Options{Command: `echo "$PATH"`}, want: os.Getenv("PATH") + "\n"},
		{name: "stdin nil is /dev/null", opts: Options{Command: "cat; echo end"}, want: "end\n"},
		{name: "stdin reader", opts: Options{Command: "cat"}, stdin: "line one\nline two\n", want: "line one\nline two\n"},
		{name: "stdin large", opts: Options{Command: "wc -c | tr -d ' '"}, stdin: big, want: strconv.Itoa(len(big)) + "\n"},
		{name: "stdin unread", opts: Options{Command: "echo skip"}, stdin: big, want: "skip\n"},
		{name: "shell by name", opts: Options{Command: "echo named", Shell: "sh"}, want: "named\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachTrace(t, func(t *testing.T, trace bool) {
				opts := tt.opts
				opts.TraceWrites = trace
				if tt.stdin != "" {
					opts.Stdin = strings.NewReader(tt.stdin)
				}
				checkRun(t, run(t, t.Context(), opts), tt.want, tt.wantCode, tt.wantSig)
			})
		})
	}
}

// checkRun checks a command that ran to its end with output want.
func checkRun(t *testing.T, res Result, want string, wantCode int, wantSig string) {
	t.Helper()
	if res.Output != want {
		t.Errorf("Output = %q, want %q", res.Output, want)
	}
	if res.ExitCode != wantCode {
		t.Errorf("ExitCode = %d, want %d", res.ExitCode, wantCode)
	}
	if res.Signal != wantSig {
		t.Errorf("Signal = %q, want %q", res.Signal, wantSig)
	}
	if res.Bytes != int64(len(want)) || res.Truncated || res.Full != nil {
		t.Errorf("Bytes = %d, Truncated = %v, Full = %d bytes; want %d, false, nil",
			res.Bytes, res.Truncated, len(res.Full), len(want))
	}
	if res.TimedOut || res.Aborted {
		t.Errorf("TimedOut = %v, Aborted = %v", res.TimedOut, res.Aborted)
	}
	if res.Duration <= 0 {
		t.Errorf("Duration = %v", res.Duration)
	}
	if res.Writes != nil && (!res.Writes.Available || len(res.Writes.Writes) != 0) {
		t.Errorf("Writes = %+v, want an available report with no writes", res.Writes)
	}
}

func TestRunInDir(t *testing.T) {
	t.Parallel()
	eachTrace(t, func(t *testing.T, trace bool) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "marker.txt"), []byte("here\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		res := run(t, t.Context(), Options{Dir: dir, Command: "pwd -P; cat marker.txt", TraceWrites: trace})
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			t.Fatal(err)
		}
		if want := real + "\nhere\n"; res.Output != want {
			t.Errorf("Output = %q, want %q", res.Output, want)
		}
	})
}

func TestDefaultShell(t *testing.T) {
	t.Parallel()
	eachTrace(t, func(t *testing.T, trace bool) {
		res, err := Run(t.Context(), Options{Dir: t.TempDir(), Command: "echo default; exit 7", TraceWrites: trace})
		if err != nil {
			t.Fatal(err)
		}
		if res.Output != "default\n" || res.ExitCode != 7 {
			t.Errorf("got %q, %d", res.Output, res.ExitCode)
		}
	})
}

// checkElided checks that got is a head of want, the omitted line with the
// right count, and a tail of want, in at most limit bytes.
func checkElided(t *testing.T, what, got string, want []byte, limit int) {
	t.Helper()
	if len(got) > limit {
		t.Errorf("%s is %d bytes, over %d", what, len(got), limit)
	}
	const open, close = "… ", " bytes omitted …\n"
	end := strings.Index(got, close)
	start := strings.LastIndex(got[:max(end, 0)], open)
	if end < 0 || start < 0 {
		t.Fatalf("%s has no omitted line: %.200q", what, got)
	}
	n, err := strconv.Atoi(got[start+len(open) : end])
	if err != nil {
		t.Fatalf("%s: bad omitted line: %v", what, err)
	}
	head, tail := got[:start], got[end+len(close):]
	// The line starts with a newline of its own when the head does not end
	// with one; "x\n… " could be either, and the count tells which.
	if strings.HasSuffix(head, "\n") && n != len(want)-len(head)-len(tail) {
		head = head[:len(head)-1]
	}
	if !bytes.HasPrefix(want, []byte(head)) {
		t.Errorf("%s head is not the output's start: %.100q", what, head)
	}
	if !bytes.HasSuffix(want, []byte(tail)) {
		t.Errorf("%s tail is not the output's end: %.100q", what, tail)
	}
	if got, want := n, len(want)-len(head)-len(tail); got != want {
		t.Errorf("%s says %d bytes omitted, want %d", what, got, want)
	}
	if len(head) == 0 || len(tail) == 0 {
		t.Errorf("%s: head %d bytes, tail %d bytes; want both", what, len(head), len(tail))
	}
}

func TestLargeOutput(t *testing.T) {
	t.Parallel()
	var want bytes.Buffer
	for i := 1; i <= 100000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	for _, limit := range []int{0, 4096, 4097} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			t.Parallel()
			eachTrace(t, func(t *testing.T, trace bool) { checkLargeOutput(t, &want, limit, trace) })
		})
	}
}

func checkLargeOutput(t *testing.T, want *bytes.Buffer, limit int, trace bool) {
	res := run(t, t.Context(), Options{Command: "seq 1 100000; exit 2", OutputCap: limit, TraceWrites: trace})
	if limit == 0 {
		limit = DefaultOutputCap
	}
	if res.ExitCode != 2 {
		t.Errorf("ExitCode = %d", res.ExitCode)
	}
	if res.Bytes != int64(want.Len()) {
		t.Errorf("Bytes = %d, want %d", res.Bytes, want.Len())
	}
	if !res.Truncated {
		t.Error("not Truncated")
	}
	if !bytes.Equal(res.Full, want.Bytes()) {
		t.Errorf("Full is %d bytes, not the output (%d bytes)", len(res.Full), want.Len())
	}
	if !strings.HasPrefix(res.Output, "1\n2\n3\n") || !strings.HasSuffix(res.Output, "99999\n100000\n") {
		t.Errorf("Output does not have the head and tail: %.50q … %q", res.Output, res.Output[max(len(res.Output)-50, 0):])
	}
	checkElided(t, "Output", res.Output, want.Bytes(), limit)
}

func TestOutputOverMaxFull(t *testing.T) {
	t.Parallel()
	const n = MaxFullOutput + 3<<20
	res := run(t, t.Context(), Options{Command: fmt.Sprintf("yes | head -c %d", n)})
	want := bytes.Repeat([]byte("y\n"), n/2)
	if res.Bytes != n {
		t.Errorf("Bytes = %d, want %d", res.Bytes, n)
	}
	if !res.Truncated || len(res.Full) > MaxFullOutput || len(res.Full) < MaxFullOutput-100 {
		t.Errorf("Truncated = %v, Full %d bytes; want true, about %d", res.Truncated, len(res.Full), MaxFullOutput)
	}
	checkElided(t, "Full", string(res.Full), want, MaxFullOutput)
	checkElided(t, "Output", res.Output, want, DefaultOutputCap)
}

func TestUTF8Cut(t *testing.T) {
	t.Parallel()
	want := []byte(strings.Repeat("€", 2000)) // 3 bytes each
	for limit := MinOutputCap; limit < MinOutputCap+6; limit++ {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			t.Parallel()
			res := run(t, t.Context(), Options{Command: `yes € | head -n 2000 | tr -d '\n'`, OutputCap: limit})
			if !utf8.ValidString(res.Output) {
				t.Errorf("Output is not valid UTF-8: %q", res.Output)
			}
			if !bytes.Equal(res.Full, want) {
				t.Errorf("Full = %d bytes, want %d", len(res.Full), len(want))
			}
			checkElided(t, "Output", res.Output, want, limit)
		})
	}
}

// gone says the process is dead: no such pid, or a zombie not yet reaped.
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// readPid reads the pid a command wrote, and kills it when the test ends
// in case it is still there.
func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the command did not write its child's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("bad pid %q", b)
	}
	t.Cleanup(func() {
		if !gone(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return pid
}

// timeoutFor is a command timeout d that leaves a traced command time to
// get going first: it starts through the shim, here the test binary,
// which is slow to start under -race on a loaded machine.
func timeoutFor(d time.Duration, trace bool) time.Duration {
	if trace {
		return d + 5*time.Second
	}
	return d
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); !gone(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("process %d is still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		child string // a background command whose pid goes to the pid file
	}{
		// Everything dies on SIGTERM: Run returns as soon as the group is
		// empty, which can take up to the grace where init is slow to reap
		// the orphaned child (zombies still count as group members).
		{name: "term", child: "sleep 1000"},
		// The child ignores SIGTERM and holds the pipe: SIGKILL after the grace.
		{name: "kill", child: "(trap '' TERM; exec sleep 1000)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachTrace(t, func(t *testing.T, trace bool) {
				dir := t.TempDir()
				pidFile := filepath.Join(dir, "pid")
				timeout := timeoutFor(500*time.Millisecond, trace)
				start := time.Now()
				res := run(t, t.Context(), Options{
					Dir:         dir,
					Command:     fmt.Sprintf("%s & echo $! > '%s'; echo started; sleep 1000", tt.child, pidFile),
					Timeout:     timeout,
					TraceWrites: trace,
				})
				elapsed := time.Since(start)
				pid := readPid(t, pidFile)
				t.Logf("returned after %v", elapsed)
				if within := timeout + killGrace + drainDelay + 2*time.Second; elapsed > within {
					t.Errorf("Run took %v, want under %v", elapsed, within)
				}
				if !res.TimedOut || res.Aborted || res.ExitCode != -1 {
					t.Errorf("TimedOut = %v, Aborted = %v, ExitCode = %d; want true, false, -1", res.TimedOut, res.Aborted, res.ExitCode)
				}
				if res.Signal == "" {
					t.Error("Signal not set")
				}
				if res.Output != "started\n" {
					t.Errorf("Output = %q", res.Output)
				}
				waitGone(t, pid)
			})
		})
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	eachTrace(t, func(t *testing.T, trace bool) {
		dir := t.TempDir()
		pidFile := filepath.Join(dir, "pid")
		ready := filepath.Join(dir, "ready.fifo")
		if err := syscall.Mkfifo(ready, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var cancelled time.Time
		go func() {
			// Cancel once the command has started its child.
			_, _ = os.ReadFile(ready)
			cancelled = time.Now()
			cancel()
		}()
		res := run(t, ctx, Options{Dir: dir, Command: fmt.Sprintf("sleep 1000 & echo $! > '%s'; echo > '%s'; sleep 1000", pidFile, ready), TraceWrites: trace})
		if elapsed := time.Since(cancelled); elapsed > 5*time.Second {
			t.Errorf("Run took %v after cancel", elapsed)
		}
		if !res.Aborted || res.TimedOut || res.ExitCode != -1 {
			t.Errorf("Aborted = %v, TimedOut = %v, ExitCode = %d; want true, false, -1", res.Aborted, res.TimedOut, res.ExitCode)
		}
		waitGone(t, readPid(t, pidFile))
	})
}

func TestCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Run(ctx, Options{Dir: t.TempDir(), Command: "echo no"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// A background process holding the pipe after the shell exits does not
// hold Run up.
func TestBackgroundHoldsPipe(t *testing.T) {
	t.Parallel()
	eachTrace(t, func(t *testing.T, trace bool) {
		dir := t.TempDir()
		pidFile := filepath.Join(dir, "pid")
		start := time.Now()
		res := run(t, t.Context(), Options{Dir: dir, Command: fmt.Sprintf("sleep 1000 & echo $! > '%s'; echo done", pidFile), TraceWrites: trace})
		readPid(t, pidFile)
		if elapsed := time.Since(start); elapsed > drainDelay+3*time.Second {
			t.Errorf("Run took %v", elapsed)
		}
		if res.Output != "done\n" || res.ExitCode != 0 || res.TimedOut {
			t.Errorf("Output = %q, ExitCode = %d, TimedOut = %v", res.Output, res.ExitCode, res.TimedOut)
		}
	})
}

// A process that left the group keeps the pipe open; a timeout still
// returns promptly.
func TestEscapedProcess(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	eachTrace(t, func(t *testing.T, trace bool) {
		dir := t.TempDir()
		pidFile := filepath.Join(dir, "pid")
		timeout := timeoutFor(300*time.Millisecond, trace)
		start := time.Now()
		res := run(t, t.Context(), Options{
			Dir:         dir,
			Command:     fmt.Sprintf("setsid sleep 1000 & echo $! > '%s'; sleep 1000", pidFile),
			Timeout:     timeout,
			TraceWrites: trace,
		})
		readPid(t, pidFile)
		if elapsed, within := time.Since(start), timeout+killGrace+drainDelay+2*time.Second; elapsed > within {
			t.Errorf("Run took %v, want under %v", elapsed, within)
		}
		if !res.TimedOut {
			t.Error("not TimedOut")
		}
	})
}

// Stdin whose Read blocks does not hold Run up once the command is done.
func TestStdinBlocks(t *testing.T) {
	t.Parallel()
	eachTrace(t, func(t *testing.T, trace bool) {
		pr, pw := io.Pipe()
		defer pw.Close()
		start := time.Now()
		res := run(t, t.Context(), Options{Command: "echo ok", Stdin: pr, TraceWrites: trace})
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Errorf("Run took %v", elapsed)
		}
		if res.Output != "ok\n" {
			t.Errorf("Output = %q", res.Output)
		}
	})
}

func TestStdinFile(t *testing.T) {
	t.Parallel()
	eachTrace(t, func(t *testing.T, trace bool) {
		path := filepath.Join(t.TempDir(), "in")
		if err := os.WriteFile(path, []byte("from a file\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if res := run(t, t.Context(), Options{Command: "cat", Stdin: f, TraceWrites: trace}); res.Output != "from a file\n" {
			t.Errorf("Output = %q", res.Output)
		}
	})
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(tmp, "no", "such", "dir")
	tests := []struct {
		name    string
		opts    Options
		wantMsg string
		wantIs  error
	}{
		{name: "missing dir", opts: Options{Dir: missing}, wantMsg: "working directory " + missing + " does not exist", wantIs: fs.ErrNotExist},
		{name: "dir is a file", opts: Options{Dir: file}, wantMsg: file + " is not a directory"},
		{name: "relative dir", opts: Options{Dir: "rel/dir"}, wantMsg: `"rel/dir" is not an absolute path`},
		{name: "no dir", opts: Options{}, wantMsg: "working directory not set"},
		{name: "missing shell", opts: Options{Dir: tmp, Shell: "/no/such/shell"}, wantMsg: "shell /no/such/shell not found", wantIs: fs.ErrNotExist},
		{name: "shell not executable", opts: Options{Dir: tmp, Shell: file}, wantMsg: "not an executable file"},
		{name: "shell not in PATH", opts: Options{Dir: tmp, Shell: "no-such-shell-sessiond"}, wantMsg: "not found in PATH", wantIs: exec.ErrNotFound},
		{name: "relative shell path", opts: Options{Dir: tmp, Shell: "./sh"}, wantMsg: "must be a name or an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachTrace(t, func(t *testing.T, trace bool) {
				opts := tt.opts
				opts.Command = "echo should not run"
				opts.TraceWrites = trace
				_, err := Run(t.Context(), opts)
				if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantMsg)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("err = %v, want one matching %v", err, tt.wantIs)
				}
			})
		})
	}
}

func TestResolveShell(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	exe := filepath.Join(tmp, "myshell")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(tmp, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, shell, env, want string
	}{
		{name: "env shell", env: exe, want: exe},
		{name: "env shell relative", env: "bash", want: "/bin/sh"},
		{name: "env shell missing", env: filepath.Join(tmp, "nope"), want: "/bin/sh"},
		{name: "env shell not executable", env: plain, want: "/bin/sh"},
		{name: "env shell is a dir", env: tmp, want: "/bin/sh"},
		{name: "env unset", want: "/bin/sh"},
		{name: "explicit wins", shell: "/bin/sh", env: exe, want: "/bin/sh"},
		{name: "explicit name", shell: "sh", env: exe, want: sh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := resolveShell(tt.shell, tt.env)
			if err != nil || got != tt.want {
				t.Errorf("resolveShell(%q, %q) = %q, %v; want %q", tt.shell, tt.env, got, err, tt.want)
			}
		})
	}
}

// needTracing skips the test where commands cannot be traced (another
// platform, or these tests themselves run inside a traced command).
func needTracing(t *testing.T) {
	t.Helper()
	if ok, why := writetrace.Probe(t.Context()); !ok {
		t.Skip("write tracing is unavailable here:", why)
	}
}

// eachTrace runs f untraced and traced: Run behaves the same either way.
func eachTrace(t *testing.T, f func(t *testing.T, trace bool)) {
	t.Helper()
	for _, trace := range []bool{false, true} {
		name := "untraced"
		if trace {
			name = "traced"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if trace {
				needTracing(t)
			}
			f(t, trace)
		})
	}
}
