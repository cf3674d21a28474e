// Command foundation is sessiond's foundation benchmark. bench/run builds
// sessiond and this program and runs it; it prints a Markdown table to
// stdout and its progress to stderr.
//
// It measures a real `sessiond` binary from the outside, the way an editor
// uses it:
//
//   - cold start: `sessiond stdio` with no daemon running (it starts one),
//     from spawning it to the reply to `initialize`;
//   - session/get round trips and pipelined throughput through a
//     `sessiond stdio` relay (pipes to its stdin/stdout, NDJSON);
//   - session/list of the newest 50 of 10,000 sessions in one project, over
//     a direct connection to the daemon's socket;
//   - the resident set of a daemon that opened a store holding 10,000
//     sessions and sits idle with one connection;
//   - its resident set under 60 concurrent clients sending a mix of
//     requests with messages up to several MiB (and malformed ones), and a
//     minute after that load ends, with one connection kept open as an
//     editor would.
//
// The client side is deliberately thin, so that the numbers are the
// daemon's and the relay's, not a client library's: requests are appended
// to a buffer by hand and written as NDJSON, and a reply's id is read from
// the fixed prefix the daemon writes ({"jsonrpc":"2.0","id":N,"result":...)
// without decoding the result. Replies are decoded in full only where the
// benchmark checks them (warm-up, seeding, verification), never in a timed
// loop. Types come from the project's own packages (session.Session,
// session.ListResult, daemon.DaemonStatus, daemon.Config for the socket
// path), so the benchmark breaks when the protocol does.
//
// Everything runs in fresh temporary directories, and every process the
// benchmark starts (the stdio relays, and the daemons they or it start) is
// stopped at the end, on failure and on SIGINT/SIGTERM.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

// Targets from the issue.
const (
	targetGetP50     = 200 * time.Microsecond
	targetPipelined  = 10_000.0 // req/s
	targetList       = 2 * time.Millisecond
	targetColdStart  = 150 * time.Millisecond
	targetIdleRSSMiB = 40.0
	// After a load the daemon's resident set returns to within this factor
	// of its idle one.
	targetAfterLoad = 2.0
)

type options struct {
	bin        string
	sessions   int
	cold       int
	coldSeeded int
	rtWarm     int
	rt         int
	pipe       int
	inflight   int
	list       int
	settle     time.Duration
	loadConns  int
	afterLoad  time.Duration
	keep       bool
	cpuProfile string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "sessiond", "", "path of the sessiond binary to measure (required)")
	flag.IntVar(&o.sessions, "sessions", 10_000, "sessions to seed in one project")
	flag.IntVar(&o.cold, "cold", 20, "cold starts with an empty data dir")
	flag.IntVar(&o.coldSeeded, "cold-seeded", 10, "cold starts with the seeded data dir")
	flag.IntVar(&o.rtWarm, "rt-warmup", 2_000, "untimed session/get calls before the round-trip run")
	flag.IntVar(&o.rt, "rt", 10_000, "timed sequential session/get calls")
	flag.IntVar(&o.pipe, "pipe", 60_000, "pipelined session/get calls")
	flag.IntVar(&o.inflight, "inflight", 64, "requests in flight in the pipelined run")
	flag.IntVar(&o.list, "list", 1_000, "timed session/list calls")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "idle time before reading the daemon's RSS")
	flag.IntVar(&o.loadConns, "load-clients", 60, "concurrent clients of the memory load (0: skip it)")
	flag.DurationVar(&o.afterLoad, "after-load", time.Minute, "how long after the memory load to read the daemon's RSS")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary data dir and workspace")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this client program (not of the daemon) to this file")
	flag.Parse()
	if o.bin == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: foundation -sessiond PATH [flags]; see bench/run")
		os.Exit(2)
	}
	if o.sessions < 50 {
		fmt.Fprintln(os.Stderr, "foundation: -sessions must be at least 50")
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
		progress("%v: stopping the processes this benchmark started", s)
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
		// The signal handler is stopping everything, which is likely
		// why we failed; let it finish and exit.
		select {}
	}
	fmt.Fprintf(os.Stderr, "foundation: "+format+"\n", args...)
	if active != nil {
		active.cleanup()
	}
	os.Exit(1)
}

// row is one line of the result table.
type row struct{ name, result, target, ok string }

type bench struct {
	o       options
	tmp     string // holds data/ and ws/; short, so the socket path fits
	dataDir string
	workDir string
	socket  string
	env     []string
	rows    []row

	mu       sync.Mutex
	closing  bool
	children map[int]*exec.Cmd // processes we spawned and have not reaped
	daemons  map[int]bool      // daemon pids learned from daemon/status
	cleaned  sync.Once

	idle    memory   // the restarted daemon's idle RSS: the memory load's reference
	ids     []string // the seeded sessions
	newest  string   // the newest of them
	project string
}

