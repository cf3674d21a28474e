// Command streaming is sessiond's streaming benchmark. bench/streaming.sh
// builds sessiond and this program and runs it; it prints a Markdown table
// to stdout and its progress to stderr.
//
// It measures a real `sessiond serve` from the outside, the way an editor
// sees a turn stream:
//
//   - this program runs its own OpenAI-compatible model server on
//     127.0.0.1 (Chat Completions, streamed: `data: {chunk}` events, a
//     finish chunk, a usage chunk and `data: [DONE]`), and the daemon is
//     pointed at it through the user config file in a temporary HOME
//     ($HOME/.config/sessiond/config.json, provider "bench", with a
//     baseURL), as e2e/agent_test.go does;
//   - each answer is N small text deltas (" 0", " 1", … " 9999": each
//     delta carries its sequence number), and the server records the time
//     it writes each chunk to the socket;
//   - one client on the daemon's socket (NDJSON) sends session/prompt and
//     reads the session/event notifications as they come, recording when
//     it read each part.updated delta; event time − chunk time is the
//     latency the daemon adds (both clocks are this process's monotonic
//     clock);
//   - after the turn, session/messages (read back from the store) must
//     hold the concatenation of the deltas.
//
// Two scenarios: "burst" sends the deltas as fast as the socket takes them
// (throughput: deltas/s delivered to the client and deltas/s of the turn
// until it is stored), "paced" sends one per -interval (latency while the
// daemon keeps up; in the burst the latency is mostly the queue).
//
// The client side is thin, so that the numbers are the daemon's: a delta
// event is recognised by its fixed prefix and its delta read without
// decoding the rest of the line (which carries the part's whole text so
// far); other lines are decoded in full.
//
// Everything runs in fresh temporary directories; the daemon this program
// starts is stopped at the end, on failure and on SIGINT/SIGTERM.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/session"
)

// Targets from the issue.
const (
	targetRate       = 20_000.0 // deltas/s, delivered and persisted
	targetLatencyP99 = 5 * time.Millisecond
)

const (
	modelID    = "gpt-4o-mini" // known to the model table
	providerID = "bench"
	apiKey     = "sk-bench-streaming"
)

type options struct {
	bin        string
	deltas     int
	runs       int
	pacedRuns  int
	warmup     int
	interval   time.Duration
	timeout    time.Duration
	keep       bool
	cpuProfile string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "sessiond", "", "path of the sessiond binary to measure (required)")
	flag.IntVar(&o.deltas, "deltas", 10_000, "text deltas per streamed answer")
	flag.IntVar(&o.runs, "runs", 3, "timed burst turns (the deltas as fast as possible)")
	flag.IntVar(&o.pacedRuns, "paced-runs", 1, "timed paced turns (one delta per -interval)")
	flag.IntVar(&o.warmup, "warmup", 1_000, "deltas of the untimed warm-up turn (0: none)")
	flag.DurationVar(&o.interval, "interval", 100*time.Microsecond, "time between deltas in the paced scenario")
	flag.DurationVar(&o.timeout, "timeout", 2*time.Minute, "longest a turn may take")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary data dir, HOME and workspace")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this program (client and fake provider, not the daemon) to this file")
	flag.Parse()
	if o.bin == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: streaming -sessiond PATH [flags]; see bench/streaming.sh")
		os.Exit(2)
	}
	if o.deltas < 1 || o.runs < 1 || o.pacedRuns < 0 || o.warmup < 0 || o.interval <= 0 {
		fmt.Fprintln(os.Stderr, "streaming: -deltas and -runs must be positive, -paced-runs and -warmup not negative, -interval positive")
		os.Exit(2)
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		fatalf("sessiond binary: %v", err)
	}
	o.bin = bin
	if _, err := os.Stat(o.bin); err != nil {
		fatalf("sessiond binary: %v", err)
	}

	b := newBench(o)
	active = b
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigc
		progress("%v: stopping what this benchmark started", s)
		b.cleanup()
		os.Exit(130)
	}()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fatalf("cpu profile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatalf("cpu profile: %v", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	b.run()
	b.cleanup()
	b.print(os.Stdout)
}

