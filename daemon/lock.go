package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Owner describes the process that holds a data dir.
type Owner struct {
	PID     int    `json:"pid"`
	Socket  string `json:"socket,omitempty"`
	Mode    string `json:"mode"` // "serve" or "standalone"
	Version string `json:"version"`
	Started int64  `json:"started"`
}

// AlreadyRunningError says another process holds the data dir.
type AlreadyRunningError struct {
	DataDir string
	Owner   Owner
}

func (e *AlreadyRunningError) Error() string {
	if e.Owner.Mode == "standalone" {
		return fmt.Sprintf("data dir %s is in use by a standalone sessiond (pid %d); stop it or pass another --data-dir", e.DataDir, e.Owner.PID)
	}
	return fmt.Sprintf("a sessiond daemon is already running for data dir %s (pid %d, socket %s); connect to it with `sessiond stdio`, or pass another --data-dir", e.DataDir, e.Owner.PID, e.Owner.Socket)
}

// dirLock is an exclusive hold on a data dir. Badger would refuse a second
// opener too, but with an unhelpful message and only after we had touched
// the socket; the flock also dies with its process, so a kill -9 never
// leaves a stale lock behind.
type dirLock struct {
	f   *os.File
	cfg Config
}

// lockDataDir takes the data dir for this process and records who holds it.
func lockDataDir(cfg Config, mode string) (*dirLock, error) {
	if err := PrepareDataDir(cfg); err != nil {
		return nil, err
	}
	f, err := OpenPrivateFile(cfg.lockPath(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			owner, _ := readOwner(cfg)
			return nil, &AlreadyRunningError{DataDir: cfg.DataDir, Owner: owner}
		}
		return nil, fmt.Errorf("lock data dir %s: %w", cfg.DataDir, err)
	}
	owner := Owner{PID: os.Getpid(), Mode: mode, Version: cfg.Version, Started: time.Now().UnixMilli()}
	if mode == "serve" {
		owner.Socket = cfg.Socket
	}
	b, _ := json.Marshal(owner)
	if err := writePrivateFile(cfg.ownerPath(), b); err != nil {
		f.Close()
		return nil, fmt.Errorf("record daemon owner: %w", err)
	}
	return &dirLock{f: f, cfg: cfg}, nil
}

func (l *dirLock) release() {
	os.Remove(l.cfg.ownerPath())
	l.f.Close()
}

// readOwner returns what the holder of the data dir recorded.
func readOwner(cfg Config) (Owner, error) {
	var o Owner
	b, err := os.ReadFile(cfg.ownerPath())
	if err != nil {
		return o, err
	}
	return o, json.Unmarshal(b, &o)
}

// writePrivateFile replaces the content of a file of the data dir, never
// through a link (OpenPrivateFile).
func writePrivateFile(path string, data []byte) error {
	f, err := OpenPrivateFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