func newBench(o options) *bench {
	b := &bench{o: o, children: map[int]*exec.Cmd{}, daemons: map[int]bool{}}
	// A Unix socket path holds at most 107 bytes; $TMPDIR can be long
	// (macOS-style or CI paths), /tmp never is.
	base := os.TempDir()
	if len(base) > 40 {
		base = "/tmp"
	}
	tmp, err := os.MkdirTemp(base, "sdbench")
	if err != nil {
		fatalf("temp dir: %v", err)
	}
	b.tmp = tmp
	b.dataDir = filepath.Join(tmp, "data")
	b.workDir = filepath.Join(tmp, "ws")
	if err := os.Mkdir(b.workDir, 0o700); err != nil {
		fatalf("workspace dir: %v", err)
	}
	// The daemon's own rule for where the socket of an explicit data dir
	// goes (and its length check).
	cfg, err := daemon.Config{DataDir: b.dataDir}.Resolve(func(string) string { return "" })
	if err != nil {
		fatalf("%v", err)
	}
	b.socket = cfg.Socket
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SESSIOND_") {
			b.env = append(b.env, kv)
		}
	}
	b.env = append(b.env, "SESSIOND_DATA_DIR="+b.dataDir)
	// Become the reaper of orphans: a daemon started by `sessiond stdio`
	// is detached and outlives it, and we want to see it exit
	// (PR_SET_CHILD_SUBREAPER = 36). If this fails, waitExit falls back to
	// watching /proc.
	syscall.RawSyscall(syscall.SYS_PRCTL, 36, 1, 0)
	progress("data dir %s, workspace %s", b.dataDir, b.workDir)
	return b
}

func (b *bench) run() {
	b.coldStarts("cold start → initialize reply (empty store)", b.o.cold)
	b.seed()
	b.coldStarts(fmt.Sprintf("cold start → initialize reply (%s sessions stored)", count(b.o.sessions)), b.o.coldSeeded)

	d := b.serve()
	sock := b.dialSocket()
	defer sock.Close()
	sc := newWire(sock, sock)
	b.initialize(sc)
	b.idleRSS(sc, d.Process.Pid)

	relay := b.stdio()
	b.initialize(relay.w)
	b.roundTrips(relay.w)
	b.pipelined(relay.w)
	relay.close(b)

	b.list(sc)
	progress("idle for %s after the load", b.o.settle)
	time.Sleep(b.o.settle)
	rss := readRSS(d.Process.Pid)
	progress("RSS %s", rss)
	b.add(row{fmt.Sprintf("daemon RSS, idle again %s after the runs above", b.o.settle), rss.String(), "—", "—"})
	b.memoryUnderLoad(d.Process.Pid, sc)
	b.stopChild(d)
}

// ---------------------------------------------------------------------
// Processes.

// spawn starts cmd and records it for cleanup.
func (b *bench) spawn(cmd *exec.Cmd) {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		fatalf("interrupted")
	}
	if err := cmd.Start(); err != nil {
		b.mu.Unlock()
		fatalf("start %s: %v", strings.Join(cmd.Args, " "), err)
	}
	b.children[cmd.Process.Pid] = cmd
	b.mu.Unlock()
}

func (b *bench) interrupted() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closing
}

func (b *bench) reaped(cmd *exec.Cmd) {
	b.mu.Lock()
	delete(b.children, cmd.Process.Pid)
	b.mu.Unlock()
}

// serve starts `sessiond serve` as our child, as a person would, and waits
// until its socket answers.
func (b *bench) serve() *exec.Cmd {
	errf, err := os.Create(filepath.Join(b.tmp, "serve.stderr"))
	if err != nil {
		fatalf("%v", err)
	}
	defer errf.Close()
	cmd := exec.Command(b.o.bin, "serve", "--data-dir", b.dataDir, "--idle-timeout", "0", "--log-level", "warn")
	cmd.Env, cmd.Stderr = b.env, errf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // we forward signals ourselves
	b.spawn(cmd)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", b.socket)
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(errf.Name())
			fatalf("sessiond serve did not listen on %s within 30 s: %v\n%s", b.socket, err, out)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// stopChild stops a daemon we started ourselves and waits for it.
func (b *bench) stopChild(cmd *exec.Cmd) {
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		b.reaped(cmd)
		if err != nil {
			fatalf("sessiond serve exited badly after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		fatalf("sessiond serve did not exit within 30 s of SIGTERM")
	}
	b.waitSocketGone()
	progress("daemon %d stopped in %s", cmd.Process.Pid, ms(time.Since(t0)))
}

// stopDaemon stops a daemon that `sessiond stdio` started (so not our
// child, unless it was orphaned to us) and waits until it has exited and
// removed its socket.
func (b *bench) stopDaemon(pid int) {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		fatalf("stop daemon %d: %v", pid, err)
	}
	if err := waitExit(pid, 30*time.Second); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		fatalf("daemon %d: %v", pid, err)
	}
	b.mu.Lock()
	delete(b.daemons, pid)
	b.mu.Unlock()
	b.waitSocketGone()
}

