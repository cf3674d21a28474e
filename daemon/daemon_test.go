package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond/rpc"
)

// Open with a nil logger is how an embedding program says "no logs": the
// daemon must open, serve a connection and close without a logger.
func TestOpenWithNilLogger(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	cfg := Config{DataDir: filepath.Join(dir, "data"), Socket: filepath.Join(dir, "s.sock"), Version: "test"}
	d, err := Open(ctx, cfg, "standalone", nil)
	if err != nil {
		t.Fatalf("Open with a nil logger: %v", err)
	}
	defer d.Close()

	server, client := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- d.ServeConn(ctx, server) }()
	c := rpc.Dial(ctx, client, rpc.ClientOptions{Logger: slog.New(slog.DiscardHandler)})
	var res json.RawMessage
	if err := c.Call(ctx, "initialize", map[string]any{}, &res); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	ws := t.TempDir()
	if err := c.Call(ctx, "workspace/open", map[string]any{"directory": ws}, &res); err != nil {
		t.Fatalf("workspace/open: %v", err)
	}
	if err := c.Call(ctx, "session/create", map[string]any{}, &res); err != nil {
		t.Fatalf("session/create: %v", err)
	}
	c.Close()
	if err := <-served; err != nil {
		t.Errorf("ServeConn: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