// active is the benchmark fatalf cleans up after.
var active *bench

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "· "+format+"\n", args...)
}

func fatalf(format string, args ...any) {
	if active != nil && active.interrupted() {
		select {} // the signal handler is cleaning up and exits
	}
	fmt.Fprintf(os.Stderr, "streaming: "+format+"\n", args...)
	if active != nil {
		if out, err := os.ReadFile(filepath.Join(active.tmp, "serve.stderr")); err == nil && len(out) > 0 {
			fmt.Fprintf(os.Stderr, "daemon stderr:\n%s\n", tail(out, 4000))
		}
		active.cleanup()
	}
	os.Exit(1)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// epoch is the zero of every timestamp here: the fake provider's send
// times and the client's receive times are durations since it, read from
// the same monotonic clock.
var epoch = time.Now()

func now() time.Duration { return time.Since(epoch) }

// ---------------------------------------------------------------------
// The fake model server.

// plan is what the fake provider answers the next request with, and what
// it recorded while doing so.
type plan struct {
	n        int
	interval time.Duration // 0: as fast as the socket takes them
	sent     []time.Duration
	end      time.Duration // after [DONE]
	done     chan struct{}
	err      error
}

type provider struct {
	ln  net.Listener
	srv *http.Server
	url string

	mu   sync.Mutex
	next *plan
}

func startProvider() *provider {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("fake provider: %v", err)
	}
	p := &provider{ln: ln, url: "http://" + ln.Addr().String() + "/v1"}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(ln)
	return p
}

// arm sets the answer to the next request.
func (p *provider) arm(n int, interval time.Duration) *plan {
	pl := &plan{n: n, interval: interval, sent: make([]time.Duration, n), done: make(chan struct{})}
	p.mu.Lock()
	p.next = pl
	p.mu.Unlock()
	return pl
}

func (p *provider) close() {
	p.srv.Close()
}

func deltaText(seq int) string { return " " + strconv.Itoa(seq) }

// chunkHead and chunkTail surround a text delta's JSON string in its
// chat.completion.chunk, as OpenAI writes them.
const (
	chunkHead = `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1795000000,"model":"` + modelID + `","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{"content":`
	chunkTail = `},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n"
)

func (p *provider) serve(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		http.Error(w, `{"error":{"message":"no route","type":"invalid_request_error"}}`, http.StatusNotFound)
		return
	}
	p.mu.Lock()
	pl := p.next
	p.next = nil
	p.mu.Unlock()
	if pl == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"message":"streaming bench: no answer armed for this request","type":"invalid_request_error","param":null,"code":null}}`)
		return
	}
	defer close(pl.done)

	// Every chunk is rendered before the first is sent, so that a send
	// time is the write and nothing else.
	chunks := make([][]byte, pl.n)
	for i := range chunks {
		q, _ := json.Marshal(deltaText(i))
		c := make([]byte, 0, len(chunkHead)+len(q)+len(chunkTail))
		c = append(c, chunkHead...)
		c = append(c, q...)
		chunks[i] = append(c, chunkTail...)
	}
	role := []byte(chunkHead[:len(chunkHead)-len(`"content":`)] + `"role":"assistant","content":""` + chunkTail)
	finish := []byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1795000000,"model":"` + modelID + `","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}` + "\n\n")
	usage := []byte(fmt.Sprintf(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1795000000,"model":"`+modelID+`","system_fingerprint":"fp_bench","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}}}`+"\n\n", pl.n, 100+pl.n))

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) bool {
		if _, err := w.Write(b); err != nil {
			pl.err = err
			return false
		}
		if err := rc.Flush(); err != nil {
			pl.err = err
			return false
		}
		return true
	}
	if !write(role) {
		return
	}
	if pl.interval > 0 {
		// Sleep precisely: this goroutine gets a thread of its own with
		// a 1 ns timer slack (PR_SET_TIMERSLACK), and waits in
		// nanosleep(2) rather than the runtime's timers (1 ms
		// granularity when idle).
		runtime.LockOSThread()
		syscall.RawSyscall(syscall.SYS_PRCTL, 29, 1, 0)
		defer func() {
			syscall.RawSyscall(syscall.SYS_PRCTL, 29, 50_000, 0)
			runtime.UnlockOSThread()
		}()
	}
	for i, c := range chunks {
		t := now()
		pl.sent[i] = t
		if !write(c) {
			return
		}
		if pl.interval > 0 {
			sleepUntil(t + pl.interval)
		}
	}
	if write(finish) && write(usage) && write([]byte("data: [DONE]\n\n")) {
		pl.end = now()
	}
}