func (b *bench) waitSocketGone() {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Lstat(b.socket); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			fatalf("the daemon exited but left its socket %s behind", b.socket)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitExit waits until pid has exited, reaping it when it is our child (or
// an orphan handed to us as subreaper).
func waitExit(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		switch {
		case wpid == pid:
			return nil
		case errors.Is(err, syscall.ECHILD):
			// Not ours: watch /proc instead (gone, or a zombie).
			st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if err != nil {
				return nil
			}
			if i := bytes.LastIndexByte(st, ')'); i >= 0 && i+2 < len(st) && st[i+2] == 'Z' {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("did not exit within %s", timeout)
		}
		time.Sleep(500 * time.Microsecond)
	}
}

// cleanup stops every process the benchmark started, including daemons
// started by a `sessiond stdio` whose pid we never learned (found by the
// data dir on their command line), and removes the temporary directories.
func (b *bench) cleanup() {
	b.cleaned.Do(func() {
		b.mu.Lock()
		b.closing = true
		var pids []int
		for pid := range b.children {
			pids = append(pids, pid)
		}
		for pid := range b.daemons {
			pids = append(pids, pid)
		}
		b.mu.Unlock()
		pids = append(pids, b.strays()...)
		stopAll(pids)
		// A relay killed mid-start may have spawned a daemon just now.
		time.Sleep(50 * time.Millisecond)
		stopAll(b.strays())
		if b.o.keep {
			progress("kept %s", b.tmp)
		} else if err := os.RemoveAll(b.tmp); err != nil {
			progress("remove %s: %v", b.tmp, err)
		}
	})
}

func stopAll(pids []int) {
	slices.Sort(pids)
	pids = slices.Compact(pids)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	for _, pid := range pids {
		if waitExit(pid, 10*time.Second) != nil {
			syscall.Kill(pid, syscall.SIGKILL)
			waitExit(pid, 5*time.Second)
		}
	}
}

// strays are live processes with our data dir on their command line.
func (b *bench) strays() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cl, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(cl, []byte{0}) {
			if string(arg) == b.dataDir {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// relay is a running `sessiond stdio`.
type relay struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	w      *wire
	stderr *bytes.Buffer
}

func (b *bench) stdio() *relay {
	cmd := exec.Command(b.o.bin, "stdio", "--data-dir", b.dataDir)
	cmd.Env = b.env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		fatalf("%v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fatalf("%v", err)
	}
	r := &relay{cmd: cmd, stdin: stdin, stderr: new(bytes.Buffer)}
	cmd.Stderr = r.stderr
	b.spawn(cmd)
	r.w = newWire(stdout, stdin)
	return r
}

// close ends stdin, so the relay half-closes the socket, the daemon
// answers what it has and hangs up, and the relay exits.
func (r *relay) close(b *bench) {
	r.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		b.reaped(r.cmd)
		if err != nil {
			fatalf("sessiond stdio: %v\n%s", err, r.stderr)
		}
	case <-time.After(10 * time.Second):
		fatalf("sessiond stdio did not exit within 10 s of its stdin closing")
	}
}

func (b *bench) dialSocket() net.Conn {
	c, err := net.Dial("unix", b.socket)
	if err != nil {
		fatalf("connect to %s: %v", b.socket, err)
	}
	return c
}

// ---------------------------------------------------------------------
// The measurements.

var initParams = []byte(`{"processId":null,"clientInfo":{"name":"sessiond-bench","version":"0"},"capabilities":{}}`)

func (b *bench) initialize(c *wire) {
	if err := c.call("initialize", json.RawMessage(initParams), nil); err != nil {
		fatalf("initialize: %v", err)
	}
	if err := c.notify("initialized", json.RawMessage(`{}`)); err != nil {
		fatalf("initialized: %v", err)
	}
}

// coldStarts spawns `sessiond stdio` with no daemon running, n times, and
// times the reply to initialize; each round's daemon is stopped (SIGTERM,
// exited, socket gone) before the next.
func (b *bench) coldStarts(name string, n int) {
	if n <= 0 {
		return
	}
	progress("%s: %d rounds", name, n)
	var ds []time.Duration
	for i := range n {
		if _, err := os.Lstat(b.socket); err == nil {
			fatalf("a daemon socket exists before a cold start")
		}
		t0 := time.Now()
		r := b.stdio()
		want := r.w.send("initialize", initParams)
		id, line, err := r.w.next()
		d := time.Since(t0)
		if err != nil || id != want {
			fatalf("cold start: reply %d %q: %v\n%s", id, line, err, r.stderr)
		}
		var st daemon.DaemonStatus
		if err := r.w.call("daemon/status", nil, &st); err != nil {
			fatalf("daemon/status: %v", err)
		}
		b.mu.Lock()
		b.daemons[st.PID] = true
		b.mu.Unlock()
		r.close(b)
		b.stopDaemon(st.PID)
		ds = append(ds, d)
		progress("  %2d/%d  %s", i+1, n, ms(d))
	}
	slices.Sort(ds)
	p50 := pct(ds, 0.50)
	b.add(row{
		name + ", p50",
		fmt.Sprintf("%s (p90 %s, max %s; n=%d)", ms(p50), ms(pct(ds, 0.90)), ms(ds[len(ds)-1]), n),
		"≤ 150 ms",
		okIf(p50 <= targetColdStart),
	})
}

// seed creates the sessions in one project over one socket connection,
// many requests in flight, and reports the daemon's RSS right after.
func (b *bench) seed() {
	d := b.serve()
	conn := b.dialSocket()
	defer conn.Close()
	c := newWire(conn, conn)
	b.initialize(c)
	var proj struct {
		ID string `json:"id"`
	}
	if err := c.call("workspace/open", map[string]string{"directory": b.workDir}, &proj); err != nil {
		fatalf("workspace/open: %v", err)
	}
	b.project = proj.ID
	dirJSON, _ := json.Marshal(b.workDir)
	progress("seeding %d sessions in project %s", b.o.sessions, b.project)

	b.ids = make([]string, b.o.sessions)
	var params []byte
	t0 := time.Now()
	pipeline(c, b.o.sessions, 64, func(buf []byte, i int, id uint64) []byte {
		params = append(params[:0], `{"directory":`...)
		params = append(params, dirJSON...)
		params = append(params, `,"title":"bench session `...)
		params = strconv.AppendInt(params, int64(i), 10)
		params = append(params, `"}`...)
		return appendRequest(buf, id, "session/create", params)
	}, func(i int, line []byte) {
		var r struct {
			Result session.Session `json:"result"`
		}
		if err := json.Unmarshal(line, &r); err != nil || r.Result.ID == "" {
			fatalf("session/create reply %q: %v", line, err)
		}
		if r.Result.ProjectID != b.project {
			fatalf("session/create put a session in project %s, not %s", r.Result.ProjectID, b.project)
		}
		b.ids[i] = r.Result.ID
	})
	el := time.Since(t0)
	b.newest = slices.Max(b.ids)
	rss := readRSS(d.Process.Pid)
	rate := count(int(math.Round(float64(b.o.sessions) / el.Seconds())))
	progress("seeded in %s (%s creates/s); daemon RSS %s", ms(el), rate, rss)
	b.add(row{fmt.Sprintf("seed %s sessions (session/create, 64 in flight, socket)", count(b.o.sessions)),
		fmt.Sprintf("%s creates/s (%s)", rate, ms(el)), "—", "—"})
	b.add(row{"daemon RSS right after seeding", rss.String(), "—", "—"})
	conn.Close()
	b.stopChild(d)
}

// idleRSS is read from a daemon that opened the seeded store (not one that
// just wrote it), after one session/list, with one connection kept open.
func (b *bench) idleRSS(c *wire, pid int) {
	b.verifyList(c)
	progress("idle for %s", b.o.settle)
	time.Sleep(b.o.settle)
	rss := readRSS(pid)
	b.idle = rss
	progress("idle RSS %s", rss)
	b.add(row{fmt.Sprintf("daemon RSS, idle, %s sessions stored (restarted daemon, 1 connection, %s idle)", count(b.o.sessions), b.o.settle),
		rss.String(), fmt.Sprintf("≤ %.0f MiB", targetIdleRSSMiB), okIf(float64(rss.rss)/(1<<20) <= targetIdleRSSMiB)})
	// Now that RSS is read: check the restarted daemon has them all.
	n, cursor := 0, ""
	for {
		var res session.ListResult
		p := session.ListParams{ProjectID: b.project, Limit: session.MaxListLimit, Cursor: cursor}
		if err := c.call("session/list", p, &res); err != nil {
			fatalf("session/list: %v", err)
		}
		n += len(res.Sessions)
		if res.NextCursor == "" {
			break
		}
		cursor = res.NextCursor
	}
	if n != b.o.sessions {
		fatalf("the restarted daemon lists %d sessions in the project, want %d", n, b.o.sessions)
	}
}

// verifyList checks what the list benchmark asks for: 50 sessions of the
// project, newest first.
func (b *bench) verifyList(c *wire) {
	var res session.ListResult
	if err := c.call("session/list", session.ListParams{ProjectID: b.project, Limit: 50}, &res); err != nil {
		fatalf("session/list: %v", err)
	}
	if len(res.Sessions) != 50 || res.NextCursor == "" {
		fatalf("session/list gave %d sessions (nextCursor %q), want 50 and a cursor", len(res.Sessions), res.NextCursor)
	}
	if res.Sessions[0].ID != b.newest {
		fatalf("session/list starts with %s, want the newest session %s", res.Sessions[0].ID, b.newest)
	}
	for i := 1; i < len(res.Sessions); i++ {
		if res.Sessions[i].ID >= res.Sessions[i-1].ID {
			fatalf("session/list is not newest first at %d", i)
		}
	}
}

// getParams are the params of session/get for each seeded session,
// encoded once.
func (b *bench) getParams() [][]byte {
	ps := make([][]byte, len(b.ids))
	for i, id := range b.ids {
		ps[i] = []byte(`{"sessionID":"` + id + `"}`)
	}
	return ps
}

// sequential times n session/get calls of random sessions, one at a time.
func (b *bench) sequential(c *wire, n int, ps [][]byte, rng *rand.Rand) []time.Duration {
	ds := make([]time.Duration, 0, n)
	for range n {
		ds = append(ds, c.timedCall("session/get", ps[rng.IntN(len(ps))]))
	}
	slices.Sort(ds)
	return ds
}

func (b *bench) roundTrips(c *wire) {
	ps := b.getParams()
	rng := rand.New(rand.NewPCG(1, 2))
	// Check a few answers in full first.
	for i := range 20 {
		k := rng.IntN(len(ps))
		var s session.Session
		if err := c.call("session/get", json.RawMessage(ps[k]), &s); err != nil {
			fatalf("session/get: %v", err)
		}
		if s.ID != b.ids[k] {
			fatalf("session/get %d answered %s, want %s", i, s.ID, b.ids[k])
		}
	}
	progress("session/get via stdio: %d warm-up, %d timed", b.o.rtWarm, b.o.rt)
	b.sequential(c, b.o.rtWarm, ps, rng)
	ds := b.sequential(c, b.o.rt, ps, rng)
	p50, p99 := pct(ds, 0.50), pct(ds, 0.99)
	progress("  p50 %s, p99 %s", us(p50), us(p99))
	b.add(row{"session/get round trip via `sessiond stdio`, p50", us(p50), "≤ " + us(targetGetP50), okIf(p50 <= targetGetP50)})
	b.add(row{"session/get round trip via `sessiond stdio`, p99", fmt.Sprintf("%s (max %s; n=%d)", us(p99), us(ds[len(ds)-1]), len(ds)), "—", "—"})
}

func (b *bench) pipelined(c *wire) {
	ps := b.getParams()
	rng := rand.New(rand.NewPCG(3, 4))
	gen := func(buf []byte, _ int, id uint64) []byte {
		return appendRequest(buf, id, "session/get", ps[rng.IntN(len(ps))])
	}
	progress("pipelined session/get via stdio: %d in flight, %d warm-up, %d timed", b.o.inflight, 5_000, b.o.pipe)
	pipeline(c, 5_000, b.o.inflight, gen, nil)
	t0 := time.Now()
	pipeline(c, b.o.pipe, b.o.inflight, gen, nil)
	rate := float64(b.o.pipe) / time.Since(t0).Seconds()
	progress("  %.0f req/s", rate)
	b.add(row{fmt.Sprintf("session/get pipelined via `sessiond stdio` (%d in flight, n=%s)", b.o.inflight, count(b.o.pipe)),
		fmt.Sprintf("%s req/s", count(int(math.Round(rate)))), "≥ " + count(int(targetPipelined)) + " req/s", okIf(rate >= targetPipelined)})
}

func (b *bench) list(c *wire) {
	// The round trip without the work, for comparison: session/get on
	// the same socket connection.
	ps := b.getParams()
	rng := rand.New(rand.NewPCG(5, 6))
	progress("session/get via socket (baseline): 1000 warm-up, 5000 timed")
	b.sequential(c, 1_000, ps, rng)
	base := b.sequential(c, 5_000, ps, rng)

	b.verifyList(c)
	params, _ := json.Marshal(session.ListParams{ProjectID: b.project, Limit: 50})
	progress("session/list limit 50 via socket: 50 warm-up, %d timed", b.o.list)
	for range 50 {
		c.timedCall("session/list", params)
	}
	ds := make([]time.Duration, 0, b.o.list)
	for range b.o.list {
		ds = append(ds, c.timedCall("session/list", params))
	}
	slices.Sort(ds)
	p50, p99 := pct(ds, 0.50), pct(ds, 0.99)
	progress("  p50 %s, p99 %s (session/get baseline p50 %s)", ms(p50), ms(p99), us(pct(base, 0.5)))
	b.add(row{fmt.Sprintf("session/list newest 50 of %s in one project, p50 (socket round trip included)", count(b.o.sessions)),
		ms(p50), "≤ 2 ms", okIf(p50 <= targetList)})
	b.add(row{"session/list newest 50, p99", fmt.Sprintf("%s (max %s; n=%d)", ms(p99), ms(ds[len(ds)-1]), len(ds)), "—", "—"})
	b.add(row{"round-trip baseline: session/get via socket, p50 / p99", fmt.Sprintf("%s / %s", us(pct(base, 0.5)), us(pct(base, 0.99))), "—", "—"})
}

// memoryUnderLoad drives o.loadConns concurrent clients, each on its own
// socket connection and session, with a mix of requests whose messages
// go up to several MiB, plus malformed input, while one connection (sc)
// stays open throughout; it reports the daemon's resident set at its peak
// and o.afterLoad after the load ended, against the idle figure of the
// same daemon (idleRSS).
func (b *bench) memoryUnderLoad(pid int, sc *wire) {
	n := b.o.loadConns
	if n <= 0 {
		return
	}
	idle := b.idle
	progress("memory load: %d clients; RSS before %s, idle %s", n, readRSS(pid), idle)
	var (
		peak memory
		stop = make(chan struct{})
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			if m := readRSS(pid); m.rss > peak.rss {
				peak = m
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		// Projects of 5 clients each: events fan out, but not to all.
		dir := filepath.Join(b.tmp, "load", strconv.Itoa(i%(max(1, n/5))))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			fatalf("%v", err)
		}
		big := 1 << 20
		if i%10 == 0 {
			big = 8 << 20
		}
		wg.Go(func() { b.loadClient(dir, big) })
	}
	for range 3 {
		wg.Go(b.badClient)
	}
	wg.Wait()
	close(stop)
	<-done
	el := time.Since(t0)
	progress("  load took %s; peak RSS %s", ms(el), peak)
	if err := sc.call("daemon/status", nil, nil); err != nil {
		fatalf("daemon/status after the load: %v", err)
	}

	// Wait, noting when RSS first came back within the target.
	t1 := time.Now()
	limit := int64(targetAfterLoad * float64(idle.rss))
	var back time.Duration = -1
	for time.Since(t1) < b.o.afterLoad {
		time.Sleep(250 * time.Millisecond)
		if back < 0 && readRSS(pid).rss <= limit {
			back = time.Since(t1)
		}
	}
	after := readRSS(pid)
	progress("  RSS %s after %s", after, b.o.afterLoad)
	when := "never"
	if back >= 0 {
		when = fmt.Sprintf("%.0f s", back.Seconds())
	}
	b.add(row{fmt.Sprintf("daemon RSS, peak under %d concurrent clients (messages up to 8 MiB, malformed input; load took %.0f s)", n, el.Seconds()),
		peak.String(), "—", "—"})
	b.add(row{fmt.Sprintf("daemon RSS %s after the load ended (1 connection kept; within %.0f× idle after %s)", b.o.afterLoad, targetAfterLoad, when),
		after.String(), fmt.Sprintf("≤ %.0f× the idle RSS above (%s)", targetAfterLoad, mib(limit)), okIf(after.rss <= limit)})
}

// loadClient is one client of the memory load: its own session, text
// messages of 1 KiB, 64 KiB and big bytes, read back, and an upload.
func (b *bench) loadClient(dir string, big int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn := b.dialSocket()
	c := rpc.Dial(ctx, conn, rpc.ClientOptions{Logger: slog.New(slog.DiscardHandler)})
	defer c.Close()
	call := func(method string, params, result any) {
		if err := c.Call(ctx, method, params, result); err != nil {
			fatalf("memory load: %s: %v", method, err)
		}
	}
	call("initialize", json.RawMessage(initParams), nil)
	var s session.Session
	call("session/create", map[string]any{"directory": dir, "title": "memory load"}, &s)
	for _, size := range []int{1 << 10, 64 << 10, big} {
		call("session/appendEvent", map[string]any{"sessionID": s.ID, "event": map[string]any{
			"author": "user", "content": []any{map[string]any{"type": "text", "text": strings.Repeat("m", size)}}}}, nil)
		call("session/get", map[string]any{"sessionID": s.ID}, nil)
	}
	var msgs []json.RawMessage
	call("session/messages", map[string]any{"sessionID": s.ID}, &msgs)
	if len(msgs) != 3 {
		fatalf("memory load: session/messages gave %d messages, want 3", len(msgs))
	}
	content := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("u\n"), 64<<10))
	call("session/upload", map[string]any{"sessionID": s.ID, "path": "upload-" + s.ID + ".txt", "content": content}, nil)
}

