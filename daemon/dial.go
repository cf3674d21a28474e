package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// DialOptions say how to reach a daemon.
type DialOptions struct {
	// AutoStart starts a daemon when none answers.
	AutoStart bool
	// Executable is the sessiond binary to start; empty means this one.
	Executable string
	// ServeArgs are extra flags for the started `sessiond serve`.
	ServeArgs []string
	// Timeout bounds the whole dial, start included; 0 means 10 s.
	Timeout time.Duration
}

// Dial connects to the daemon serving cfg.Socket, starting one first when
// none answers and opts.AutoStart is set, the way gopls -remote=auto does:
// the daemon is detached in its own session and process group, and we
// retry with backoff until it listens. Two clients racing to start a
// daemon are fine: the loser's daemon finds the data dir locked and exits,
// and both clients connect to the winner.
func Dial(ctx context.Context, cfg Config, opts DialOptions) (net.Conn, error) {
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", cfg.Socket)
	if err == nil {
		return owned(c, cfg.Socket)
	}
	if !isNoDaemon(err) || !opts.AutoStart {
		return nil, fmt.Errorf("connect to sessiond at %s: %w (start it with `sessiond serve`)", cfg.Socket, err)
	}
	exited, err := start(cfg, opts)
	if err != nil {
		return nil, err
	}
	var startErr error
	delay := 2 * time.Millisecond
	for {
		c, err := d.DialContext(ctx, "unix", cfg.Socket)
		if err == nil {
			return owned(c, cfg.Socket)
		}
		// A dial cut by the deadline ends like the wait below, with the
		// reason the started daemon gave.
		if !isNoDaemon(err) && ctx.Err() == nil && !isTimeout(err) {
			return nil, fmt.Errorf("connect to sessiond at %s: %w", cfg.Socket, err)
		}
		select {
		case <-ctx.Done():
			if startErr == nil && exited != nil {
				select {
				case werr := <-exited:
					startErr = daemonExitError(cfg, werr)
				default:
				}
			}
			if parent.Err() != nil {
				return nil, fmt.Errorf("connect to sessiond at %s: %w", cfg.Socket, context.Cause(parent))
			}
			if startErr == nil {
				startErr = fmt.Errorf("it did not listen within %s", timeout)
			}
			return nil, fmt.Errorf("started sessiond for %s but could not connect to %s: %w (log: %s)", cfg.DataDir, cfg.Socket, startErr, cfg.LogPath())
		case werr := <-exited:
			// Our daemon is gone. Another client's may be about to
			// listen, so keep trying until the deadline, but remember why,
			// unless a standalone process holds the data dir: no daemon
			// will ever listen for it.
			startErr = daemonExitError(cfg, werr)
			exited = nil
			if o, err := readOwner(cfg); err == nil && o.Mode == "standalone" && alive(o.PID) {
				return nil, fmt.Errorf("cannot start sessiond: %w", &AlreadyRunningError{DataDir: cfg.DataDir, Owner: o})
			}
		case <-time.After(delay):
			// A daemon listens some 15 ms after it starts: poll finely
			// around then rather than doubling past it.
			delay = min(delay*2, 5*time.Millisecond)
		}
	}
}

// isTimeout says a dial ran into its deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// owned returns c when the socket belongs to this user, and otherwise
// closes it and says why.
func owned(c net.Conn, socket string) (net.Conn, error) {
	if err := checkOwner(socket); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// start launches `sessiond serve` detached and returns a channel that
// receives its exit, should it exit.
func start(cfg Config, opts DialOptions) (<-chan error, error) {
	exe := opts.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the sessiond binary to start the daemon: %w", err)
		}
	}
	if err := PrepareDataDir(cfg); err != nil {
		return nil, fmt.Errorf("start the daemon: %w", err)
	}
	stderr, err := OpenPrivateFile(cfg.stderrPath(), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start the daemon: create its stderr file: %w", err)
	}
	defer stderr.Close()
	args := append([]string{"serve", "--data-dir", cfg.DataDir, "--socket", cfg.Socket}, opts.ServeArgs...)
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sessiond daemon (%s): %w", exe, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return exited, nil
}

func daemonExitError(cfg Config, werr error) error {
	b, _ := os.ReadFile(cfg.stderrPath())
	msg := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	}
	if msg == "" {
		if werr == nil {
			werr = errors.New("it exited")
		}
		return fmt.Errorf("the daemon exited: %w", werr)
	}
	return fmt.Errorf("the daemon exited: %s", msg)
}

// alive reports whether a process with pid exists.
func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}
