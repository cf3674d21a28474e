// Package shellrun runs one shell command for a session: a session/shell
// turn, and the agent's bash tool.
//
// The command runs as <shell> -c <command> in its own process group, with
// stdout and stderr on one pipe so that their output keeps the order it
// was written in. Output is kept in bounded memory: the head and the tail
// inline, and the whole of it (up to MaxFullOutput) for the caller to
// store when it is over the inline cap. When the timeout passes or the
// context ends, the whole group gets SIGTERM and, after a short grace,
// SIGKILL; Run never waits on a process that keeps the output pipe open.
//
// With Options.TraceWrites the command starts through package writetrace,
// and Result.Writes lists the files its process tree modified; the
// process group, timeout, abort and output behave the same.
package shellrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/session/shellrun/writetrace"
)

const (
	// DefaultTimeout is used when Options.Timeout is 0.
	DefaultTimeout = 2 * time.Minute
	// DefaultOutputCap is used when Options.OutputCap is 0.
	DefaultOutputCap = 64 << 10
	// MinOutputCap is the smallest inline cap; smaller ones are raised to it
	// so that the "bytes omitted" line always fits.
	MinOutputCap = 64
	// MaxFullOutput caps Result.Full.
	MaxFullOutput = 16 << 20
)

const (
	// killGrace is how long the group has between SIGTERM and SIGKILL.
	killGrace = 2 * time.Second
	// drainDelay is how long Run keeps reading output after the shell has
	// exited (or been killed) while something else holds the pipe open.
	drainDelay = time.Second
	// pollInterval paces the checks for an empty process group.
	pollInterval = 50 * time.Millisecond
)

// Options says what to run and how.
type Options struct {
	// Dir is the working directory; required and absolute.
	Dir string
	// Command is run as <Shell> -c <Command>.
	Command string
	// Shell is an absolute path or a name looked up in the daemon's PATH.
	// Empty: $SHELL (of the daemon) when it is an absolute path to an
	// executable, else /bin/sh.
	Shell string
	// Env is the command's whole environment; nil: the daemon's.
	Env []string
	// Timeout bounds the run; 0 (or less): DefaultTimeout. When it passes
	// the whole process group is terminated.
	Timeout time.Duration
	// OutputCap is how many bytes of combined output Result.Output keeps;
	// 0 (or less): DefaultOutputCap. At least MinOutputCap.
	OutputCap int
	// Stdin is the command's input; nil: /dev/null. An *os.File is given
	// to the command as is; anything else is copied in by a goroutine
	// (a Read error ends the input early, as EOF would). Run does not wait
	// for it: a Read that blocks outlives Run, and the goroutine ends when
	// that Read returns.
	Stdin io.Reader
	// TraceWrites records which files the command's process tree
	// modified, in Result.Writes (see package writetrace). Where tracing
	// is unavailable the command runs all the same and the report says
	// why.
	TraceWrites bool
}

// Result is what a command did.
type Result struct {
	// Output is the combined stdout and stderr in the order written, at
	// most OutputCap bytes. Over the cap it is the head and the tail with
	// a "… N bytes omitted …" line between them, cut at UTF-8 boundaries.
	// It is the command's bytes as they are, valid UTF-8 or not.
	Output string
	// Full is the whole output when it was over the cap, nil otherwise;
	// the caller stores it. Over MaxFullOutput it is elided like Output,
	// to at most MaxFullOutput bytes.
	Full []byte
	// Truncated says Output is not the whole output.
	Truncated bool
	// Bytes is the total the command produced.
	Bytes int64
	// ExitCode is the shell's exit status; -1 when it was killed by a
	// signal, timed out, or was aborted.
	ExitCode int
	// Signal names the signal that ended the shell ("killed",
	// "terminated"), if one did.
	Signal string
	// TimedOut says Options.Timeout passed and the group was terminated.
	TimedOut bool
	// Aborted says ctx ended (cancelled or past its deadline) and the
	// group was terminated.
	Aborted bool
	// Duration is the wall time from start until Run had all it would get.
	Duration time.Duration
	// Writes is what the command's process tree modified until Run
	// returned; nil unless Options.TraceWrites. Processes left in the
	// background keep running, untraced from then on.
	Writes *writetrace.Report
	// Lingering, for a traced command, is closed once no process the
	// command started is left. Until then its processes still need the
	// daemon: the calls the tracer stops fail once it exits.
	Lingering <-chan struct{}
}

