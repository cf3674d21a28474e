package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// socketPair returns the two ends of a Unix stream socketpair: unlike
// net.Pipe it buffers in the kernel, as the daemon's real sockets do.
func socketPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	conn := func(fd int, name string) net.Conn {
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatalf("FileConn: %v", err)
		}
		return c
	}
	a, b := conn(fds[0], "a"), conn(fds[1], "b")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// logBuffer collects log output for assertions; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startServer serves mux on one end of a socketpair and returns the other.
func startServer(t testing.TB, mux *Mux, opts ServerOptions) (net.Conn, *Conn) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	client, server := socketPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	c := Serve(ctx, server, mux, opts)
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Errorf("connection did not close")
		}
	})
	return client, c
}

// peer speaks raw bytes to a server, to test exactly what goes on the wire.
type peer struct {
	t       testing.TB
	conn    net.Conn
	r       *bufio.Reader
	framing Framing
}

func newPeer(t testing.TB, conn net.Conn, f Framing) *peer {
	return &peer{t: t, conn: conn, r: bufio.NewReader(conn), framing: f}
}

func (p *peer) raw(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.conn, s); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// send frames body with the peer's framing.
func (p *peer) send(body string) {
	p.t.Helper()
	if p.framing == FramingLSP {
		p.raw(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body))
		return
	}
	p.raw(body + "\n")
}

// frame reads one reply, checking it uses the peer's framing.
func (p *peer) frame() []byte {
	p.t.Helper()
	b, err := p.readFrame()
	if err != nil {
		p.t.Fatalf("read reply: %v", err)
	}
	return b
}

func (p *peer) readFrame() ([]byte, error) {
	p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if p.framing == FramingNDJSON {
		line, err := p.r.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		if len(line) < 2 || line[0] != '{' {
			return nil, fmt.Errorf("reply %q is not an NDJSON object line", line)
		}
		return line[:len(line)-1], nil
	}
	n := -1
	for {
		line, err := p.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if !strings.HasSuffix(line, "\r\n") {
			return nil, fmt.Errorf("header line %q does not end in CRLF", line)
		}
		line = strings.TrimSuffix(line, "\r\n")
		if line == "" {
			break
		}
		v, ok := strings.CutPrefix(line, "Content-Length: ")
		if !ok {
			return nil, fmt.Errorf("unexpected header %q", line)
		}
		if n, err = strconv.Atoi(v); err != nil {
			return nil, err
		}
	}
	if n < 0 {
		return nil, errors.New("reply without Content-Length")
	}
	body := make([]byte, n)
	_, err := io.ReadFull(p.r, body)
	return body, err
}

// reply is a decoded response as a client sees it.
type reply struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      any             `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int64          `json:"code"`
		Message string         `json:"message"`
		Data    map[string]any `json:"data"`
	} `json:"error"`
}

func (p *peer) reply() reply {
	p.t.Helper()
	b := p.frame()
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		p.t.Fatalf("decode reply %s: %v", b, err)
	}
	if r.JSONRPC != "2.0" {
		p.t.Fatalf("reply %s lacks jsonrpc 2.0", b)
	}
	return r
}

// call sends a request and returns the next reply.
func (p *peer) call(body string) reply {
	p.t.Helper()
	p.send(body)
	return p.reply()
}

// expectNoReply fails if anything arrives within d.
func (p *peer) expectNoReply(d time.Duration) {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(d))
	if _, err := p.r.Peek(1); err == nil {
		b, _ := p.readFrame()
		p.t.Fatalf("unexpected reply %s", b)
	}
}

// alive checks the connection still answers a request.
func (p *peer) alive() {
	p.t.Helper()
	r := p.call(`{"jsonrpc":"2.0","id":"alive","method":"echo","params":{"ok":true}}`)
	if r.ID != "alive" || r.Error != nil || string(r.Result) != `{"ok":true}` {
		p.t.Fatalf("connection no longer answers: %+v", r)
	}
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
