package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/rpc"
)

// connect reaches the daemon, starting it if need be, and initializes.
func (a *app) connect(ctx context.Context) (*rpc.Client, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	conn, err := daemon.Dial(ctx, cfg, daemon.DialOptions{AutoStart: true})
	if err != nil {
		return nil, err
	}
	return a.handshake(ctx, rpc.Dial(ctx, conn, rpc.ClientOptions{}))
}

// dialNoStart reaches a running daemon only.
func (a *app) dialNoStart(ctx context.Context, cfg daemon.Config) (*rpc.Client, error) {
	conn, err := daemon.Dial(ctx, cfg, daemon.DialOptions{})
	if err != nil {
		return nil, err
	}
	return a.handshake(ctx, rpc.Dial(ctx, conn, rpc.ClientOptions{}))
}

func (a *app) handshake(ctx context.Context, c *rpc.Client) (*rpc.Client, error) {
	params := map[string]any{"clientInfo": map[string]any{"name": "sessiond-cli", "version": buildVersion()}}
	var res json.RawMessage
	if err := c.Call(ctx, "initialize", params, &res); err != nil {
		c.Close()
		return nil, fmt.Errorf("initialize: %w", err)
	}
	return c, nil
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
