package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

// ServerOptions configures Serve.
type ServerOptions struct {
	Framing         Framing // FramingAuto (the zero value) detects it
	MaxMessageBytes int64   // 0 means DefaultMaxMessageBytes
	Logger          *slog.Logger
	// Initialize answers the LSP "initialize" request (serverInfo,
	// capabilities). Nil answers {"capabilities":{}}.
	Initialize func(ctx context.Context, c *Conn, params json.RawMessage) (any, error)
	// OnClose runs once when the connection has closed, before Done is
	// closed.
	OnClose func(c *Conn)
	// OnOpen runs once before the first message is read, so that what the
	// handlers look up per connection exists before any of them runs. It
	// must not call the Conn's Notify, Call or Close: they wait until Serve
	// has finished starting the connection.
	OnOpen func(c *Conn)
}

// Conn is one served connection.
//
// Requests run concurrently, each in its own goroutine, except that
// requests whose params carry the same top-level "sessionID" run one after
// another in arrival order, so a client can pipeline prompt, revert and
// friends for a session without racing itself.
type Conn struct {
	id     uint64
	mux    *Mux
	opts   ServerOptions
	log    *slog.Logger
	stream *Stream
	jc     *jsonrpc2.Conn
	ready  chan struct{} // closed once jc is set
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	initialize *method
	shutdown   *method
	shutting   atomic.Bool
	callIDs    atomic.Uint64
	idle       chan func() // idle workers receive here

	// running counts requests and notifications accepted and not yet
	// answered, so that a peer's EOF waits for them.
	running sync.WaitGroup

	mu       sync.Mutex
	inflight map[jsonrpc2.ID]*request
	queues   map[string]*queue
}

// request is one incoming request or notification on its way through
// dispatch.
type request struct {
	id     jsonrpc2.ID
	notif  bool
	method string
	m      *method // nil: unknown method
	params json.RawMessage
	ctx    context.Context
	cancel context.CancelFunc
	queue  *queue // the queue it waits in, guarded by Conn.mu
}

// queue runs the requests for one sessionID in order. It exists only while
// it has work: drain drops it as soon as it is empty, so a connection that
// touched many sessions keeps no goroutine or map entry per session.
type queue struct {
	key     string
	pending []*request
}

// Serve starts serving rwc with mux and returns at once. The connection
// closes when ctx is cancelled, the peer hangs up, "exit" arrives or Close
// is called.
func Serve(ctx context.Context, rwc io.ReadWriteCloser, mux *Mux, opts ServerOptions) *Conn {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Conn{
		id:       mux.connIDs.Add(1),
		mux:      mux,
		opts:     opts,
		ready:    make(chan struct{}),
		done:     make(chan struct{}),
		idle:     make(chan func()),
		inflight: make(map[jsonrpc2.ID]*request),
		queues:   make(map[string]*queue),
	}
	c.log = log.With("conn", c.id)
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.initialize = &method{name: "initialize", unordered: true, call: c.callInitialize}
	c.shutdown = &method{name: "shutdown", unordered: true, call: func(context.Context, *Conn, json.RawMessage) (any, error) {
		return nil, nil
	}}
	c.stream = NewStream(rwc, StreamOptions{Framing: opts.Framing, MaxMessageBytes: opts.MaxMessageBytes, Logger: c.log})
	c.stream.onRequest = func(r *jsonrpc2.Request) { serverHandler{c}.Handle(c.ctx, nil, r) }
	c.stream.onEOF = c.running.Wait
	c.stream.onMessage = func() { mux.messages.Add(1) }
	if opts.OnOpen != nil {
		opts.OnOpen(c)
	}
	c.jc = jsonrpc2.NewConn(c.ctx, c.stream, serverHandler{c}, jsonrpc2.SetLogger(printfLogger{c.log}))
	close(c.ready)
	go c.watch()
	return c
}

func (c *Conn) watch() {
	<-c.jc.DisconnectNotify()
	c.cancel()
	c.log.Debug("rpc: connection closed")
	if c.opts.OnClose != nil {
		c.opts.OnClose(c)
	}
	close(c.done)
}

func (c *Conn) callInitialize(ctx context.Context, _ *Conn, params json.RawMessage) (any, error) {
	if c.opts.Initialize == nil {
		return map[string]any{"capabilities": map[string]any{}}, nil
	}
	return c.opts.Initialize(ctx, c, params)
}

// ID identifies the connection in logs and in the daemon's bookkeeping. It
// is unique among the connections served with one Mux (the daemon has one,
// so unique per process) and increases with each connection.
func (c *Conn) ID() uint64 { return c.id }