// Run runs opts.Command and waits for it. A non-zero exit, a timeout and
// an abort are reported in the Result, not as errors: the error is for a
// command that could not be started (bad Dir, shell not found, ctx already
// done) or not waited for.
//
// Processes the command leaves running in the background are not killed
// when the shell exits normally; Run stops reading their output after a
// short delay, and they get EPIPE (or SIGPIPE) if they write more. On a
// timeout or abort the whole process group is killed; a process that left
// the group (setsid) is beyond reach, but does not hold Run up.
func Run(ctx context.Context, opts Options) (Result, error) {
	shell, err := resolveShell(opts.Shell, os.Getenv("SHELL"))
	if err != nil {
		return Result{}, err
	}
	if err := checkDir(opts.Dir); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("shellrun: not started: %w", err)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	limit := opts.OutputCap
	if limit <= 0 {
		limit = DefaultOutputCap
	}
	limit = max(limit, MinOutputCap)

	pr, pw, err := os.Pipe()
	if err != nil {
		return Result{}, fmt.Errorf("shellrun: output pipe: %w", err)
	}
	cmd := exec.Command(shell, "-c", opts.Command)
	cmd.Dir = opts.Dir
	cmd.Env = opts.Env
	cmd.Stdout = pw // the same *os.File for both: one pipe, write order kept
	cmd.Stderr = pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	var stdinR, stdinW *os.File
	switch in := opts.Stdin.(type) {
	case nil:
	case *os.File:
		if in != nil {
			cmd.Stdin = in
		}
	default:
		if stdinR, stdinW, err = os.Pipe(); err != nil {
			pr.Close()
			pw.Close()
			return Result{}, fmt.Errorf("shellrun: input pipe: %w", err)
		}
		cmd.Stdin = stdinR
	}

	start := time.Now()
	var trace *writetrace.Trace
	if opts.TraceWrites {
		trace, err = writetrace.Start(cmd)
	} else {
		err = cmd.Start()
	}
	pw.Close()
	if stdinR != nil {
		stdinR.Close()
	}
	if err != nil {
		pr.Close()
		if stdinW != nil {
			stdinW.Close()
		}
		return Result{}, &startError{fmt.Sprintf("shellrun: starting %s: %v", shell, err), err}
	}
	pgid := cmd.Process.Pid

	if stdinW != nil {
		go func() {
			_, _ = io.Copy(stdinW, opts.Stdin)
			stdinW.Close()
		}()
	}

	out := newCapture(limit)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 32<<10)
		for {
			n, err := pr.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()

	var res Result
	var waitErr error
	if trace != nil {
		// The timeout is the command's: the shim's start (a Go runtime
		// coming up, slow on a loaded machine) does not count against it.
		// Bounded all the same, should a shim never report.
		shim := time.NewTimer(timeout)
		select {
		case <-trace.Ready():
		case <-ctx.Done():
		case <-shim.C:
		}
		shim.Stop()
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var ctxDone <-chan struct{} // for the drain: only after a normal exit
	var timerC <-chan time.Time
	select {
	case waitErr = <-waitDone:
		ctxDone, timerC = ctx.Done(), timer.C
	case <-timer.C:
		res.TimedOut = true
		waitErr = terminate(pgid, waitDone)
	case <-ctx.Done():
		res.Aborted = true
		waitErr = terminate(pgid, waitDone)
	}
	if stdinW != nil {
		stdinW.Close() // unblocks the copy if it is stuck writing
	}

	// The shell is gone. Read what is left, but not for long if a
	// background process holds the pipe.
	drain := time.NewTimer(drainDelay)
	select {
	case <-readDone:
	case <-drain.C:
	case <-ctxDone:
	case <-timerC:
	}
	drain.Stop()
	if err := pr.SetReadDeadline(time.Now()); err != nil {
		pr.Close()
	}
	<-readDone
	pr.Close()
	if trace != nil {
		rep := trace.Stop()
		res.Writes = &rep
		res.Lingering = trace.Done()
	}
	res.Duration = time.Since(start)
	out.fill(&res)

	st := cmd.ProcessState
	if st == nil { // Wait failed without reaping the shell
		res.ExitCode = -1
		return res, fmt.Errorf("shellrun: waiting for %s: %w", shell, waitErr)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Signal = ws.Signal().String()
		res.ExitCode = -1
	} else {
		res.ExitCode = st.ExitCode()
	}
	if res.TimedOut || res.Aborted {
		res.ExitCode = -1
	}
	return res, nil
}

// terminate sends SIGTERM to the process group, gives it killGrace to end
// (the shell exited and no process left in the group), then sends SIGKILL.
// It returns once the shell has been reaped, with what exec.Cmd.Wait said.
// A process outside the group that holds the output pipe is left to the
// drain that follows.
func terminate(pgid int, waitDone <-chan error) (waitErr error) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	_ = syscall.Kill(-pgid, syscall.SIGCONT) // a stopped process cannot act on SIGTERM
	grace := time.NewTimer(killGrace)
	defer grace.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	exited := false
	for {
		// Once the shell is reaped its pid may in principle be reused, but
		// not while any process of the group is alive; the group is only
		// signalled again if it was seen alive a moment before.
		if exited && syscall.Kill(-pgid, 0) != nil {
			return waitErr
		}
		select {
		case waitErr = <-waitDone:
			exited, waitDone = true, nil
		case <-tick.C:
		case <-grace.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			if !exited {
				waitErr = <-waitDone
			}
			return waitErr
		}
	}
}