func sleepUntil(t time.Duration) {
	for {
		d := t - now()
		if d <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(d))
		syscall.Nanosleep(&ts, nil)
	}
}

// ---------------------------------------------------------------------
// The daemon and the bench.

// row is one line of the result table.
type row struct{ name, result, target, ok string }

type bench struct {
	o       options
	tmp     string
	dataDir string
	home    string
	workDir string
	socket  string
	env     []string
	prov    *provider
	rows    []row

	mu      sync.Mutex
	closing bool
	daemon  *exec.Cmd
	cleaned sync.Once
}

func newBench(o options) *bench {
	b := &bench{o: o}
	// A Unix socket path holds at most 107 bytes; $TMPDIR can be long.
	base := os.TempDir()
	if len(base) > 40 {
		base = "/tmp"
	}
	tmp, err := os.MkdirTemp(base, "sdstream")
	if err != nil {
		fatalf("temp dir: %v", err)
	}
	b.tmp = tmp
	b.dataDir = filepath.Join(tmp, "data")
	b.home = filepath.Join(tmp, "home")
	b.workDir = filepath.Join(tmp, "ws")
	for _, d := range []string{b.workDir, filepath.Join(b.home, ".config", "sessiond")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			fatalf("%v", err)
		}
	}
	cfg, err := daemon.Config{DataDir: b.dataDir}.Resolve(func(string) string { return "" })
	if err != nil {
		fatalf("%v", err)
	}
	b.socket = cfg.Socket
	// Only the config file says which provider to use: no keys, base
	// URLs, models or config dirs of ours reach the daemon.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SESSIOND_") || strings.HasPrefix(k, "XDG_") || strings.HasPrefix(k, "OPENAI_") ||
			strings.HasPrefix(k, "ANTHROPIC_") || k == "HOME" {
			continue
		}
		b.env = append(b.env, kv)
	}
	b.env = append(b.env, "HOME="+b.home, "SESSIOND_DATA_DIR="+b.dataDir)
	progress("data dir %s, HOME %s, workspace %s", b.dataDir, b.home, b.workDir)
	return b
}

func (b *bench) writeConfig() {
	cfg := map[string]any{
		"model": providerID + "/" + modelID,
		"providers": map[string]any{providerID: map[string]any{
			"type": "openai", "baseURL": b.prov.url, "apiKey": apiKey,
		}},
	}
	data, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(b.home, ".config", "sessiond", "config.json"), data, 0o600); err != nil {
		fatalf("%v", err)
	}
}

func (b *bench) interrupted() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closing
}

