package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/sourcegraph/jsonrpc2"
)

// ClientOptions configures Dial.
type ClientOptions struct {
	// Framing to speak; FramingAuto (the zero value) means NDJSON, since a
	// client must pick one before it writes.
	Framing         Framing
	MaxMessageBytes int64 // 0 means DefaultMaxMessageBytes
	// OnNotify receives the peer's notifications one at a time, in the
	// order they arrived, on a goroutine of its own (it may call the
	// Client, but while it blocks later notifications wait).
	OnNotify func(method string, params json.RawMessage)
	// OnCall answers the peer's requests (e.g. session/requestPermission),
	// each on its own goroutine; ctx is cancelled by $/cancelRequest or when
	// the connection closes. Return an *Error for a specific error code.
	// Nil answers MethodNotFound.
	OnCall func(ctx context.Context, method string, params json.RawMessage) (any, error)
	Logger *slog.Logger
}

// Client is the calling side of a connection, used by the CLI and tests.
type Client struct {
	opts   ClientOptions
	log    *slog.Logger
	stream *Stream
	jc     *jsonrpc2.Conn
	ready  chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	ids    atomic.Uint64

	mu       sync.Mutex
	incoming map[jsonrpc2.ID]context.CancelFunc // OnCall requests in progress
	notes    []note                             // notifications not yet delivered
	noting   bool                               // a delivery goroutine is running
}

type note struct {
	method string
	params json.RawMessage
}

// Dial starts a client over rwc and returns at once. The connection closes
// when ctx is cancelled, the peer hangs up, or Close is called.
func Dial(ctx context.Context, rwc io.ReadWriteCloser, opts ClientOptions) *Client {
	if opts.Framing == FramingAuto {
		opts.Framing = FramingNDJSON
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Client{
		opts:     opts,
		log:      log,
		ready:    make(chan struct{}),
		incoming: make(map[jsonrpc2.ID]context.CancelFunc),
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.stream = NewStream(rwc, StreamOptions{Framing: opts.Framing, MaxMessageBytes: opts.MaxMessageBytes, Logger: log})
	c.stream.onRequest = func(r *jsonrpc2.Request) { clientHandler{c}.Handle(c.ctx, nil, r) }
	c.jc = jsonrpc2.NewConn(c.ctx, c.stream, clientHandler{c}, jsonrpc2.SetLogger(printfLogger{log}))
	close(c.ready)
	go func() {
		<-c.jc.DisconnectNotify()
		c.cancel()
	}()
	return c
}

// Call sends a request and decodes the answer into result (which may be
// nil). An error answer comes back as *Error, so callers can switch on
// Code or Kind(); a closed connection as an error wrapping ErrClosed. If
// ctx ends first, the server is sent $/cancelRequest and ctx's error is
// returned.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	return call(ctx, c.jc, c.ids.Add(1), method, params, result)
}

// Notify sends a notification. It is safe for concurrent use.
func (c *Client) Notify(ctx context.Context, method string, params any) error {
	return notify(ctx, c.jc, c.stream, method, params)
}

// Close closes the connection. Closing twice is not an error.
func (c *Client) Close() error {
	if err := c.jc.Close(); err != nil && !errors.Is(err, jsonrpc2.ErrClosed) {
		return fmt.Errorf("close connection: %w", err)
	}
	return nil
}

// Done is closed when the connection has closed.
func (c *Client) Done() <-chan struct{} { return c.jc.DisconnectNotify() }

type clientHandler struct{ c *Client }

// Handle runs on jsonrpc2's read loop and must not block.
func (h clientHandler) Handle(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) {
	c := h.c
	<-c.ready
	var params json.RawMessage
	if req.Params != nil {
		params = *req.Params
	}
	switch {
	case req.Notif && req.Method == "$/cancelRequest":
		var p struct {
			ID *jsonrpc2.ID `json:"id"`
		}
		if json.Unmarshal(params, &p) == nil && p.ID != nil {
			c.mu.Lock()
			cancel := c.incoming[*p.ID]
			c.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		}
	case req.Notif:
		if c.opts.OnNotify != nil {
			c.enqueue(note{req.Method, params})
		}
	default:
		c.serve(req.ID, req.Method, params)
	}
}

// enqueue hands a notification to the delivery goroutine, starting one if
// none runs; it exits when the backlog is empty.
func (c *Client) enqueue(n note) {
	c.mu.Lock()
	c.notes = append(c.notes, n)
	if c.noting {
		c.mu.Unlock()
		return
	}
	c.noting = true
	c.mu.Unlock()
	go func() {
		for {
			c.mu.Lock()
			if len(c.notes) == 0 {
				c.noting = false
				c.notes = nil
				c.mu.Unlock()
				return
			}
			n := c.notes[0]
			c.notes[0] = note{}
			c.notes = c.notes[1:]
			c.mu.Unlock()
			c.opts.OnNotify(n.method, n.params)
		}
	}()
}

// serve answers one request from the peer with OnCall.
func (c *Client) serve(id jsonrpc2.ID, method string, params json.RawMessage) {
	r := &request{id: id, method: method}
	if c.opts.OnCall == nil {
		go c.writeError(r, NewError(CodeMethodNotFound,
			"unknown method %q; this client does not answer requests", method).With("method", method))
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	c.mu.Lock()
	c.incoming[id] = cancel
	c.mu.Unlock()
	go func() {
		result, err := c.onCall(ctx, method, params)
		c.mu.Lock()
		delete(c.incoming, id)
		c.mu.Unlock()
		cancel()
		if err != nil {
			e := AsError(err)
			if e.Code == CodeInternalError {
				c.log.Error("rpc: answering a request from the server failed", "method", method, "id", id.String(), "err", err)
			}
			c.writeError(r, e)
			return
		}
		data, err := json.Marshal(resultResponse{JSONRPC: "2.0", ID: id, Result: result})
		if err != nil {
			c.log.Error("rpc: cannot encode result", "method", method, "err", err)
			c.writeError(r, NewError(CodeInternalError, "internal error: the client could not encode its answer to %s", method))
			return
		}
		c.write(data)
	}()
}

func (c *Client) onCall(ctx context.Context, method string, params json.RawMessage) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("rpc: OnCall panicked", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = NewError(CodeInternalError, "internal error: the client crashed answering %s", method)
		}
	}()
	return c.opts.OnCall(ctx, method, params)
}

func (c *Client) writeError(r *request, e *Error) {
	data, err := json.Marshal(idErrorResponse{JSONRPC: "2.0", ID: r.id, Error: e})
	if err != nil {
		c.log.Error("rpc: cannot encode error", "method", r.method, "err", err)
		return
	}
	c.write(data)
}

func (c *Client) write(data []byte) {
	if err := c.stream.writeFrame(data); err != nil {
		c.log.Debug("rpc: cannot send reply, closing the connection", "err", err)
		_ = c.jc.Close()
	}
}
