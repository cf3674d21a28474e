package daemon

import (
	"context"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

// contextRoutes registers what manages a session's context: what the
// model sees of its messages (DESIGN §2 session/clear, session/context,
// session/compact; §6 compaction).
func (d *Daemon) contextRoutes(m *rpc.Mux) {
	s := d.sessions
	// session/clear and session/compact queue behind the connection's
	// earlier requests for the session (a prompt sent before them on the
	// same connection ends first), and answer Busy while another
	// connection's turn runs.
	handle(d, m, "session/clear", func(ctx context.Context, c *rpc.Conn, p session.ClearParams) (session.Session, error) {
		d.touch(c, p.SessionID)
		return s.Clear(ctx, p)
	})
	handle(d, m, "session/compact", func(ctx context.Context, c *rpc.Conn, p session.CompactParams) (session.CompactResult, error) {
		d.touch(c, p.SessionID)
		return s.Compact(ctx, p)
	})
	handle(d, m, "session/context", func(ctx context.Context, c *rpc.Conn, p session.ContextParams) (session.ContextResult, error) {
		return s.Context(ctx, p)
	}, rpc.Unordered()) // read-only, like session/usage: answers while a turn runs
}