// Context is cancelled when the connection closes; use it for work that
// belongs to the connection rather than to one request.
func (c *Conn) Context() context.Context { return c.ctx }

// Done is closed after the connection has closed and OnClose has returned.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Framing returns the connection's framing (FramingAuto until detected).
func (c *Conn) Framing() Framing { return c.stream.Framing() }

// Close closes the connection; running requests see their context
// cancelled. Closing twice is not an error.
func (c *Conn) Close() error {
	<-c.ready
	if err := c.jc.Close(); err != nil && !errors.Is(err, jsonrpc2.ErrClosed) {
		return fmt.Errorf("close connection %d: %w", c.id, err)
	}
	return nil
}

// Notify sends a notification to the peer. It is safe for concurrent use.
// params given as json.RawMessage are sent as they are, unchecked.
func (c *Conn) Notify(ctx context.Context, method string, params any) error {
	<-c.ready
	return notify(ctx, c.jc, c.stream, method, params)
}

// Call sends a request to the peer and waits for the answer, decoding it
// into result (which may be nil). An error answer is returned as *Error;
// if ctx ends first, the peer is sent $/cancelRequest.
func (c *Conn) Call(ctx context.Context, method string, params, result any) error {
	<-c.ready
	return call(ctx, c.jc, c.callIDs.Add(1), method, params, result)
}

// serverHandler adapts Conn to jsonrpc2.Handler without exporting Handle.
type serverHandler struct{ c *Conn }

// Handle runs on jsonrpc2's read loop: it only routes and must not block.
func (h serverHandler) Handle(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) {
	c := h.c
	<-c.ready
	var params json.RawMessage
	if req.Params != nil {
		params = *req.Params
	}
	if req.Notif {
		c.onNotification(req.Method, params)
		return
	}
	c.onRequest(req.ID, req.Method, params)
}

func (c *Conn) onNotification(name string, params json.RawMessage) {
	switch name {
	case "$/cancelRequest":
		c.cancelRequest(params)
		return
	case "exit":
		c.log.Debug("rpc: exit received, closing the connection")
		_ = c.jc.Close()
		return
	case "initialized":
		return
	}
	if c.shutting.Load() {
		c.log.Debug("rpc: ignoring notification after shutdown", "method", name)
		return
	}
	m := c.mux.lookup(name)
	if m == nil {
		if !strings.HasPrefix(name, "$/") {
			c.log.Debug("rpc: ignoring unknown notification", "method", name)
		}
		return
	}
	c.schedule(&request{notif: true, method: name, m: m, params: params, ctx: c.ctx, cancel: func() {}})
}

func (c *Conn) onRequest(id jsonrpc2.ID, name string, params json.RawMessage) {
	r := &request{id: id, method: name, params: params}
	switch {
	case name == "exit":
		go func() {
			c.writeResult(r, nil)
			_ = c.jc.Close()
		}()
		return
	case c.shutting.Load():
		go c.writeError(r, NewError(CodeInvalidRequest,
			"server is shutting down; only \"exit\" is accepted after \"shutdown\""))
		return
	case name == "shutdown":
		c.shutting.Store(true)
		r.m = c.shutdown
	case name == "initialize":
		r.m = c.initialize
	case name == "$/cancelRequest":
		c.cancelRequest(params)
		go c.writeResult(r, nil)
		return
	default:
		r.m = c.mux.lookup(name)
	}
	r.ctx, r.cancel = context.WithCancel(c.ctx)

	c.mu.Lock()
	if _, dup := c.inflight[id]; dup {
		c.mu.Unlock()
		r.cancel()
		go c.writeError(r, NewError(CodeInvalidRequest,
			"request id %s is already used by a request in progress; use a new id for each request", id))
		return
	}
	c.inflight[id] = r
	c.mu.Unlock()
	c.schedule(r)
}

// schedule starts r, or queues it behind earlier requests for its session.
func (c *Conn) schedule(r *request) {
	c.running.Add(1)
	key := ""
	if r.m != nil && !r.m.unordered {
		key = sessionKey(r.params)
	}
	if key == "" {
		c.spawn(func() { c.run(r) })
		return
	}
	c.mu.Lock()
	if q := c.queues[key]; q != nil {
		q.pending = append(q.pending, r)
		r.queue = q
		c.mu.Unlock()
		return
	}
	q := &queue{key: key}
	c.queues[key] = q
	c.mu.Unlock()
	c.spawn(func() { c.drain(q, r) })
}

// workerIdle is how long a finished request goroutine waits for the next
// request before exiting.
const workerIdle = 5 * time.Second

