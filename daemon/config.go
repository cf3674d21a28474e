package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Config is what a daemon, or a client looking for one, needs to know.
type Config struct {
	// DataDir holds the store, the lock and the log.
	DataDir string
	// Socket is the Unix socket path the daemon listens on.
	Socket string
	// IdleTimeout stops the daemon after this long with no client; 0 never.
	IdleTimeout time.Duration
	// MaxMessageBytes caps one JSON-RPC message; 0 means the default.
	MaxMessageBytes int64
	// Version is reported by initialize and daemon/status.
	Version string
	// MaxFileSize is the largest file snapshots keep; larger ones are
	// recorded as skipped and never touched by a revert. 0: 10 MiB.
	MaxFileSize int64
	// DiskBudget caps what snapshots take in the store: over it, gc gives
	// up the snapshots of archived sessions, oldest first. 0: 2 GiB,
	// negative: no budget.
	DiskBudget int64
	// GCPin overrides how long the collector keeps a fresh capture nobody
	// recorded yet: 0 is the default (10 minutes), negative turns the pin
	// off (tests of the collector).
	GCPin time.Duration
	// NoWriteTrace, when set, runs commands without tracing their writes
	// and says why; their changes are then unattributed.
	NoWriteTrace string
	// CrashPoint names a test-only point where the daemon kills itself
	// (SESSIOND_TEST_CRASH_POINT), so tests can check recovery.
	CrashPoint string
	// HideMethods leaves methods out of the method table, so tests can
	// play an older daemon (SESSIOND_TEST_HIDE_METHODS).
	HideMethods []string
}

// DefaultIdleTimeout is how long a daemon with no client waits before it
// exits.
const DefaultIdleTimeout = 10 * time.Minute

// maxSocketPath is the longest path a Unix socket address holds on Linux
// (sun_path is 108 bytes including the terminating NUL).
const maxSocketPath = 107

// Resolve fills in the defaults DESIGN §1 gives: the data dir under
// $XDG_DATA_HOME (else ~/.local/share), the socket under $XDG_RUNTIME_DIR
// when the data dir is the default one, else inside the data dir (so that
// two data dirs never fight over one socket).
func (c Config) Resolve(getenv func(string) string) (Config, error) {
	explicitData := c.DataDir != ""
	if c.DataDir == "" {
		base := getenv("XDG_DATA_HOME")
		if base == "" {
			home := getenv("HOME")
			if home == "" {
				return c, errors.New("cannot choose a data dir: neither XDG_DATA_HOME nor HOME is set; pass --data-dir or set SESSIOND_DATA_DIR")
			}
			base = filepath.Join(home, ".local", "share")
		}
		c.DataDir = filepath.Join(base, "sessiond")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return c, fmt.Errorf("data dir %q: %w", c.DataDir, err)
	}
	c.DataDir = abs
	if c.Socket == "" {
		if rt := getenv("XDG_RUNTIME_DIR"); rt != "" && !explicitData {
			c.Socket = filepath.Join(rt, "sessiond", "sessiond.sock")
		} else {
			c.Socket = filepath.Join(c.DataDir, "sessiond.sock")
		}
	}
	if c.Socket, err = filepath.Abs(c.Socket); err != nil {
		return c, fmt.Errorf("socket %q: %w", c.Socket, err)
	}
	if len(c.Socket) > maxSocketPath {
		return c, fmt.Errorf("socket path %s is %d bytes, longer than the %d a Unix socket allows: pass a shorter --socket or set SESSIOND_SOCKET", c.Socket, len(c.Socket), maxSocketPath)
	}
	return c, nil
}

// ResolveFromEnv is Resolve with the process environment.
func (c Config) ResolveFromEnv() (Config, error) { return c.Resolve(os.Getenv) }

// LogPath is the daemon's log file.
func (c Config) LogPath() string { return filepath.Join(c.DataDir, "sessiond.log") }

// StorePath is the Badger directory.
func (c Config) StorePath() string { return filepath.Join(c.DataDir, "store") }

func (c Config) lockPath() string   { return filepath.Join(c.DataDir, "daemon.lock") }
func (c Config) ownerPath() string  { return filepath.Join(c.DataDir, "daemon.json") }
func (c Config) stderrPath() string { return filepath.Join(c.DataDir, "daemon.stderr") }