// badClient sends malformed input of all sizes and reads the answers.
func (b *bench) badClient() {
	conn := b.dialSocket()
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 64<<10)
	const big = 8 << 20
	for _, in := range []string{
		"not json",
		`{"jsonrpc":"2.0","id":1,"method":` + strings.Repeat(" ", big),
		"[" + strings.Repeat(`{"a":1},`, big/8) + "{}]",
		`{"jsonrpc":"2.0","method":"daemon/status","params":{"pad":"` + strings.Repeat("p", big) + `"` + "\n",
	} {
		go conn.Write([]byte(in + "\n")) // the daemon answers while it reads
		line, err := r.ReadBytes('\n')
		if err != nil || !bytes.Contains(line, []byte(`"error"`)) {
			fatalf("memory load: malformed input of %d bytes: reply %.200q, %v", len(in), line, err)
		}
	}
}

// ---------------------------------------------------------------------
// The wire: NDJSON JSON-RPC with as little client work as possible.

type wire struct {
	r    *bufio.Reader
	w    *bufio.Writer
	id   uint64 // last request id used
	buf  []byte // request scratch
	long []byte // a reply longer than r's buffer
}

func newWire(r io.Reader, w io.Writer) *wire {
	return &wire{r: bufio.NewReaderSize(r, 256<<10), w: bufio.NewWriterSize(w, 64<<10)}
}

