package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// listen opens the daemon's socket: its directory is created 0700 (an
// existing one, such as /tmp for a --socket there, keeps its mode: the
// socket's own 0600 is what keeps other users out), the socket is 0600, a socket or directory owned by another user is refused,
// a live socket (another daemon answers) is refused, and a stale one left
// by a killed daemon is removed and replaced.
func listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if err := checkOwner(dir); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if err := checkOwner(path); err != nil {
			return nil, err
		}
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket: remove it or pass another --socket", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("another sessiond is already serving socket %s: connect to it, or pass another --socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("restrict socket %s: %w", path, err)
	}
	return l, nil
}

// checkOwner refuses a path that belongs to another user: talking to, or
// listening in, someone else's directory would let them read our sessions.
func checkOwner(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Getuid(); int(st.Uid) != uid {
		return fmt.Errorf("%s is owned by uid %d, not by you (uid %d): refusing to use it; pass another --socket", path, st.Uid, uid)
	}
	return nil
}

// isNoDaemon reports whether a dial error means nobody serves the socket.
func isNoDaemon(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}
