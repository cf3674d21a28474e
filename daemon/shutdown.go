package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/rpc"
)

// ShutdownResult is the result of daemon/shutdown.
type ShutdownResult struct {
	OK  bool `json:"ok"`
	PID int  `json:"pid"`
}

// requestStop makes the daemon shut down as on SIGTERM: Serve returns and
// Run closes everything, aborting and recording the running turns. It is
// called once daemon/shutdown's reply is written, so the client hears it.
func (d *Daemon) requestStop() {
	d.stopOnce.Do(func() { close(d.stop) })
}

// StopTimeout bounds how long Stop waits for a daemon to exit: it aborts
// its running turns and lets them record what they did first.
const StopTimeout = 30 * time.Second

// StopResult says what Stop did.
type StopResult struct {
	// PID is the daemon that was stopped; 0 when none was running.
	PID int `json:"pid"`
	// Signalled is set when the daemon was sent SIGTERM instead of
	// daemon/shutdown, and Why says why.
	Signalled bool   `json:"signalled,omitempty"`
	Why       string `json:"why,omitempty"`
}

// Stop shuts down the daemon of cfg's data dir and waits until its process
// is gone, at most timeout (0: StopTimeout). It asks with daemon/shutdown;
// a daemon too old to know that method, or one that holds the data dir
// but does not answer on the socket, gets SIGTERM, which it handles alike.
// With no daemon running it returns a zero StopResult.
func Stop(ctx context.Context, cfg Config, timeout time.Duration) (StopResult, error) {
	if timeout <= 0 {
		timeout = StopTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var res StopResult
	conn, err := Dial(ctx, cfg, DialOptions{})
	switch {
	case err != nil && !isNoDaemon(err):
		return res, err
	case err != nil:
		// Nobody answers on the socket. A daemon may still hold the data
		// dir (starting, or its socket was removed).
		o, oerr := readOwner(cfg)
		if oerr != nil || !alive(o.PID) || !held(cfg) {
			return res, nil
		}
		if o.Mode != "serve" {
			return res, fmt.Errorf("data dir %s is in use by a standalone sessiond (pid %d), not a daemon: end the program that runs it", cfg.DataDir, o.PID)
		}
		res = StopResult{PID: o.PID, Signalled: true, Why: "it holds the data dir but does not answer on " + cfg.Socket}
		if err := syscall.Kill(o.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return res, fmt.Errorf("stop the daemon (pid %d): %w", o.PID, err)
		}
	default:
		c := rpc.Dial(ctx, conn, rpc.ClientOptions{})
		res, err = shutdown(ctx, cfg, c)
		c.Close()
		if err != nil {
			return res, err
		}
	}
	return res, waitGone(ctx, cfg, res.PID, timeout)
}

// shutdown asks the daemon on c to shut down, falling back to SIGTERM for
// a daemon that does not know daemon/shutdown.
func shutdown(ctx context.Context, cfg Config, c *rpc.Client) (StopResult, error) {
	var st DaemonStatus
	if err := c.Call(ctx, "daemon/status", nil, &st); err != nil {
		return StopResult{}, fmt.Errorf("ask the daemon at %s who it is: %w", cfg.Socket, err)
	}
	var sr ShutdownResult
	err := c.Call(ctx, "daemon/shutdown", nil, &sr)
	var re *rpc.Error
	switch {
	case err == nil:
		return StopResult{PID: st.PID}, nil
	case !errors.As(err, &re) || re.Code != rpc.CodeMethodNotFound:
		return StopResult{PID: st.PID}, fmt.Errorf("ask the daemon (pid %d) to shut down: %w", st.PID, err)
	}
	// An older daemon: SIGTERM shuts it down cleanly too. Signal the pid
	// daemon.json names, which holds the data dir.
	pid := st.PID
	if o, err := readOwner(cfg); err == nil && o.PID > 0 {
		pid = o.PID
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return StopResult{PID: pid}, fmt.Errorf("stop the daemon (pid %d), which has no daemon/shutdown, with SIGTERM: %w", pid, err)
	}
	return StopResult{PID: pid, Signalled: true, Why: fmt.Sprintf("it (version %s) has no daemon/shutdown", st.Version)}, nil
}

// waitGone waits until process pid has exited.
func waitGone(ctx context.Context, cfg Config, pid int, timeout time.Duration) error {
	for !gone(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the daemon (pid %d) did not exit within %s; it may still be recording its running turns: its log is %s, and `kill -9 %d` ends it at once (every acknowledged change survives)",
				pid, timeout, cfg.LogPath(), pid)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// gone reports whether process pid has exited: it no longer exists, or it
// is a zombie its parent has not reaped yet.
func gone(pid int) bool {
	if pid <= 0 || errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name, which is in parentheses and may
	// hold either itself.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// held reports whether a process holds the data dir's lock.
func held(cfg Config) bool {
	f, err := os.OpenFile(cfg.lockPath(), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