// serve starts `sessiond serve` and waits until its socket answers.
func (b *bench) serve() *exec.Cmd {
	errf, err := os.Create(filepath.Join(b.tmp, "serve.stderr"))
	if err != nil {
		fatalf("%v", err)
	}
	defer errf.Close()
	cmd := exec.Command(b.o.bin, "serve", "--data-dir", b.dataDir, "--idle-timeout", "0", "--log-level", "warn")
	cmd.Env, cmd.Stderr, cmd.Dir = b.env, errf, b.tmp
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // we forward signals ourselves
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		fatalf("interrupted")
	}
	if err := cmd.Start(); err != nil {
		b.mu.Unlock()
		fatalf("start sessiond serve: %v", err)
	}
	b.daemon = cmd
	b.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", b.socket)
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			fatalf("sessiond serve did not listen on %s within 30 s: %v", b.socket, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// stopDaemon stops the daemon (SIGTERM) and waits for it to exit.
func (b *bench) stopDaemon() {
	b.mu.Lock()
	cmd := b.daemon
	b.daemon = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			progress("sessiond serve exited badly after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		progress("sessiond serve did not exit within 30 s of SIGTERM; killed")
	}
}

// cleanup stops the daemon and the fake provider and removes the
// temporary directories.
func (b *bench) cleanup() {
	b.cleaned.Do(func() {
		b.mu.Lock()
		b.closing = true
		cmd := b.daemon
		b.mu.Unlock()
		if cmd != nil {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
		if b.prov != nil {
			b.prov.close()
		}
		if b.o.keep {
			progress("kept %s", b.tmp)
		} else if err := os.RemoveAll(b.tmp); err != nil {
			progress("remove %s: %v", b.tmp, err)
		}
	})
}

// ---------------------------------------------------------------------
// The client.

type client struct {
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	id   uint64
	long []byte
}

func (b *bench) dial() *client {
	c, err := net.Dial("unix", b.socket)
	if err != nil {
		fatalf("connect to %s: %v", b.socket, err)
	}
	return &client{c: c, r: bufio.NewReaderSize(c, 1<<20), w: bufio.NewWriterSize(c, 64<<10)}
}

func (c *client) send(method string, params any) uint64 {
	c.id++
	msg := map[string]any{"jsonrpc": "2.0", "id": c.id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	data, err := json.Marshal(msg)
	if err != nil {
		fatalf("encode %s: %v", method, err)
	}
	c.w.Write(data)
	c.w.WriteByte('\n')
	if err := c.w.Flush(); err != nil {
		fatalf("write %s: %v", method, err)
	}
	return c.id
}

func (c *client) notify(method string, params any) {
	data, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params})
	c.w.Write(data)
	c.w.WriteByte('\n')
	if err := c.w.Flush(); err != nil {
		fatalf("write %s: %v", method, err)
	}
}

// line reads the next line; it is valid until the next read.
func (c *client) line() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		c.long = append(c.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = c.r.ReadSlice('\n')
			c.long = append(c.long, line...)
		}
		line = c.long
	}
	return line, err
}

