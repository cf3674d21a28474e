package daemon

import (
	"context"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

// commandRoutes registers the session commands: session/command (the
// built-ins init, summarize, compact, clear, and the workspace's and the
// user's templates), session/commands (the list, for completion in a
// UI), session/init and session/summarize.
func (d *Daemon) commandRoutes(m *rpc.Mux) {
	s := d.sessions
	handle(d, m, "session/command", func(ctx context.Context, c *rpc.Conn, p session.CommandParams) (session.CommandResult, error) {
		d.touch(c, p.SessionID)
		p.Asker = connAsker{c}
		return s.Command(ctx, p)
	})
	handle(d, m, "session/commands", func(ctx context.Context, c *rpc.Conn, p session.CommandsParams) (session.CommandsResult, error) {
		return s.Commands(ctx, p)
	}, rpc.Unordered()) // reads files only; a UI completes while a turn runs
	handle(d, m, "session/init", func(ctx context.Context, c *rpc.Conn, p session.InitParams) (session.InitResult, error) {
		d.touch(c, p.SessionID)
		p.Asker = connAsker{c}
		return s.Init(ctx, p)
	})
	handle(d, m, "session/summarize", func(ctx context.Context, c *rpc.Conn, p session.SummarizeParams) (session.SessionSummary, error) {
		return s.Summarize(ctx, p)
	})
}
