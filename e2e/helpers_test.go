// Package e2e tests sessiond from the outside: the real binary (built once
// with -race), real pipes and Unix sockets, a real Badger store per test.
package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/workspace"
)

// bin is the sessiond binary under test, built by TestMain.
var bin string

// patience bounds every wait in these tests. It is generous on purpose: a
// loaded 2-core machine running -race binaries is slow, and a wait that
// succeeds returns as soon as it can.
const patience = 60 * time.Second

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sessiond-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "sessiond")
	build := exec.Command("go", "build", "-race", "-o", bin, "github.com/sessiond/sessiond/cmd/sessiond")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build sessiond:", err)
		return 1
	}
	return m.Run()
}

// sandbox is one test's world: a short base directory (Unix socket paths
// must stay under 108 bytes, and t.TempDir() paths can be long), a data
// dir, a socket path and the environment the binary runs with. At cleanup
// it kills every daemon still holding one of its data dirs and fails the
// test if a daemon reported a data race.
type sandbox struct {
	t      *testing.T
	base   string
	data   string
	socket string
	env    []string

	mu       sync.Mutex
	dataDirs []string // data dirs whose daemons to stop at cleanup
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	base, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	if base, err = filepath.EvalSymlinks(base); err != nil {
		t.Fatal(err)
	}
	s := &sandbox{
		t:      t,
		base:   base,
		data:   filepath.Join(base, "data"),
		socket: filepath.Join(base, "s.sock"),
	}
	home := filepath.Join(base, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	s.env = append(cleanEnv(),
		"HOME="+home,
		"SESSIOND_DATA_DIR="+s.data,
		"SESSIOND_SOCKET="+s.socket,
	)
	s.track(s.data)
	t.Cleanup(func() {
		s.mu.Lock()
		dirs := slices.Clone(s.dataDirs)
		s.mu.Unlock()
		for _, d := range dirs {
			stopDaemon(t, d)
			if b, err := os.ReadFile(filepath.Join(d, "daemon.stderr")); err == nil {
				checkNoRace(t, "auto-started daemon of "+d, string(b))
			}
		}
		os.RemoveAll(base)
	})
	return s
}

// cleanEnv is the test process's environment without anything that would
// point the binary at a real user's daemon or data.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SESSIOND_") || strings.HasPrefix(k, "XDG_") || k == "HOME" || k == "GORACE" {
			continue
		}
		env = append(env, kv)
	}
	// The race runtime sleeps a second at exit by default, to let other
	// goroutines report; that would cost a second per CLI run.
	return append(env, "GORACE=atexit_sleep_ms=20")
}

// track registers another data dir whose daemon cleanup must stop.
func (s *sandbox) track(dataDir string) {
	s.mu.Lock()
	s.dataDirs = append(s.dataDirs, dataDir)
	s.mu.Unlock()
}

// dir makes a directory under the sandbox and returns its path.
func (s *sandbox) dir(name string) string {
	s.t.Helper()
	d := filepath.Join(s.base, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		s.t.Fatal(err)
	}
	return d
}

func checkNoRace(t *testing.T, who, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "WARNING: DATA RACE") {
		t.Errorf("%s reported a data race:\n%s", who, stderr)
	}
}

// owner reads the daemon.json a daemon keeps while it holds dataDir.
func owner(dataDir string) (daemon.Owner, error) {
	var o daemon.Owner
	b, err := os.ReadFile(filepath.Join(dataDir, "daemon.json"))
	if err != nil {
		return o, err
	}
	return o, json.Unmarshal(b, &o)
}