// appendRequest appends one NDJSON request line.
func appendRequest(buf []byte, id uint64, method string, params []byte) []byte {
	buf = append(buf, `{"jsonrpc":"2.0","id":`...)
	buf = strconv.AppendUint(buf, id, 10)
	buf = append(buf, `,"method":"`...)
	buf = append(buf, method...)
	buf = append(buf, '"')
	if params != nil {
		buf = append(buf, `,"params":`...)
		buf = append(buf, params...)
	}
	return append(buf, "}\n"...)
}

// replyError is an error reply.
type replyError struct{ line string }

func (e *replyError) Error() string { return "error reply: " + e.line }

const replyPrefix = `{"jsonrpc":"2.0","id":`

// next reads the next reply, skipping notifications. The line is valid
// until the next read. An error reply is returned with its id and a
// *replyError.
func (c *wire) next() (uint64, []byte, error) {
	for {
		line, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			c.long = append(c.long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = c.r.ReadSlice('\n')
				c.long = append(c.long, line...)
			}
			line = c.long
		}
		if err != nil {
			return 0, nil, fmt.Errorf("read reply: %w", err)
		}
		// Fast path: the daemon writes jsonrpc, id, then result or error.
		if rest, ok := bytes.CutPrefix(line, []byte(replyPrefix)); ok {
			n := 0
			for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
				n++
			}
			if id, err := strconv.ParseUint(string(rest[:n]), 10, 64); err == nil {
				switch {
				case bytes.HasPrefix(rest[n:], []byte(`,"result":`)):
					return id, line, nil
				case bytes.HasPrefix(rest[n:], []byte(`,"error":`)):
					return id, line, &replyError{strings.TrimSpace(string(line))}
				}
			}
		}
		// Anything else: decode the envelope.
		var env struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(line, &env); err != nil {
			return 0, line, fmt.Errorf("unparsable reply %q: %w", line, err)
		}
		if env.Method != "" {
			if len(env.ID) == 0 || string(env.ID) == "null" {
				continue // a notification
			}
			return 0, line, fmt.Errorf("the daemon sent a request (%s); this benchmark answers none", env.Method)
		}
		id, err := strconv.ParseUint(string(env.ID), 10, 64)
		if err != nil {
			return 0, line, &replyError{strings.TrimSpace(string(line))}
		}
		if len(env.Error) > 0 && string(env.Error) != "null" {
			return id, line, &replyError{strings.TrimSpace(string(line))}
		}
		return id, line, nil
	}
}