// spawn runs fn on an idle worker goroutine of this connection, or on a new
// one. Reusing goroutines keeps the stack they grew while decoding JSON; a
// fresh goroutine pays to grow it again on every request.
func (c *Conn) spawn(fn func()) {
	select {
	case c.idle <- fn:
	default:
		go c.worker(fn)
	}
}

func (c *Conn) worker(fn func()) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		fn()
		t.Reset(workerIdle)
		select {
		case fn = <-c.idle:
		case <-t.C:
			return
		case <-c.ctx.Done():
			return
		}
	}
}

// drain runs r and then whatever queued up behind it, and exits when the
// queue is empty.
func (c *Conn) drain(q *queue, r *request) {
	for {
		c.run(r)
		c.mu.Lock()
		if len(q.pending) == 0 {
			delete(c.queues, q.key)
			c.mu.Unlock()
			return
		}
		r = q.pending[0]
		q.pending[0] = nil
		q.pending = q.pending[1:]
		r.queue = nil
		c.mu.Unlock()
	}
}

// sessionKey peeks at params.sessionID without decoding the rest.
func sessionKey(params json.RawMessage) string {
	if len(params) == 0 || params[0] != '{' {
		return ""
	}
	raw := member(params, "sessionID")
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	body := raw[1 : len(raw)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body)
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// cancelRequest handles $/cancelRequest: a running request sees its context
// cancelled; a queued one is dropped and answered at once.
func (c *Conn) cancelRequest(params json.RawMessage) {
	var p struct {
		ID *jsonrpc2.ID `json:"id"`
	}
	if err := json.Unmarshal(params, &p); err != nil || p.ID == nil {
		c.log.Debug("rpc: ignoring $/cancelRequest without a usable id", "params", string(params))
		return
	}
	c.mu.Lock()
	r := c.inflight[*p.ID]
	if r == nil {
		c.mu.Unlock()
		return // already answered
	}
	q := r.queue
	if q != nil {
		if i := slices.Index(q.pending, r); i >= 0 {
			q.pending = slices.Delete(q.pending, i, i+1)
		}
		r.queue = nil
		delete(c.inflight, r.id)
	}
	c.mu.Unlock()
	r.cancel()
	if q != nil {
		go func() {
			defer c.running.Done() // it will never run
			c.writeError(r, errCancelled())
		}()
	}
}

// run executes one request and answers it.
func (c *Conn) run(r *request) {
	defer c.running.Done()
	var (
		result   any
		err      error
		panicked bool
	)
	if err = r.ctx.Err(); err == nil {
		result, panicked, err = c.invoke(r)
	}
	if !r.notif {
		// Forget the id before answering, so the peer may reuse it as soon
		// as it has the answer.
		c.mu.Lock()
		delete(c.inflight, r.id)
		c.mu.Unlock()
	}
	r.cancel()
	if r.notif {
		if err != nil && !panicked {
			c.log.Warn("rpc: notification handler failed", "method", r.method, "err", err)
		}
		return
	}
	if err != nil {
		e := AsError(err)
		if e.Code == CodeInternalError && !panicked {
			c.log.Error("rpc: request failed", "method", r.method, "id", r.id.String(), "err", err)
		}
		c.writeError(r, e)
		return
	}
	c.writeResult(r, result)
	if r.m != nil && r.m.afterReply != nil {
		r.m.afterReply(c)
	}
}

// invoke calls the handler, turning a panic into an InternalError so one
// bad request cannot take the daemon down.
func (c *Conn) invoke(r *request) (result any, panicked bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("rpc: handler panicked", "method", r.method, "id", r.id.String(),
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			result, panicked = nil, true
			err = NewError(CodeInternalError,
				"internal error: the %s handler crashed; the daemon log has the details, please report it", r.method)
		}
	}()
	if r.m == nil {
		return nil, false, NewError(CodeMethodNotFound,
			"unknown method %q; see docs/protocol.md for the methods sessiond serves", r.method).With("method", r.method)
	}
	result, err = r.m.call(r.ctx, c, r.params)
	return result, false, err
}

func (c *Conn) writeResult(r *request, result any) {
	data, err := json.Marshal(resultResponse{JSONRPC: "2.0", ID: r.id, Result: result})
	if err != nil {
		c.log.Error("rpc: cannot encode result", "method", r.method, "id", r.id.String(), "err", err)
		c.writeError(r, NewError(CodeInternalError,
			"internal error: the result of %s could not be encoded; the daemon log has the details", r.method))
		return
	}
	c.write(r, data)
}