// dataDirHeld reports whether a process holds the data dir's lock.
func dataDirHeld(t *testing.T, dataDir string) bool {
	f, err := os.OpenFile(filepath.Join(dataDir, "daemon.lock"), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		t.Fatalf("open lock: %v", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// stopDaemon kills the daemon holding dataDir, if any, and waits until it
// is gone (its lock released).
func stopDaemon(t *testing.T, dataDir string) {
	t.Helper()
	if !dataDirHeld(t, dataDir) {
		return
	}
	o, err := owner(dataDir)
	if err != nil {
		t.Errorf("data dir %s is locked but has no readable daemon.json: %v", dataDir, err)
		return
	}
	// Make sure the pid is still the daemon of this data dir.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", o.PID))
	if !bytes.Contains(cmdline, []byte(dataDir)) {
		t.Errorf("daemon.json of %s names pid %d, which is not its daemon", dataDir, o.PID)
		return
	}
	syscall.Kill(o.PID, syscall.SIGKILL)
	waitUntil(t, "the daemon of "+dataDir+" to die", func() bool { return !dataDirHeld(t, dataDir) })
}

// waitUntil polls cond until it holds, failing the test after patience.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	delay := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", patience, what)
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// syncBuffer is a bytes.Buffer safe for a writing process and a reading test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// proc is a sessiond process the test started.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error // Wait's result, once done is closed
}

// command prepares the binary with the sandbox's environment.
func (s *sandbox) command(args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = slices.Clone(s.env)
	cmd.Dir = s.base
	return cmd
}

// start starts cmd and makes sure it is dead by the end of the test. Its
// stderr is collected unless the caller set one.
func (s *sandbox) start(cmd *exec.Cmd) *proc {
	s.t.Helper()
	p := &proc{t: s.t, cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	if cmd.Stderr == nil {
		cmd.Stderr = p.stderr
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %v: %v", cmd.Args, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		checkNoRace(s.t, strings.Join(cmd.Args, " "), p.stderr.String())
	})
	return p
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(patience):
		p.t.Fatalf("%v did not exit within %s; stderr:\n%s", p.cmd.Args, patience, p.stderr.String())
	}
	return exitCode(p.err)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

// serve starts `sessiond serve` with the sandbox's data dir and socket and
// waits until it answers on its socket.
func (s *sandbox) serve(extra ...string) *proc {
	s.t.Helper()
	p := s.start(s.command(append([]string{"serve"}, extra...)...))
	s.waitListening(p)
	return p
}

// waitListening waits until a connection to the socket succeeds, failing if
// the daemon exits first.
func (s *sandbox) waitListening(p *proc) {
	s.t.Helper()
	waitUntil(s.t, "the daemon to listen on "+s.socket, func() bool {
		if p.exited() {
			s.t.Fatalf("daemon exited before listening (code %d); stderr:\n%s", exitCode(p.err), p.stderr.String())
		}
		c, err := net.Dial("unix", s.socket)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// run runs the binary to completion in dir (the sandbox base if empty) and
// returns its stdout, stderr and exit code.
func (s *sandbox) run(dir string, args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	return s.runEnv(s.env, dir, args...)
}

func (s *sandbox) runEnv(env []string, dir string, args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Dir = s.base
	if dir != "" {
		cmd.Dir = dir
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		s.t.Fatalf("sessiond %s did not finish within %s; stderr:\n%s", strings.Join(args, " "), patience, errb.String())
	}
	checkNoRace(s.t, "sessiond "+strings.Join(args, " "), errb.String())
	return out.String(), errb.String(), exitCode(err)
}

// runOK is run that fails the test unless the command succeeds.
func (s *sandbox) runOK(dir string, args ...string) string {
	s.t.Helper()
	out, errOut, code := s.run(dir, args...)
	if code != 0 {
		s.t.Fatalf("sessiond %s: exit code %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// stdioProc is a `sessiond stdio` (or bare `sessiond`) process with its
// stdin and stdout as pipes the test holds.
type stdioProc struct {
	*proc
	stdin  *os.File // the test's write end
	stdout *os.File // the test's read end
}

// stdio starts the binary with args and pipes on stdin and stdout.
func (s *sandbox) stdio(args ...string) *stdioProc {
	s.t.Helper()
	cmd := s.command(args...)
	inR, inW, err := os.Pipe()
	if err != nil {
		s.t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout = inR, outW
	p := s.start(cmd)
	inR.Close()
	outW.Close()
	s.t.Cleanup(func() { inW.Close(); outR.Close() })
	return &stdioProc{proc: p, stdin: inW, stdout: outR}
}

// pipeRWC joins a process's stdout and stdin into one connection.
type pipeRWC struct {
	r, w *os.File
}

func (p pipeRWC) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p pipeRWC) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p pipeRWC) Close() error {
	p.w.Close()
	return p.r.Close()
}

func (p *stdioProc) rwc() pipeRWC { return pipeRWC{r: p.stdout, w: p.stdin} }

// quiet discards the rpc package's own logging in the test process.
var quiet = slog.New(slog.DiscardHandler)

// client is an rpc.Client that records the session/event notifications it
// receives.
type client struct {
	*rpc.Client
	t      *testing.T
	events *eventLog
}

// newClient starts an rpc client over rwc and sends initialize.
func newClient(t *testing.T, rwc io.ReadWriteCloser) *client {
	t.Helper()
	ev := &eventLog{wake: make(chan struct{}, 1)}
	c := &client{t: t, events: ev}
	c.Client = rpc.Dial(context.Background(), rwc, rpc.ClientOptions{
		Logger: quiet,
		OnNotify: func(method string, params json.RawMessage) {
			if method == "session/event" {
				ev.add(params)
			}
		},
	})
	t.Cleanup(func() { c.Close() })
	var res json.RawMessage
	c.call("initialize", map[string]any{"processId": os.Getpid(), "clientInfo": map[string]any{"name": "e2e"}}, &res)
	return c
}

// dial connects an rpc client to the sandbox's daemon socket.
func (s *sandbox) dial() *client {
	s.t.Helper()
	conn, err := net.Dial("unix", s.socket)
	if err != nil {
		s.t.Fatalf("dial %s: %v", s.socket, err)
	}
	return newClient(s.t, conn)
}

// call makes a request that must succeed.
func (c *client) call(method string, params, result any) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := c.Call(ctx, method, params, result); err != nil {
		c.t.Fatalf("%s %s: %v", method, mustJSON(params), err)
	}
}

// callErr makes a request that must fail with a protocol error.
func (c *client) callErr(method string, params any) *rpc.Error {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var res json.RawMessage
	err := c.Call(ctx, method, params, &res)
	var re *rpc.Error
	if !errors.As(err, &re) {
		c.t.Fatalf("%s %s: want a protocol error, got result %s, err %v", method, mustJSON(params), res, err)
	}
	return re
}

// Typed shortcuts for the calls most tests make.

func (c *client) open(dir string) workspace.Project {
	c.t.Helper()
	var p workspace.Project
	c.call("workspace/open", map[string]any{"directory": dir}, &p)
	return p
}

func (c *client) create(p session.CreateParams) session.Session {
	c.t.Helper()
	var s session.Session
	c.call("session/create", p, &s)
	return s
}

func (c *client) get(id string) session.Session {
	c.t.Helper()
	var s session.Session
	c.call("session/get", map[string]any{"sessionID": id}, &s)
	return s
}

func (c *client) list(p session.ListParams) session.ListResult {
	c.t.Helper()
	var r session.ListResult
	c.call("session/list", p, &r)
	return r
}

func (c *client) say(sessionID, author, text string) session.Event {
	c.t.Helper()
	var ev session.Event
	c.call("session/appendEvent", map[string]any{
		"sessionID": sessionID,
		"event":     map[string]any{"author": author, "content": []any{map[string]any{"type": "text", "text": text}}},
	}, &ev)
	return ev
}

func (c *client) status() daemon.DaemonStatus {
	c.t.Helper()
	var st daemon.DaemonStatus
	c.call("daemon/status", nil, &st)
	return st
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

// event is one session/event notification, decoded for its type: every
// event names its session somewhere (info, part or sessionID), and
// sessionID finds it wherever it is.
type event struct {
	Type       string          `json:"type"`
	Properties eventFields     `json:"properties"`
	Raw        json.RawMessage `json:"-"`
	// Err says why the payload did not decode as its type's; next fails
	// the test with it, so a wait never skips an event it cannot read.
	Err error `json:"-"`
}

// eventFields are the properties of every event type; each type fills
// the fields it sends.
type eventFields struct {
	// Info is the session of session.created, .updated and .deleted;
	// message.* events carry a message there instead (see message).
	Info    session.Session `json:"-"`
	RawInfo json.RawMessage `json:"info"`
	Msg     session.Message `json:"-"`
	// Part and Delta: part.updated.
	Part  session.Part `json:"part"`
	Delta *string      `json:"delta"`
	// SessionID: session.status, todo.updated, message.removed,
	// session.reverted and session.unreverted.
	SessionID string         `json:"sessionID"`
	Status    session.Status `json:"status"`    // session.status
	MessageID string         `json:"messageID"` // message.removed
	// file.changed.
	ProjectID string `json:"projectID"`
	Root      string `json:"root"`
	Path      string `json:"path"`
	Kind      string `json:"kind"`
}

// decodeEvent reads a session/event's params.
func decodeEvent(params json.RawMessage) event {
	var e event
	e.Raw = slices.Clone(params)
	if err := json.Unmarshal(params, &e); err != nil {
		e.Err = fmt.Errorf("decode %s: %w", params, err)
		return e
	}
	if len(e.Properties.RawInfo) == 0 {
		return e
	}
	var err error
	if strings.HasPrefix(e.Type, "message.") {
		err = json.Unmarshal(e.Properties.RawInfo, &e.Properties.Msg)
	} else {
		err = json.Unmarshal(e.Properties.RawInfo, &e.Properties.Info)
	}
	if err != nil {
		e.Err = fmt.Errorf("decode the info of %s: %w", params, err)
	}
	return e
}

// message returns the properties.info of a message.* event.
func (e event) message() session.Message { return e.Properties.Msg }

// eventLog collects events in arrival order; next reads them in order.
type eventLog struct {
	mu   sync.Mutex
	evs  []event
	read int
	wake chan struct{}
}

func (l *eventLog) add(params json.RawMessage) {
	e := decodeEvent(params)
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// next returns the next event, waiting for it.
func (l *eventLog) next(t *testing.T) event {
	t.Helper()
	deadline := time.After(patience)
	for {
		l.mu.Lock()
		if l.read < len(l.evs) {
			e := l.evs[l.read]
			l.read++
			l.mu.Unlock()
			if e.Err != nil {
				t.Errorf("session/event %s: %v", e.Type, e.Err)
			}
			return e
		}
		l.mu.Unlock()
		select {
		case <-l.wake:
		case <-deadline:
			t.Fatalf("no session/event within %s", patience)
		}
	}
}

// expect skips events until one of type typ about session id arrives, and
// returns it.
func (l *eventLog) expect(t *testing.T, typ, id string) event {
	t.Helper()
	return l.expectWhere(t, typ, id, func(event) bool { return true })
}

// expectWhere skips events until one of type typ about session id for which
// ok holds arrives, and returns it.
func (l *eventLog) expectWhere(t *testing.T, typ, id string, ok func(event) bool) event {
	t.Helper()
	for {
		e := l.next(t)
		if e.Type == typ && e.sessionID() == id && ok(e) {
			return e
		}
	}
}

// expectAll skips events until one of type typ has arrived for each of ids,
// in any order.
func (l *eventLog) expectAll(t *testing.T, typ string, ids ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for len(want) > 0 {
		if e := l.next(t); e.Type == typ {
			delete(want, e.sessionID())
		}
	}
}

// sessionID is the session an event is about, or "" for events about no
// session (file.changed).
func (e event) sessionID() string {
	switch {
	case strings.HasPrefix(e.Type, "message."):
		return cmp.Or(e.message().SessionID, e.Properties.SessionID)
	case strings.HasPrefix(e.Type, "part."):
		return e.Properties.Part.SessionID
	}
	return cmp.Or(e.Properties.SessionID, e.Properties.Info.ID)
}

// all returns every event received so far.
func (l *eventLog) all() []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.evs)
}

// Raw protocol access, for the framing and bad-input tests.

// rawConn speaks bytes on a connection and reads replies strictly in the
// framing it was opened with, so a reply in the wrong framing fails.
type rawConn struct {
	t        *testing.T
	w        io.Writer
	r        *bufio.Reader
	deadline func(time.Time) error
	lsp      bool
}

func newRawConn(t *testing.T, r io.Reader, w io.Writer, deadline func(time.Time) error, framing string) *rawConn {
	return &rawConn{t: t, w: w, r: bufio.NewReaderSize(r, 1<<20), deadline: deadline, lsp: framing == "lsp"}
}

// wireMsg is any JSON-RPC message as it came over the wire.
type wireMsg struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   *rpc.Error      `json:"error"`
}

func (m wireMsg) String() string { return mustJSON(m) }

// sendRaw writes bytes as they are.
func (c *rawConn) sendRaw(b string) {
	c.t.Helper()
	if _, err := io.WriteString(c.w, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// frame frames one message body in the connection's framing.
func (c *rawConn) frame(body string) string {
	if c.lsp {
		return "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	return body + "\n"
}

// send frames and writes one message body.
func (c *rawConn) send(body string) { c.t.Helper(); c.sendRaw(c.frame(body)) }

// request sends a request with the given id (a JSON literal).
func (c *rawConn) request(id, method string, params any) {
	c.t.Helper()
	body := `{"jsonrpc":"2.0","id":` + id + `,"method":"` + method + `"`
	if params != nil {
		body += `,"params":` + mustJSON(params)
	}
	c.send(body + "}")
}

// notify sends a notification.
func (c *rawConn) notify(method string, params any) {
	c.t.Helper()
	c.send(`{"jsonrpc":"2.0","method":"` + method + `","params":` + mustJSON(params) + `}`)
}

// readFrame reads one frame's body, or returns the read error.
func (c *rawConn) readFrame() ([]byte, error) {
	c.deadline(time.Now().Add(patience))
	if !c.lsp {
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		return line, nil
	}
	n := -1
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if !strings.HasSuffix(line, "\r\n") {
			return nil, fmt.Errorf("LSP header line %q does not end in CRLF", line)
		}
		line = strings.TrimSuffix(line, "\r\n")
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("bad LSP header line %q", line)
		}
		if strings.EqualFold(name, "Content-Length") {
			if n, err = strconv.Atoi(strings.TrimSpace(value)); err != nil {
				return nil, fmt.Errorf("bad Content-Length %q", value)
			}
		}
	}
	if n < 0 {
		return nil, errors.New("LSP frame without Content-Length")
	}
	body := make([]byte, n)
	_, err := io.ReadFull(c.r, body)
	return body, err
}

// read reads the next message, which must be well-formed JSON-RPC.
func (c *rawConn) read() wireMsg {
	c.t.Helper()
	body, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if !c.lsp && bytes.Count(body, []byte("\n")) != 1 {
		c.t.Fatalf("NDJSON reply is not one line: %q", body)
	}
	var m wireMsg
	if err := json.Unmarshal(body, &m); err != nil {
		c.t.Fatalf("reply is not JSON (%v): %q", err, body)
	}
	if m.JSONRPC != "2.0" {
		c.t.Fatalf("reply without jsonrpc 2.0: %s", body)
	}
	return m
}

// response reads messages until the response with the given id (a JSON
// literal), skipping notifications.
func (c *rawConn) response(id string) wireMsg {
	c.t.Helper()
	for {
		m := c.read()
		if m.Method != "" {
			continue
		}
		if string(m.ID) != id {
			c.t.Fatalf("want the response to id %s, got %s", id, m)
		}
		return m
	}
}

// call sends a request and reads its response.
func (c *rawConn) call(id, method string, params any) wireMsg {
	c.t.Helper()
	c.request(id, method, params)
	return c.response(id)
}

// expectEOF waits for the peer to close the connection.
func (c *rawConn) expectEOF() {
	c.t.Helper()
	for {
		body, err := c.readFrame()
		if err == nil {
			if m := (wireMsg{}); json.Unmarshal(body, &m) == nil && m.Method != "" {
				continue // a notification still on its way
			}
			c.t.Fatalf("want the connection closed, got %q", body)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
			return
		}
		c.t.Fatalf("want EOF, got %v", err)
	}
}

// dialRaw connects to the sandbox's socket for raw bytes.
func (s *sandbox) dialRaw(framing string) (*rawConn, *net.UnixConn) {
	s.t.Helper()
	conn, err := net.Dial("unix", s.socket)
	if err != nil {
		s.t.Fatalf("dial: %v", err)
	}
	s.t.Cleanup(func() { conn.Close() })
	return newRawConn(s.t, conn, conn, conn.SetReadDeadline, framing), conn.(*net.UnixConn)
}

// raw speaks bytes to a stdio process.
func (p *stdioProc) raw(framing string) *rawConn {
	return newRawConn(p.t, p.stdout, p.stdin, p.stdout.SetReadDeadline, framing)
}

// errCheck asserts a protocol error's code, kind and, when field is set,
// the data.field that InvalidParams names.
func errCheck(t *testing.T, what string, e *rpc.Error, code int64, field string) {
	t.Helper()
	if e == nil {
		t.Fatalf("%s: want error %d, got success", what, code)
	}
	if e.Code != code {
		t.Fatalf("%s: want code %d, got %d: %s (data %v)", what, code, e.Code, e.Message, e.Data)
	}
	if kind := rpc.KindOf(code); e.Data["kind"] != kind {
		t.Errorf("%s: data.kind = %v, want %s", what, e.Data["kind"], kind)
	}
	if e.Message == "" {
		t.Errorf("%s: error %d has no message", what, code)
	}
	if field != "" && e.Data["field"] != field {
		t.Errorf("%s: data.field = %v, want %q (message %q)", what, e.Data["field"], field, e.Message)
	}
}

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		m.Close()
		t.Skipf("TIOCGPTN: %v", e)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		m.Close()
		t.Skipf("TIOCSPTLCK: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pty slave: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}
