package daemon

import "github.com/sessiond/sessiond/rpc"

// The per-connection state lives under d.mu: a connection's requests run
// concurrently (workspace/open beside session/create), so it is read and
// written only through these accessors, never through a pointer kept past
// the lock.

// lastDir is the workspace c opened last, or "" if none (or c is gone).
func (d *Daemon) lastDir(c *rpc.Conn) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.conns[c]; s != nil {
		return s.lastDir
	}
	return ""
}

// setLastDir records dir as the workspace c opened last.
func (d *Daemon) setLastDir(c *rpc.Conn, dir string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.conns[c]; s != nil {
		s.lastDir = dir
	}
}