func (c *Conn) writeError(r *request, e *Error) {
	data, err := json.Marshal(idErrorResponse{JSONRPC: "2.0", ID: r.id, Error: e})
	if err != nil {
		c.log.Error("rpc: cannot encode error", "method", r.method, "id", r.id.String(), "err", err)
		data, _ = json.Marshal(idErrorResponse{JSONRPC: "2.0", ID: r.id, Error: NewError(CodeInternalError,
			"internal error: the error of %s could not be encoded; the daemon log has the details", r.method)})
	}
	c.write(r, data)
}

// write sends a reply; a failed write leaves the stream unusable, so the
// connection is closed.
func (c *Conn) write(r *request, data []byte) {
	if err := c.stream.writeFrame(data); err != nil {
		c.log.Debug("rpc: cannot send reply, closing the connection", "method", r.method, "id", r.id.String(), "err", err)
		_ = c.jc.Close()
	}
}

type resultResponse struct {
	JSONRPC string      `json:"jsonrpc"`
	ID      jsonrpc2.ID `json:"id"`
	Result  any         `json:"result"`
}

type idErrorResponse struct {
	JSONRPC string      `json:"jsonrpc"`
	ID      jsonrpc2.ID `json:"id"`
	Error   *Error      `json:"error"`
}

type notification struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  any    `json:"params,omitempty"`
}

// notify writes a notification straight to the stream; jsonrpc2 would
// encode the params twice. A failed write leaves a partial frame behind, so
// it closes the connection.
func notify(ctx context.Context, jc *jsonrpc2.Conn, s *Stream, method string, params any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("notify %s: %w", method, err)
	}
	if isClosed(jc.DisconnectNotify()) {
		return fmt.Errorf("notify %s: %w", method, ErrClosed)
	}
	var parts [][]byte
	if raw, ok := params.(json.RawMessage); ok {
		// Already encoded (the daemon encodes each change once for all
		// its connections): json.Marshal would validate and copy it all
		// again, and a message built around it would be one more copy
		// per connection. So it is written as it is, between its
		// envelope's head and tail.
		m, err := json.Marshal(method)
		if err != nil {
			return fmt.Errorf("notify %s: encode method: %w", method, err)
		}
		head := make([]byte, 0, len(m)+40)
		head = append(head, `{"jsonrpc":"2.0","method":`...)
		head = append(head, m...)
		head = append(head, `,"params":`...)
		parts = [][]byte{head, raw, []byte("}")}
	} else {
		data, err := json.Marshal(notification{JSONRPC: "2.0", Method: method, Params: params})
		if err != nil {
			return fmt.Errorf("notify %s: encode params: %w", method, err)
		}
		parts = [][]byte{data}
	}
	if err := s.writeFrame(parts...); err != nil {
		_ = jc.Close()
		return fmt.Errorf("notify %s: %w: %w", method, ErrClosed, err)
	}
	return nil
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

type cancelParams struct {
	ID jsonrpc2.ID `json:"id"`
}

// call sends a request with the given id through jsonrpc2 and waits.
func call(ctx context.Context, jc *jsonrpc2.Conn, id uint64, method string, params, result any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("call %s: %w", method, err)
	}
	rid := jsonrpc2.ID{Num: id}
	w, err := jc.DispatchCall(ctx, method, params, jsonrpc2.PickID(rid))
	if err != nil {
		if errors.Is(err, jsonrpc2.ErrClosed) {
			return fmt.Errorf("call %s: %w", method, ErrClosed)
		}
		return fmt.Errorf("call %s: %w", method, err)
	}
	err = w.Wait(ctx, result)
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
		// Tell the peer to stop. Wait (briefly) for the write: a caller
		// that closes the connection right after must not lose the
		// cancel, or the peer finishes work nobody wants any more.
		sent := make(chan struct{})
		go func() {
			_ = jc.Notify(context.Background(), "$/cancelRequest", cancelParams{ID: rid})
			close(sent)
		}()
		select {
		case <-sent:
		case <-time.After(time.Second):
		}
		return fmt.Errorf("call %s: %w", method, cerr)
	}
	var je *jsonrpc2.Error
	if errors.As(err, &je) {
		return fromJSONRPC(je)
	}
	if errors.Is(err, jsonrpc2.ErrClosed) {
		return fmt.Errorf("call %s: %w", method, ErrClosed)
	}
	return fmt.Errorf("call %s: decode result: %w", method, err)
}

// printfLogger routes jsonrpc2's own log lines (protocol errors, stray
// responses) to slog at debug level; jsonrpc2 would otherwise write to the
// standard logger.
type printfLogger struct{ l *slog.Logger }

func (p printfLogger) Printf(format string, args ...any) {
	if !p.l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	p.l.Debug(strings.TrimSpace(fmt.Sprintf(format, args...)))
}
