package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

// vmRSS reads a process's resident set (VmRSS, with its anonymous and file
// parts) from /proc in bytes.
func vmRSS(t *testing.T, pid int) (rss, anon, file int64) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("read the daemon's memory: %v", err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "RssAnon":
			anon = kb << 10
		case "RssFile":
			file = kb << 10
		}
	}
	if rss == 0 {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	return rss, anon, file
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// plainBin is sessiond built without the race detector, for measuring
// memory: the race runtime shadows every byte the heap ever used with
// several bytes of its own and never gives them back, so a -race binary's
// resident set says more about the race runtime than about the daemon.
var plainBin = sync.OnceValues(func() (string, error) {
	path := bin + "-plain"
	out, err := exec.Command("go", "build", "-o", path, "github.com/sessiond/sessiond/cmd/sessiond").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build sessiond without -race: %w\n%s", err, out)
	}
	return path, nil
})

// memoryLoad is one client of the load: its own connection, its own
// session, messages of a few sizes up to several MiB, and reading them
// back. It ignores the events it gets.
func memoryLoad(ctx context.Context, socket, dir string, big int) error {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return err
	}
	c := rpc.Dial(ctx, conn, rpc.ClientOptions{Logger: quiet})
	defer c.Close()
	if err := c.Call(ctx, "initialize", map[string]any{}, nil); err != nil {
		return err
	}
	var s session.Session
	if err := c.Call(ctx, "session/create", map[string]any{"directory": dir}, &s); err != nil {
		return err
	}
	for _, n := range []int{1 << 10, 64 << 10, big} {
		text := strings.Repeat("m", n)
		if err := c.Call(ctx, "session/appendEvent", map[string]any{"sessionID": s.ID,
			"event": map[string]any{"author": "user", "content": []any{map[string]any{"type": "text", "text": text}}}}, nil); err != nil {
			return fmt.Errorf("appendEvent of %d bytes: %w", n, err)
		}
		if err := c.Call(ctx, "session/get", map[string]any{"sessionID": s.ID}, nil); err != nil {
			return err
		}
	}
	var msgs []json.RawMessage
	if err := c.Call(ctx, "session/messages", map[string]any{"sessionID": s.ID}, &msgs); err != nil {
		return err
	}
	if len(msgs) != 3 {
		return fmt.Errorf("session/messages: %d messages, want 3", len(msgs))
	}
	content := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("u\n", 64<<10)))
	if err := c.Call(ctx, "session/upload", map[string]any{"sessionID": s.ID, "path": "up-" + s.ID + ".txt", "content": content}, nil); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	return nil
}

// badLoad sends malformed input of all sizes on a raw connection and reads
// the answers. It runs on the test's goroutine (it may fail the test).
func badLoad(t *testing.T, s *sandbox, big int) {
	c, conn := s.dialRaw("ndjson")
	defer conn.Close()
	inputs := []string{
		"not json",
		`{"jsonrpc":"2.0","id":1,"method":` + strings.Repeat(" ", big),
		`[` + strings.Repeat(`{"a":1},`, big/8) + `{}]`,
		`{"jsonrpc":"2.0","id":null,"method":"daemon/status","params":{"pad":"` + strings.Repeat("p", big) + `"}}`,
	}
	for _, in := range inputs {
		go conn.Write([]byte(in + "\n")) // the daemon answers while it reads
		if m := c.read(); m.Error == nil {
			t.Errorf("malformed input of %d bytes: want an error, got %s", len(in), m)
		}
	}
}

// After a burst of load the daemon gives its memory back: its resident set
// returns to within twice the idle figure, with an editor still connected.
func TestMemoryReturnsAfterLoad(t *testing.T) {
	t.Parallel() // its daemon's RSS is its own: other tests do not change it
	if testing.Short() {
		t.Skip("drives 60 clients with multi-MiB messages")
	}
	plain, err := plainBin()
	if err != nil {
		t.Fatal(err)
	}
	s := newSandbox(t)
	cmd := s.command("serve", "--idle-timeout", "0")
	cmd.Path, cmd.Args[0] = plain, plain
	p := s.start(cmd)
	s.waitListening(p)
	pid := p.cmd.Process.Pid
	editor := s.dial() // stays connected throughout, as an editor would
	if st := editor.status(); st.PID != pid {
		t.Fatalf("daemon/status pid %d, want the served daemon %d", st.PID, pid)
	}
	idle, idleAnon, idleFile := vmRSS(t, pid)
	t.Logf("idle: %s (anon %s, file %s)", mib(idle), mib(idleAnon), mib(idleFile))

	const clients = 60
	ctx, cancel := context.WithTimeout(context.Background(), 5*patience)
	defer cancel()
	var (
		wg   sync.WaitGroup
		errs = make(chan error, clients)
		peak int64
		stop = make(chan struct{})
	)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if r, _, _ := vmRSS(t, pid); r > peak {
				peak = r
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	for i := range clients {
		dir := s.dir("ws" + strconv.Itoa(i%20))
		big := 1 << 20
		if i%10 == 0 {
			big = 8 << 20 // some multi-MiB messages
		}
		wg.Go(func() {
			if err := memoryLoad(ctx, s.socket, dir, big); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		})
	}
	for range 3 {
		badLoad(t, s, 8<<20)
	}
	wg.Wait()
	close(stop)
	<-sampled
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	editor.status() // the editor still works
	atEnd, _, _ := vmRSS(t, pid)
	t.Logf("peak under %d clients: %s; at the end of the load: %s", clients, mib(peak), mib(atEnd))

	// Within a minute, give or take a loaded machine.
	limit := 2 * idle
	deadline := time.Now().Add(2 * time.Minute)
	t0 := time.Now()
	for {
		rss, anon, file := vmRSS(t, pid)
		if rss <= limit {
			t.Logf("back to %s (anon %s, file %s) %s after the load", mib(rss), mib(anon), mib(file), time.Since(t0).Round(time.Second))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("RSS is %s (anon %s, file %s) %s after the load; idle was %s (anon %s, file %s), peak %s: want at most twice idle, %s",
				mib(rss), mib(anon), mib(file), time.Since(t0).Round(time.Second), mib(idle), mib(idleAnon), mib(idleFile), mib(peak), mib(limit))
		}
		time.Sleep(500 * time.Millisecond)
	}
}
