package tools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBash(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"sub/x.txt": "x\n"})
	sub := &Env{Root: env.Root, Dir: filepath.Join(env.Root, "sub")}
	tests := []struct {
		name   string
		env    *Env
		input  obj
		want   string
		title  string
		meta   obj
		errors []string
	}{
		{name: "echo", input: obj{"command": "echo hello"}, want: "hello\n", title: "echo hello", meta: obj{"exitCode": 0, "timedOut": false, "truncated": false}},
		{name: "bash syntax", input: obj{"command": `a=(1 2 3); echo "${#a[@]}"; [[ x == x ]] && echo ok`}, want: "3\nok\n"},
		{name: "stderr", input: obj{"command": "echo out; echo err >&2"}, want: "out\nerr\n"},
		{name: "exit code", input: obj{"command": "echo oops; exit 3", "description": "Fail on purpose"}, want: "oops\n\n(exit code 3)", title: "Fail on purpose", meta: obj{"exitCode": 3, "description": "Fail on purpose"}},
		{name: "no output", input: obj{"command": "true"}, want: "(no output)"},
		{name: "no output and failure", input: obj{"command": "false"}, want: "(no output)\n\n(exit code 1)"},
		{name: "signal", input: obj{"command": "kill -KILL $$"}, want: "(no output)\n\n(killed by signal killed)", meta: obj{"exitCode": -1, "signal": "killed"}},
		{name: "working directory", env: sub, input: obj{"command": "pwd; cat x.txt"}, want: filepath.Join(env.Root, "sub") + "\nx\n"},
		{name: "title first line", input: obj{"command": "echo a\necho b"}, want: "a\nb\n", title: "echo a…"},
		{name: "empty", input: obj{"command": "  "}, errors: []string{"command is empty"}},
		{name: "timeout too long", input: obj{"command": "true", "timeout_ms": 3_600_000}, errors: []string{"timeout_ms must be between 1 and 600000"}},
		{name: "negative timeout", input: obj{"command": "true", "timeout_ms": -5}, errors: []string{"timeout_ms must be between 1 and 600000"}},
		{name: "bad shell", env: &Env{Root: env.Root, Shell: "/nonexistent/sh"}, input: obj{"command": "true"}, errors: []string{"could not run the command", "/nonexistent/sh"}},
		{name: "bad dir", env: &Env{Root: env.Root, Dir: "nope"}, input: obj{"command": "true"}, errors: []string{"could not run the command", "does not exist"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := tt.env
			if e == nil {
				e = env
			}
			res, err := call(t, e, "bash", tt.input)
			if tt.errors != nil {
				wantErr(t, err, tt.errors...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Output != tt.want {
				t.Errorf("Output = %q, want %q", res.Output, tt.want)
			}
			if tt.title != "" && res.Title != tt.title {
				t.Errorf("Title = %q, want %q", res.Title, tt.title)
			}
			for k, v := range tt.meta {
				if fmt.Sprint(res.Metadata[k]) != fmt.Sprint(v) {
					t.Errorf("Metadata[%s] = %v, want %v", k, res.Metadata[k], v)
				}
			}
			if res.Changed != nil || res.Full != nil {
				t.Errorf("Changed = %v, Full = %d bytes", res.Changed, len(res.Full))
			}
		})
	}
}

func TestBashOutputCap(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	env.OutputCap = 1000
	res := mustCall(t, env, "bash", obj{"command": "seq 1 10000"})
	if res.Metadata["truncated"] != true || len(res.Full) != 48894 {
		t.Errorf("Metadata = %v, Full = %d bytes", res.Metadata, len(res.Full))
	}
	if !strings.HasPrefix(res.Output, "1\n2\n3\n") || !strings.Contains(res.Output, "bytes omitted") ||
		!strings.Contains(res.Output, "9999\n10000\n\n(the output was 48894 bytes; only its start and end are shown") {
		t.Errorf("Output = %q", res.Output)
	}
	if len(res.Output) > 1300 {
		t.Errorf("Output is %d bytes", len(res.Output))
	}
	if !bytes.HasSuffix(res.Full, []byte("9999\n10000\n")) {
		t.Errorf("Full ends %q", res.Full[len(res.Full)-20:])
	}
}

// pidOf reads the pid a command wrote and kills it when the test ends, in
// case it survived.
func pidOf(t *testing.T, path string) int {
	t.Helper()
	var b []byte
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ = os.ReadFile(path)
		if len(bytes.TrimSpace(b)) > 0 || time.Now().After(deadline) {
			break
		}
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("bad pid %q", b)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// gone says a process is dead: no such pid, or a zombie.
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

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !gone(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d is still alive", pid)
		}
	}
}

func TestBashTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	pidFile := filepath.Join(env.Root, "pid")
	start := time.Now()
	res, err := call(t, env, "bash", obj{
		"command":    fmt.Sprintf("sleep 1000 & echo $! > '%s'; echo started; sleep 1000", pidFile),
		"timeout_ms": 300,
	})
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("bash took %v", elapsed)
	}
	if res.Metadata["timedOut"] != true || res.Metadata["exitCode"] != -1 {
		t.Errorf("Metadata = %v", res.Metadata)
	}
	if !strings.HasPrefix(res.Output, "started\n\n(timed out after 300ms: the command and its process group were killed") {
		t.Errorf("Output = %q", res.Output)
	}
	waitGone(t, pidOf(t, pidFile))
}

func TestBashDefaultTimeout(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	env.BashTimeout = 200 * time.Millisecond
	res := mustCall(t, env, "bash", obj{"command": "sleep 1000"})
	if res.Metadata["timedOut"] != true {
		t.Errorf("Metadata = %v", res.Metadata)
	}
	// A long Env.BashTimeout raises the most the model may ask for.
	env.BashTimeout = time.Hour
	if _, err := call(t, env, "bash", obj{"command": "true", "timeout_ms": 3_600_000}); err != nil {
		t.Error(err)
	}
}

func TestBashAbort(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	pidFile := filepath.Join(env.Root, "pid")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Abort once the command has printed and started its child (the
	// start, through the write tracer's shim, can take a while on a
	// loaded machine).
	go func() {
		for ctx.Err() == nil {
			if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	res, err := callCtx(t, ctx, env, "bash", obj{"command": fmt.Sprintf("sleep 1000 & echo started; echo $! > '%s'; sleep 1000", pidFile)})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if !strings.HasPrefix(res.Output, "started\n") || !strings.Contains(res.Output, "aborted") {
		t.Errorf("Output = %q", res.Output)
	}
	waitGone(t, pidOf(t, pidFile))

	// Already cancelled: not run.
	_, err = callCtx(t, ctx, env, "bash", obj{"command": "touch ran"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(env.Root, "ran")); err == nil {
		t.Error("the command ran after the context ended")
	}
}

func TestBashEnv(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	env.ShellEnv = []string{"FOO=bar", "PATH=" + os.Getenv("PATH")}
	env.Shell = "/bin/sh"
	res := mustCall(t, env, "bash", obj{"command": `echo "$FOO"`})
	if res.Output != "bar\n" {
		t.Errorf("Output = %q", res.Output)
	}
}