func (c *wire) send(method string, params []byte) uint64 {
	c.id++
	c.buf = appendRequest(c.buf[:0], c.id, method, params)
	if _, err := c.w.Write(c.buf); err != nil {
		fatalf("write %s: %v", method, err)
	}
	if err := c.w.Flush(); err != nil {
		fatalf("write %s: %v", method, err)
	}
	return c.id
}

// call sends a request and decodes the result into result (may be nil).
func (c *wire) call(method string, params, result any) error {
	var p []byte
	if params != nil {
		var err error
		if p, err = json.Marshal(params); err != nil {
			return err
		}
	}
	id := c.send(method, p)
	got, line, err := c.next()
	if err != nil {
		return err
	}
	if got != id {
		return fmt.Errorf("%s: reply to id %d, want %d", method, got, id)
	}
	if result == nil {
		return nil
	}
	var r struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return err
	}
	return json.Unmarshal(r.Result, result)
}

func (c *wire) notify(method string, params []byte) error {
	c.buf = append(c.buf[:0], `{"jsonrpc":"2.0","method":"`...)
	c.buf = append(c.buf, method...)
	c.buf = append(c.buf, `","params":`...)
	c.buf = append(c.buf, params...)
	c.buf = append(c.buf, "}\n"...)
	if _, err := c.w.Write(c.buf); err != nil {
		return err
	}
	return c.w.Flush()
}

