package e2e

import (
	"context"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/workspace"
)

// An editor opening workspaces while it creates sessions on the same
// connection must not race on the connection's default directory: a race
// there can hand session/create a torn directory. The daemon runs under
// the race detector, which fails the test at cleanup if it reports one.
func TestConnectionOpenAndCreateConcurrently(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.serve()
	c := s.dial()
	dirs := []string{s.dir("one"), s.dir("two")}
	c.open(dirs[0])

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var p workspace.Project
			if err := c.Call(ctx, "workspace/open", map[string]any{"directory": dirs[i%2]}, &p); err != nil {
				t.Errorf("workspace/open %s: %v", dirs[i%2], err)
			}
		})
		wg.Go(func() {
			// No directory: the session goes to the workspace this
			// connection opened last.
			var ses session.Session
			if err := c.Call(ctx, "session/create", session.CreateParams{}, &ses); err != nil {
				t.Errorf("session/create without a directory: %v", err)
			} else if ses.Directory != dirs[0] && ses.Directory != dirs[1] {
				t.Errorf("session/create without a directory made a session in %q, want one of %q", ses.Directory, dirs)
			}
		})
	}
	wg.Wait()
}