// resolveShell picks the shell: name when given (an absolute path, or a
// name looked up in PATH), else envShell when it is an absolute path to an
// executable, else /bin/sh.
func resolveShell(name, envShell string) (string, error) {
	if name == "" {
		if filepath.IsAbs(envShell) && isExecutable(envShell) {
			return envShell, nil
		}
		name = "/bin/sh"
	}
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err != nil {
			return "", &startError{fmt.Sprintf("shellrun: shell %s not found", name), err}
		}
		if !isExecutable(name) {
			return "", &startError{fmt.Sprintf("shellrun: shell %s is not an executable file", name), fs.ErrPermission}
		}
		return name, nil
	}
	if strings.ContainsRune(name, '/') {
		return "", fmt.Errorf("shellrun: shell %q must be a name or an absolute path", name)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", &startError{fmt.Sprintf("shellrun: shell %q not found in PATH", name), err}
	}
	if !filepath.IsAbs(path) {
		if path, err = filepath.Abs(path); err != nil {
			return "", fmt.Errorf("shellrun: shell %q: %w", name, err)
		}
	}
	return path, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// checkDir reports why dir cannot be the working directory, if it cannot.
func checkDir(dir string) error {
	switch {
	case dir == "":
		return errors.New("shellrun: working directory not set")
	case !filepath.IsAbs(dir):
		return fmt.Errorf("shellrun: working directory %q is not an absolute path", dir)
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &startError{fmt.Sprintf("shellrun: working directory %s does not exist", dir), err}
	case err != nil:
		return &startError{fmt.Sprintf("shellrun: working directory %s: %v", dir, err), err}
	case !fi.IsDir():
		return &startError{fmt.Sprintf("shellrun: working directory %s is not a directory", dir), syscall.ENOTDIR}
	}
	return nil
}

// startError is an error with a message of its own that still matches its
// cause under errors.Is (fs.ErrNotExist, exec.ErrNotFound, ...).
type startError struct {
	msg string
	err error
}

func (e *startError) Error() string { return e.msg }
func (e *startError) Unwrap() error { return e.err }