// timedCall is one request and its reply, timed from just before the write
// to just after the reply's id is read.
func (c *wire) timedCall(method string, params []byte) time.Duration {
	t0 := time.Now()
	id := c.send(method, params)
	got, line, err := c.next()
	d := time.Since(t0)
	if err != nil {
		fatalf("%s: %v", method, err)
	}
	if got != id {
		fatalf("%s: reply to id %d, want %d: %q", method, got, id, line)
	}
	return d
}

// pipeline sends n requests made by gen with up to inflight unanswered,
// one goroutine writing and this one reading, and checks every id is
// answered exactly once. onReply, if set, sees request i's reply.
func pipeline(c *wire, n, inflight int, gen func(buf []byte, i int, id uint64) []byte, onReply func(i int, line []byte)) {
	base := c.id + 1
	c.id += uint64(n)
	slots := make(chan struct{}, inflight)
	werr := make(chan error, 1)
	go func() {
		var buf []byte
		for i := range n {
			select {
			case slots <- struct{}{}:
			default:
				// Window full: send what we have, then wait.
				if err := c.w.Flush(); err != nil {
					werr <- err
					return
				}
				slots <- struct{}{}
			}
			buf = gen(buf[:0], i, base+uint64(i))
			if _, err := c.w.Write(buf); err != nil {
				werr <- err
				return
			}
		}
		werr <- c.w.Flush()
	}()
	seen := make([]bool, n)
	for range n {
		id, line, err := c.next()
		if err != nil {
			fatalf("pipelined reply: %v", err)
		}
		i := int(id - base)
		if id < base || i >= n || seen[i] {
			fatalf("pipelined reply with unexpected id %d: %q", id, line)
		}
		seen[i] = true
		if onReply != nil {
			onReply(i, line)
		}
		<-slots
	}
	if err := <-werr; err != nil {
		fatalf("pipelined write: %v", err)
	}
}