// envelope is a message from the daemon, decoded in full.
type envelope struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		Type       string `json:"type"`
		Properties struct {
			Delta *string `json:"delta"`
		} `json:"properties"`
	} `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// reply is the answer to request id, if line is one.
func replyTo(env *envelope, id uint64) (bool, error) {
	if len(env.ID) == 0 || env.Method != "" || string(env.ID) != strconv.FormatUint(id, 10) {
		return false, nil
	}
	if len(env.Error) > 0 && string(env.Error) != "null" {
		return true, fmt.Errorf("error reply: %s", env.Error)
	}
	return true, nil
}

// call sends a request and decodes its result into result (may be nil),
// skipping the notifications before the reply.
func (c *client) call(method string, params, result any) {
	id := c.send(method, params)
	for {
		line, err := c.line()
		if err != nil {
			fatalf("%s: read: %v", method, err)
		}
		var env envelope
		if err := json.Unmarshal(line, &env); err != nil {
			fatalf("%s: unparsable line %q: %v", method, line, err)
		}
		if env.Method != "" && len(env.ID) > 0 && string(env.ID) != "null" {
			fatalf("the daemon sent a request (%s); this benchmark answers none", env.Method)
		}
		ok, err := replyTo(&env, id)
		if err != nil {
			fatalf("%s: %v", method, err)
		}
		if !ok {
			continue
		}
		if result != nil {
			if err := json.Unmarshal(env.Result, result); err != nil {
				fatalf("%s: decode result: %v", method, err)
			}
		}
		return
	}
}

// ---------------------------------------------------------------------
// One turn.

// turnResult is what one streamed turn measured.
type turnResult struct {
	n          int
	sent       []time.Duration // per seq, by the fake provider
	recv       []time.Duration // per seq, by the client; -1: never
	provEnd    time.Duration   // the provider wrote [DONE]
	reply      time.Duration   // the session/prompt reply was read
	lastEvent  time.Duration   // the last delta event was read
	delivered  int             // distinct seqs received
	events     int             // delta events read
	eventBytes int64           // bytes of the delta event lines
	others     int             // other lines read during the turn
	stored     bool            // session/messages holds the concatenation
	replyText  bool            // the prompt's reply holds it
	problems   []string
}

func (t *turnResult) latencies() []time.Duration {
	ds := make([]time.Duration, 0, t.n)
	for i := range t.n {
		if t.recv[i] >= 0 {
			ds = append(ds, t.recv[i]-t.sent[i])
		}
	}
	return ds
}

func (t *turnResult) first() time.Duration { return t.sent[0] }

// deliveredRate is deltas per second from the first chunk sent to the
// last delta event read.
func (t *turnResult) deliveredRate() float64 {
	return float64(t.delivered) / (t.lastEvent - t.first()).Seconds()
}

// persistedRate is deltas per second from the first chunk sent to the
// reply of session/prompt, which comes after the text part is stored.
func (t *turnResult) persistedRate() float64 {
	return float64(t.n) / (t.reply - t.first()).Seconds()
}

// deltaPrefix starts a part.updated event with a delta as the daemon
// writes it (struct fields in order, map keys sorted: delta before part).
const deltaPrefix = `{"jsonrpc":"2.0","method":"session/event","params":{"type":"part.updated","properties":{"delta":"`

var replyPrefix = []byte(`{"jsonrpc":"2.0","id":`)

func (b *bench) turn(c *client, name string, n int, interval time.Duration) *turnResult {
	var ses session.Session
	c.call("session/create", session.CreateParams{Directory: b.workDir, Title: "streaming bench: " + name}, &ses)

	pl := b.prov.arm(n, interval)
	t := &turnResult{n: n, recv: make([]time.Duration, n)}
	for i := range t.recv {
		t.recv[i] = -1
	}
	record := func(delta string, at time.Duration) {
		t.events++
		for f := range strings.FieldsSeq(delta) {
			seq, err := strconv.Atoi(f)
			if err != nil || seq < 0 || seq >= n {
				t.problems = append(t.problems, fmt.Sprintf("a delta %q that this benchmark did not send", delta))
				continue
			}
			if t.recv[seq] >= 0 {
				t.problems = append(t.problems, fmt.Sprintf("delta %d delivered twice", seq))
				continue
			}
			t.recv[seq] = at
			t.delivered++
			t.lastEvent = at
		}
	}

	id := c.send("session/prompt", map[string]any{
		"sessionID": ses.ID,
		"parts":     []any{map[string]any{"type": "text", "text": "stream " + strconv.Itoa(n) + " deltas"}},
	})
	var answer session.MessageWithParts
	gotReply := false
	c.c.SetReadDeadline(time.Now().Add(b.o.timeout))
	for !gotReply || t.delivered < n {
		line, err := c.line()
		at := now()
		if err != nil {
			if gotReply && errors.Is(err, os.ErrDeadlineExceeded) {
				break // the missing deltas are reported
			}
			fatalf("%s: read during the turn: %v (%d of %d deltas read)", name, err, t.delivered, n)
		}
		// The fast path: a delta event, its delta read off the prefix.
		if rest, ok := bytes.CutPrefix(line, []byte(deltaPrefix)); ok {
			if end := bytes.IndexByte(rest, '"'); end >= 0 && bytes.IndexByte(rest[:end], '\\') < 0 {
				t.eventBytes += int64(len(line))
				record(string(rest[:end]), at)
				continue
			}
		}
		var env envelope
		if err := json.Unmarshal(line, &env); err != nil {
			fatalf("%s: unparsable line %q: %v", name, tail(line, 300), err)
		}
		switch {
		case env.Method == "session/event" && env.Params.Properties.Delta != nil:
			t.eventBytes += int64(len(line))
			record(*env.Params.Properties.Delta, at)
		case env.Method != "" && len(env.ID) > 0 && string(env.ID) != "null":
			fatalf("the daemon sent a request (%s); this benchmark answers none", env.Method)
		case env.Method != "":
			t.others++
		case bytes.HasPrefix(line, replyPrefix):
			ok, err := replyTo(&env, id)
			if err != nil {
				fatalf("%s: session/prompt: %v", name, err)
			}
			if !ok {
				fatalf("%s: a reply to a request not sent: %q", name, tail(line, 300))
			}
			if err := json.Unmarshal(env.Result, &answer); err != nil {
				fatalf("%s: session/prompt result: %v", name, err)
			}
			t.reply, gotReply = at, true
			// Deltas still queued for us arrive right after; wait for
			// them a while, no longer.
			c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		default:
			fatalf("%s: unexpected line %q", name, tail(line, 300))
		}
	}
	c.c.SetReadDeadline(time.Time{})
	select {
	case <-pl.done:
	case <-time.After(10 * time.Second):
		fatalf("%s: the fake provider is still sending after the turn ended", name)
	}
	if pl.err != nil {
		fatalf("%s: the fake provider could not send: %v", name, pl.err)
	}
	t.sent, t.provEnd = pl.sent, pl.end

	var want strings.Builder
	for i := range n {
		want.WriteString(deltaText(i))
	}
	if answer.Info.Error != nil {
		t.problems = append(t.problems, "the turn ended with an error: "+answer.Info.Error.Message)
	}
	t.replyText = textOf(answer) == want.String()

	var msgs []session.MessageWithParts
	c.call("session/messages", session.MessagesParams{SessionID: ses.ID}, &msgs)
	i := slices.IndexFunc(msgs, func(m session.MessageWithParts) bool { return m.Info.ID == answer.Info.ID })
	if i < 0 {
		t.problems = append(t.problems, "session/messages does not list the turn's assistant message")
	} else {
		t.stored = textOf(msgs[i]) == want.String()
	}
	if t.delivered < n {
		t.problems = append(t.problems, fmt.Sprintf("%d of %d deltas never arrived", n-t.delivered, n))
	}
	if !t.stored {
		t.problems = append(t.problems, "the stored text is not the concatenation of the deltas")
	}
	for _, p := range t.problems[:min(len(t.problems), 5)] {
		progress("  %s: problem: %s", name, p)
	}
	return t
}

// textOf concatenates a message's text parts.
func textOf(m session.MessageWithParts) string {
	var s strings.Builder
	for _, p := range m.Parts {
		if p.Type == session.PartText {
			s.WriteString(p.Text)
		}
	}
	return s.String()
}

// ---------------------------------------------------------------------
// The run.

func (b *bench) run() {
	b.prov = startProvider()
	progress("fake provider at %s", b.prov.url)
	b.writeConfig()
	d := b.serve()
	pid := d.Process.Pid
	c := b.dial()
	defer c.c.Close()
	c.call("initialize", json.RawMessage(`{"processId":null,"clientInfo":{"name":"sessiond-bench-streaming","version":"0"},"capabilities":{}}`), nil)
	c.notify("initialized", map[string]any{})
	c.call("workspace/open", map[string]string{"directory": b.workDir}, nil)

	if b.o.warmup > 0 {
		progress("warm-up turn: %s deltas, burst", count(b.o.warmup))
		t := b.turn(c, "warm-up", b.o.warmup, 0)
		if len(t.problems) > 0 {
			fatalf("the warm-up turn failed: %s", strings.Join(t.problems, "; "))
		}
	}

	// Burst.
	var bursts []*turnResult
	cpu0, self0 := procCPU(pid), selfCPU()
	for i := range b.o.runs {
		progress("burst turn %d/%d: %s deltas as fast as possible", i+1, b.o.runs, count(b.o.deltas))
		t := b.turn(c, "burst", b.o.deltas, 0)
		ls := sorted(t.latencies())
		progress("  delivered %s/%s in %s: %s deltas/s; stored after %s: %s deltas/s; provider sent all in %s; latency p50 %s p99 %s; %.1f MiB of delta events",
			count(t.delivered), count(t.n), ms(t.lastEvent-t.first()), count(int(t.deliveredRate())),
			ms(t.reply-t.first()), count(int(t.persistedRate())), ms(t.sent[t.n-1]-t.first()),
			ms(pct(ls, 0.5)), ms(pct(ls, 0.99)), float64(t.eventBytes)/(1<<20))
		bursts = append(bursts, t)
	}
	daemonCPU, selfUsed := procCPU(pid)-cpu0, selfCPU()-self0
	b.burstRows(bursts, daemonCPU, selfUsed)

	// Paced.
	var paced []*turnResult
	for i := range b.o.pacedRuns {
		progress("paced turn %d/%d: %s deltas, one per %s", i+1, b.o.pacedRuns, count(b.o.deltas), b.o.interval)
		t := b.turn(c, "paced", b.o.deltas, b.o.interval)
		ls := sorted(t.latencies())
		progress("  sent over %s (mean interval %s); latency p50 %s p99 %s max %s",
			ms(t.sent[t.n-1]-t.first()), us(meanInterval(t)), ms(pct(ls, 0.5)), ms(pct(ls, 0.99)), ms(ls[len(ls)-1]))
		paced = append(paced, t)
	}
	if len(paced) > 0 {
		b.pacedRows(paced)
	}
	b.stopDaemon()
}

func (b *bench) burstRows(ts []*turnResult, daemonCPU, selfUsed time.Duration) {
	n := b.o.deltas
	runs := fmt.Sprintf("%d turn", len(ts))
	if len(ts) > 1 {
		runs += "s"
	}
	delivered, all, stored := 0, true, true
	var rates, prates []float64
	var lat []time.Duration
	var bytesRead int64
	var provSend []float64
	for _, t := range ts {
		delivered += t.delivered
		all = all && t.delivered == t.n && len(t.problems) == 0
		stored = stored && t.stored && t.replyText
		rates = append(rates, t.deliveredRate())
		prates = append(prates, t.persistedRate())
		provSend = append(provSend, float64(t.n)/(t.sent[t.n-1]-t.first()).Seconds())
		lat = append(lat, t.latencies()...)
		bytesRead += t.eventBytes
	}
	slices.Sort(lat)
	b.add(row{fmt.Sprintf("burst: deltas delivered to the client as part.updated events (%s × %s sent)", runs, count(n)),
		fmt.Sprintf("%s of %s", count(delivered), count(n*len(ts))), "all", okIf(all)})
	med, lo, hi := median(rates)
	b.add(row{"burst: deltas/s delivered (first chunk sent → last delta event read), median",
		fmt.Sprintf("%s deltas/s (runs %s–%s)", count(int(med)), count(int(lo)), count(int(hi))),
		"≥ " + count(int(targetRate)) + " deltas/s", okIf(med >= targetRate)})
	pmed, plo, phi := median(prates)
	b.add(row{"burst: deltas/s persisted (first chunk sent → session/prompt reply, the text part stored), median",
		fmt.Sprintf("%s deltas/s (runs %s–%s)", count(int(pmed)), count(int(plo)), count(int(phi))),
		"≥ " + count(int(targetRate)) + " deltas/s", okIf(pmed >= targetRate)})
	b.add(row{"burst: text in session/messages (and in the prompt's reply) = the deltas concatenated",
		yesNo(stored), "yes", okIf(stored)})
	b.add(row{"burst: added latency chunk sent → event read, p50 / p99 / max (mostly queueing: the provider outruns the daemon)",
		fmt.Sprintf("%s / %s / %s (n=%s)", ms(pct(lat, 0.5)), ms(pct(lat, 0.99)), ms(lat[len(lat)-1]), count(len(lat))), "—", "—"})
	pm, _, _ := median(provSend)
	b.add(row{"burst: fake provider's send rate, median (the socket buffers take what the daemon has not read yet)",
		count(int(pm)) + " chunks/s", "—", "—"})
	per := float64(bytesRead) / float64(max(delivered, 1))
	b.add(row{"burst: bytes of session/event read per delta",
		fmt.Sprintf("%.1f KiB (%.0f MiB per turn; final text %.1f KiB)", per/1024, float64(bytesRead)/float64(len(ts))/(1<<20), float64(len(concat(n)))/1024),
		"—", "—"})
	total := float64(n * len(ts))
	b.add(row{"burst: CPU per delta, daemon / this program (fake provider + client)",
		fmt.Sprintf("%.1f µs / %.1f µs", float64(daemonCPU.Microseconds())/total, float64(selfUsed.Microseconds())/total), "—", "—"})
}

func (b *bench) pacedRows(ts []*turnResult) {
	n := b.o.deltas
	delivered, all, stored := 0, true, true
	var lat []time.Duration
	var ivs []time.Duration
	for _, t := range ts {
		delivered += t.delivered
		all = all && t.delivered == t.n && len(t.problems) == 0
		stored = stored && t.stored && t.replyText
		lat = append(lat, t.latencies()...)
		ivs = append(ivs, meanInterval(t))
	}
	slices.Sort(lat)
	slices.Sort(ivs)
	iv := ivs[len(ivs)/2]
	name := fmt.Sprintf("paced (one delta per %s; sent every %s on average)", us(b.o.interval), us(iv))
	b.add(row{name + ": deltas delivered",
		fmt.Sprintf("%s of %s", count(delivered), count(n*len(ts))), "all", okIf(all)})
	b.add(row{"paced: text in session/messages (and in the prompt's reply) = the deltas concatenated",
		yesNo(stored), "yes", okIf(stored)})
	p50, p99 := pct(lat, 0.5), pct(lat, 0.99)
	b.add(row{"paced: added latency chunk sent → event read, p50", ms(p50), "—", "—"})
	b.add(row{"paced: added latency chunk sent → event read, p99",
		fmt.Sprintf("%s (p99.9 %s, max %s; n=%s)", ms(p99), ms(pct(lat, 0.999)), ms(lat[len(lat)-1]), count(len(lat))),
		"≤ " + ms(targetLatencyP99), okIf(p99 <= targetLatencyP99)})
	// The cost of an event grows with the part's text: show the first
	// and the last tenth of the turn apart.
	if k := n / 10; k > 0 {
		var early, late []time.Duration
		for _, t := range ts {
			ls := t.latencies()
			if len(ls) == n {
				early = append(early, ls[:k]...)
				late = append(late, ls[n-k:]...)
			}
		}
		if len(early) > 0 {
			slices.Sort(early)
			slices.Sort(late)
			b.add(row{fmt.Sprintf("paced: added latency p50 / p99 of deltas 0–%s (part text ≤ %.1f KiB) and of deltas %s–%s",
				count(k-1), float64(len(concat(k)))/1024, count(n-k), count(n-1)),
				fmt.Sprintf("%s / %s and %s / %s", ms(pct(early, 0.5)), ms(pct(early, 0.99)), ms(pct(late, 0.5)), ms(pct(late, 0.99))), "—", "—"})
		}
	}
}

func meanInterval(t *turnResult) time.Duration {
	if t.n < 2 {
		return 0
	}
	return (t.sent[t.n-1] - t.sent[0]) / time.Duration(t.n-1)
}

func concat(n int) string {
	var s strings.Builder
	for i := range n {
		s.WriteString(deltaText(i))
	}
	return s.String()
}

// ---------------------------------------------------------------------
// Numbers and the table.

// procCPU is a process's user+system CPU time from /proc/<pid>/stat.
func procCPU(pid int) time.Duration {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		fatalf("read CPU time of %d: %v", pid, err)
	}
	i := bytes.LastIndexByte(st, ')')
	f := strings.Fields(string(st[i+2:]))
	// After the name: state is field 3, utime 14, stime 15.
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stm, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ
	return time.Duration(ut+stm) * time.Second / hz
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func sorted(ds []time.Duration) []time.Duration {
	slices.Sort(ds)
	return ds
}

// pct is the nearest-rank percentile of sorted ds.
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

func median(xs []float64) (med, lo, hi float64) {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2], s[0], s[len(s)-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }
func (b *bench) add(r row)      { b.rows = append(b.rows, r) }
func okIf(ok bool) string {
	if ok {
		return "✅"
	}
	return "❌"
}
func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}
func count(n int) string { return groupThousands(strconv.Itoa(n)) }
func groupThousands(s string) string {
	if len(s) <= 3 {
		return s
	}
	return groupThousands(s[:len(s)-3]) + "," + s[len(s)-3:]
}

func (b *bench) print(w io.Writer) {
	fmt.Fprintln(w, "| measurement | result | target | ok? |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, r := range b.rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.name, r.result, r.target, r.ok)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Setup: bench/streaming runs an OpenAI-compatible SSE server on 127.0.0.1 (one chunk per delta, flushed; deltas \" 0\" … \" %d\"), a `sessiond serve` configured to use it, and one NDJSON client on the socket that sends session/prompt and reads session/event. Latency = the client's read of the part.updated delta − the server's write of its chunk, one process's monotonic clock. Persisted: the daemon stores a streamed part when it is complete (not per delta); the session/prompt reply follows that write, and session/messages reads it back.\n", b.o.deltas-1)
}