// ---------------------------------------------------------------------
// Numbers and the table.

// pct is the nearest-rank percentile of sorted ds.
func pct(ds []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// memory is a process's resident set from /proc/<pid>/status, in bytes:
// anonymous memory (the Go heap, stacks, Badger's memtables and caches) and
// file pages (Badger's mmapped tables and value log, the binary).
type memory struct{ rss, anon, file int64 }

func (m memory) String() string {
	return fmt.Sprintf("%s (anon %s, file %s)", mib(m.rss), mib(m.anon), mib(m.file))
}

func readRSS(pid int) memory {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		fatalf("read RSS of %d: %v", pid, err)
	}
	var m memory
	for l := range strings.SplitSeq(string(st), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.rss
		case "RssAnon":
			dst = &m.anon
		case "RssFile":
			dst = &m.file
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			fatalf("%s %q: %v", k, v, err)
		}
		*dst = kb << 10
	}
	if m.rss == 0 {
		fatalf("no VmRSS for pid %d", pid)
	}
	return m
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }
func mib(n int64) string        { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
func (b *bench) add(r row)      { b.rows = append(b.rows, r) }
func okIf(ok bool) string {
	if ok {
		return "✅"
	}
	return "❌"
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
	fmt.Fprintln(w, "Client: bench/foundation writes NDJSON requests and reads reply ids by hand (no client library in the timed loops). RSS: VmRSS of the daemon; anon = Go heap and Badger's memory, file = mmapped store files and the binary.")
}
