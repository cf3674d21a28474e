package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	t.Run("no client", func(t *testing.T) {
		t.Parallel()
		s := newSandbox(t)
		p := s.start(s.command("serve", "--idle-timeout", "200ms"))
		if code := p.wait(); code != 0 {
			t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr.String())
		}
		if !strings.Contains(p.stderr.String(), "sessiond listening") || !strings.Contains(p.stderr.String(), "idle timeout") {
			t.Errorf("stderr does not say it listened and then left for the idle timeout:\n%s", p.stderr.String())
		}
		assertGone(t, s)
	})
	t.Run("a client keeps it alive", func(t *testing.T) {
		t.Parallel()
		// The daemon may time out before this test even connects on a slow
		// machine; that is not what is tested, so retry with a longer
		// timeout.
		for idle := time.Second; ; idle *= 2 {
			s := newSandbox(t)
			p := s.start(s.command("serve", "--idle-timeout", idle.String()))
			c, ok := connectBeforeExit(t, s, p)
			if !ok {
				if idle >= 8*time.Second {
					t.Fatalf("daemon with --idle-timeout %s exited before a client could connect; stderr:\n%s", idle, p.stderr.String())
				}
				continue
			}
			// A connected client that sends nothing for three idle
			// timeouts still keeps it.
			deadline := time.Now().Add(3 * idle)
			for time.Now().Before(deadline) && !p.exited() {
				time.Sleep(50 * time.Millisecond)
			}
			if p.exited() {
				t.Fatalf("daemon exited while a client was connected; stderr:\n%s", p.stderr.String())
			}
			if st := c.status(); st.Connections != 1 {
				t.Errorf("daemon/status connections = %d, want 1", st.Connections)
			}
			// Once it leaves, the idle timeout runs again.
			c.Close()
			if code := p.wait(); code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr.String())
			}
			assertGone(t, s)
			return
		}
	})
}

// connectBeforeExit connects a client to a daemon that may exit first.
func connectBeforeExit(t *testing.T, s *sandbox, p *proc) (*client, bool) {
	t.Helper()
	var conn net.Conn
	waitUntil(t, "the daemon to listen", func() bool {
		if p.exited() {
			return true
		}
		var err error
		conn, err = net.Dial("unix", s.socket)
		return err == nil
	})
	if conn == nil {
		return nil, false
	}
	c := &client{t: t, events: &eventLog{wake: make(chan struct{}, 1)}}
	c.Client = rpc.Dial(context.Background(), conn, rpc.ClientOptions{Logger: quiet})
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := c.Call(ctx, "initialize", map[string]any{}, nil); err != nil {
		p.wait()
		return nil, false
	}
	return c, true
}

// assertGone checks that a daemon that exited cleaned up after itself.
func assertGone(t *testing.T, s *sandbox) {
	t.Helper()
	if exists(s.socket) {
		t.Errorf("socket %s left behind", s.socket)
	}
	if exists(filepath.Join(s.data, "daemon.json")) {
		t.Errorf("daemon.json left behind")
	}
	if dataDirHeld(t, s.data) {
		t.Errorf("data dir still locked")
	}
}

func TestSignalShutdown(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			p := s.serve("--idle-timeout", "0")
			c := s.dial()
			dir := s.dir("ws")
			var ids []string
			for i := range 5 {
				ses := c.create(session.CreateParams{Directory: dir, Title: fmt.Sprintf("s%d", i)})
				c.say(ses.ID, "user", "hello "+ses.ID)
				c.call("session/state/update", map[string]any{"sessionID": ses.ID, "delta": map[string]any{"i": i}}, nil)
				ids = append(ids, ses.ID)
			}
			idle := s.dial() // a connected client must not hold up the shutdown

			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(); code != 0 {
				t.Fatalf("exit code %d after %s; stderr:\n%s", code, sig, p.stderr.String())
			}
			if !strings.Contains(p.stderr.String(), "shutting down") {
				t.Errorf("stderr does not log the shutdown:\n%s", p.stderr.String())
			}
			for _, cl := range []*client{c, idle} {
				select {
				case <-cl.Done():
				case <-time.After(patience):
					t.Fatal("client connection not closed by the shutdown")
				}
			}
			assertGone(t, s)

			s.serve()
			c = s.dial()
			got := c.list(session.ListParams{Directory: dir}).Sessions
			if len(got) != len(ids) {
				t.Fatalf("after restart: %d sessions, want %d", len(got), len(ids))
			}
			for i, id := range ids {
				var msgs []session.MessageWithParts
				c.call("session/messages", map[string]any{"sessionID": id}, &msgs)
				if len(msgs) != 1 || len(msgs[0].Parts) != 1 || msgs[0].Parts[0].Text != "hello "+id {
					t.Errorf("messages of %s after restart: %+v", id, msgs)
				}
				var st session.StateResult
				c.call("session/state/get", map[string]any{"sessionID": id}, &st)
				if string(st.State["i"]) != fmt.Sprint(i) {
					t.Errorf("state of %s after restart: %s", id, mustJSON(st.State))
				}
			}
		})
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	first := s.serve()
	pid := first.cmd.Process.Pid
	otherData := filepath.Join(s.base, "other")
	otherSocket := filepath.Join(s.base, "other.sock")
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"serve, same data dir", nil, []string{"serve"},
			fmt.Sprintf("a sessiond daemon is already running for data dir %s (pid %d, socket %s)", s.data, pid, s.socket)},
		{"serve, same data dir, other socket", nil, []string{"serve", "--socket", otherSocket},
			fmt.Sprintf("already running for data dir %s (pid %d", s.data, pid)},
		{"standalone, same data dir", nil, []string{"stdio", "--standalone"},
			fmt.Sprintf("already running for data dir %s (pid %d", s.data, pid)},
		{"serve, other data dir, same socket", nil, []string{"serve", "--data-dir", otherData},
			"another sessiond is already serving socket " + s.socket},
	}
	for _, tc := range cases {
		_, stderr, code := s.run("", tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 and %q", tc.name, code, stderr, tc.want)
		}
	}
	if dataDirHeld(t, otherData) {
		t.Errorf("refused daemon left a lock")
	}
	// The first daemon is untouched and still serving.
	if first.exited() {
		t.Fatalf("first daemon exited; stderr:\n%s", first.stderr.String())
	}
	if st := s.dial().status(); st.PID != pid {
		t.Fatalf("socket answered by pid %d, want %d", st.PID, pid)
	}

	t.Run("data dir held by a standalone", func(t *testing.T) {
		s := newSandbox(t)
		p := s.stdio("stdio", "--standalone")
		newClient(t, p.rwc()) // it answers: it holds the data dir
		_, stderr, code := s.run("", "serve")
		want := fmt.Sprintf("data dir %s is in use by a standalone sessiond (pid %d)", s.data, p.cmd.Process.Pid)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
		}
	})
}

// staleSocket leaves a socket file nobody listens on, as a killed daemon
// does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if !exists(path) {
		t.Fatal("stale socket not left behind")
	}
}

func TestStaleSocketRecovered(t *testing.T) {
	t.Parallel()
	t.Run("serve", func(t *testing.T) {
		t.Parallel()
		s := newSandbox(t)
		staleSocket(t, s.socket)
		s.serve()
		s.dial().status()
	})
	t.Run("auto-start", func(t *testing.T) {
		t.Parallel()
		s := newSandbox(t)
		staleSocket(t, s.socket)
		var st daemon.DaemonStatus
		if err := json.Unmarshal([]byte(s.runOK("", "status", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		if o, _ := owner(s.data); st.PID != o.PID || st.Socket != s.socket {
			t.Fatalf("status %+v; daemon.json %+v", st, o)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		t.Parallel()
		s := newSandbox(t)
		os.WriteFile(s.socket, []byte("keep me"), 0o600)
		_, stderr, code := s.run("", "serve")
		if code != 1 || !strings.Contains(stderr, s.socket+" exists and is not a socket") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		if b, _ := os.ReadFile(s.socket); string(b) != "keep me" {
			t.Errorf("the file in the way was changed: %q", b)
		}
	})
}

func TestForeignSocketRefused(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root to make files owned by another user")
	}
	const nobody = 65534
	refusal := func(path string) string {
		return fmt.Sprintf("%s is owned by uid %d, not by you (uid 0): refusing to use it", path, nobody)
	}
	t.Run("socket dir", func(t *testing.T) {
		t.Parallel()
		s := newSandbox(t)
		dir := filepath.Join(s.base, "run")
		os.Mkdir(dir, 0o700)
		if err := os.Chown(dir, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := s.run("", "serve", "--socket", filepath.Join(dir, "s.sock"))
		if code != 1 || !strings.Contains(stderr, refusal(dir)) {
			t.Errorf("exit %d, stderr %q; want %q", code, stderr, refusal(dir))
		}
		if exists(filepath.Join(dir, "s.sock")) {
			t.Errorf("a socket was made in the foreign dir")
		}
	})
	t.Run("stale socket file", func(t *testing.T) {
		t.Parallel()
		s := newSandbox(t)
		staleSocket(t, s.socket)
		if err := os.Lchown(s.socket, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := s.run("", "serve")
		if code != 1 || !strings.Contains(stderr, refusal(s.socket)) {
			t.Errorf("exit %d, stderr %q; want %q", code, stderr, refusal(s.socket))
		}
		if !exists(s.socket) {
			t.Errorf("the foreign socket was removed")
		}
	})
	t.Run("live socket, clients", func(t *testing.T) {
		t.Parallel()
		s := newSandbox(t)
		s.serve()
		if err := os.Lchown(s.socket, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"status"}, {"ls", "--all"}} {
			_, stderr, code := s.run("", args...)
			if code != 1 || !strings.Contains(stderr, refusal(s.socket)) {
				t.Errorf("%v: exit %d, stderr %q; want %q", args, code, stderr, refusal(s.socket))
			}
		}
		p := s.stdio("stdio")
		p.stdin.Close()
		if code := p.wait(); code != 1 || !strings.Contains(p.stderr.String(), refusal(s.socket)) {
			t.Errorf("stdio: exit %d, stderr %q", code, p.stderr.String())
		}
		os.Lchown(s.socket, 0, 0)
		s.runOK("", "status")
	})
}

func TestSocketAndDataDirSettings(t *testing.T) {
	t.Parallel()
	type paths struct{ data, socket string }
	cases := []struct {
		name string
		// env and args get the sandbox base substituted for "@".
		env  []string
		args []string
		want paths
	}{
		{"flags", nil, []string{"--data-dir", "@/d", "--socket", "@/s.sock"}, paths{"@/d", "@/s.sock"}},
		{"env", []string{"SESSIOND_DATA_DIR=@/d", "SESSIOND_SOCKET=@/s.sock"}, nil, paths{"@/d", "@/s.sock"}},
		{"flags beat env", []string{"SESSIOND_DATA_DIR=@/envd", "SESSIOND_SOCKET=@/env.sock"},
			[]string{"--data-dir", "@/d", "--socket", "@/s.sock"}, paths{"@/d", "@/s.sock"}},
		{"relative data dir", nil, []string{"--data-dir", "rel"}, paths{"@/rel", "@/rel/sessiond.sock"}},
		{"XDG dirs", []string{"XDG_DATA_HOME=@/xdg", "XDG_RUNTIME_DIR=@/run"}, nil,
			paths{"@/xdg/sessiond", "@/run/sessiond/sessiond.sock"}},
		{"HOME only", nil, nil, paths{"@/home/.local/share/sessiond", "@/home/.local/share/sessiond/sessiond.sock"}},
		{"data dir given, socket beside it", []string{"SESSIOND_DATA_DIR=@/d", "XDG_RUNTIME_DIR=@/run"}, nil,
			paths{"@/d", "@/d/sessiond.sock"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			at := func(v string) string { return strings.ReplaceAll(v, "@", s.base) }
			env := append(cleanEnv(), "HOME="+filepath.Join(s.base, "home"))
			for _, kv := range tc.env {
				env = append(env, at(kv))
			}
			var args []string
			for _, a := range tc.args {
				args = append(args, at(a))
			}
			want := paths{at(tc.want.data), at(tc.want.socket)}
			s.track(want.data)
			out, stderr, code := s.runEnv(env, "", append(args, "status", "--json")...)
			if code != 0 {
				t.Fatalf("status: exit %d\n%s", code, stderr)
			}
			var st daemon.DaemonStatus
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatalf("status --json: %v\n%s", err, out)
			}
			if st.DataDir != want.data || st.Socket != want.socket {
				t.Fatalf("daemon uses data dir %s and socket %s, want %s and %s", st.DataDir, st.Socket, want.data, want.socket)
			}
			if o, err := owner(want.data); err != nil || o.PID != st.PID {
				t.Errorf("daemon.json in %s: %+v, %v", want.data, o, err)
			}
			fi, err := os.Stat(want.socket)
			if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
				t.Errorf("socket %s: %v, %v; want a socket with mode 0600", want.socket, fi.Mode(), err)
			}
			if fi, err := os.Stat(filepath.Dir(want.socket)); tc.name == "XDG dirs" && (err != nil || fi.Mode().Perm() != 0o700) {
				t.Errorf("socket dir: %v, %v; want mode 0700", fi.Mode(), err)
			}
			if exists(at("@/envd")) {
				t.Errorf("the data dir from the environment was used despite --data-dir")
			}
			if exists(s.data) {
				t.Errorf("default sandbox data dir %s was created", s.data)
			}
		})
	}
	t.Run("socket path too long", func(t *testing.T) {
		t.Parallel()
		s := newSandbox(t)
		long := filepath.Join(s.base, strings.Repeat("x", 120), "s.sock")
		_, stderr, code := s.run("", "--socket", long, "status")
		if code != 1 || !strings.Contains(stderr, "longer than the 107") || !strings.Contains(stderr, "--socket") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestBareSessiond(t *testing.T) {
	t.Parallel()
	t.Run("stdin a pipe: stdio", func(t *testing.T) {
		t.Parallel()
		s := newSandbox(t)
		p := s.stdio()
		c := newClient(t, p.rwc())
		st := c.status()
		o, err := owner(s.data)
		if err != nil || o.Mode != "serve" || st.PID != o.PID || st.PID == p.cmd.Process.Pid {
			t.Fatalf("bare sessiond on a pipe did not relay to an auto-started daemon: status %+v, daemon.json %+v, %v", st, o, err)
		}
		p.stdin.Close()
		if code := p.wait(); code != 0 {
			t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr.String())
		}
	})
	t.Run("stdin /dev/null: stdio", func(t *testing.T) {
		t.Parallel()
		s := newSandbox(t)
		cmd := s.command() // exec gives /dev/null as stdin
		var out bytes.Buffer
		cmd.Stdout = &out
		p := s.start(cmd)
		if code := p.wait(); code != 0 || out.Len() != 0 {
			t.Fatalf("exit %d, stdout %q; want a silent stdio session that ends at EOF", code, out.String())
		}
	})
	t.Run("stdin a terminal: help", func(t *testing.T) {
		t.Parallel()
		s := newSandbox(t)
		_, tty := openPTY(t)
		cmd := s.command()
		cmd.Stdin = tty
		var out bytes.Buffer
		cmd.Stdout = &out
		p := s.start(cmd)
		if code := p.wait(); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, p.stderr.String())
		}
		for _, want := range []string{"Usage:", "sessiond [command]", "stdio", "serve"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("help lacks %q:\n%s", want, out.String())
			}
		}
		if exists(s.socket) || exists(filepath.Join(s.data, "daemon.json")) {
			t.Errorf("printing help started a daemon")
		}
	})
}

// TestStdioSharedDaemon starts two editors' `sessiond stdio` at the same
// moment: one daemon must win, both must reach it, and each must see the
// other's changes live.
func TestStdioSharedDaemon(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	dir := s.dir("ws")
	// Both processes start dialing (and auto-starting) at once.
	var procs [2]*stdioProc
	for i := range procs {
		procs[i] = s.stdio("stdio")
	}
	var clients [2]*client
	for i := range procs {
		clients[i] = newClient(t, procs[i].rwc())
	}
	a, b := clients[0], clients[1]
	sa, sb := a.status(), b.status()
	o, err := owner(s.data)
	if err != nil {
		t.Fatal(err)
	}
	if sa.PID != sb.PID || sa.PID != o.PID {
		t.Fatalf("the two stdio processes reach different daemons: %d and %d (daemon.json %d)", sa.PID, sb.PID, o.PID)
	}
	if sa.Connections < 2 {
		t.Errorf("daemon/status connections = %d, want 2", sa.Connections)
	}

	proj := a.open(dir)
	ses := b.create(session.CreateParams{Directory: dir, Title: "from b"})
	if e := a.events.expect(t, "session.created", ses.ID); e.Properties.Info.Title != "from b" || e.Properties.Info.ProjectID != proj.ID {
		t.Errorf("session.created seen by a: %s", e.Raw)
	}
	ev := b.say(ses.ID, "user", "hello from b")
	if m := a.events.expect(t, "message.updated", ses.ID).message(); m.ID != ev.MessageID || m.Role != "user" {
		t.Errorf("message.updated seen by a: %+v", m)
	}
	if p := a.events.expect(t, "part.updated", ses.ID).Properties.Part; p.Text != "hello from b" {
		t.Errorf("part.updated seen by a: %+v", p)
	}
	a.call("session/update", map[string]any{"sessionID": ses.ID, "title": "renamed by a"}, nil)
	b.events.expectWhere(t, "session.updated", ses.ID, func(e event) bool { return e.Properties.Info.Title == "renamed by a" })
	a.call("session/delete", map[string]any{"sessionID": ses.ID}, nil)
	b.events.expect(t, "session.deleted", ses.ID)

	for i, p := range procs {
		p.stdin.Close()
		if code := p.wait(); code != 0 {
			t.Errorf("stdio %d: exit code %d; stderr:\n%s", i, code, p.stderr.String())
		}
	}
	// The daemon outlives its clients, until its idle timeout.
	if !dataDirHeld(t, s.data) {
		t.Errorf("daemon exited with its last client")
	}
}

// TestKill9NothingLost kills the daemon with SIGKILL while clients are
// writing: every create, message and delete it acknowledged must be there
// after a restart, which also recovers the stale socket.
func TestKill9NothingLost(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	p := s.serve()
	dir := s.dir("ws")
	type acked struct {
		title    string
		message  string
		deleting bool // a delete was sent: unless acknowledged, either outcome is fine
		deleted  bool
	}
	var (
		mu    sync.Mutex
		seen  = map[string]*acked{}
		count int
	)
	const writers = 4
	var clients []*client
	for range writers {
		c := s.dial()
		c.open(dir)
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	for w, c := range clients {
		wg.Go(func() {
			ctx := context.Background()
			for i := 0; ; i++ {
				var ses session.Session
				title := fmt.Sprintf("w%d-%d", w, i)
				if c.Call(ctx, "session/create", map[string]any{"title": title}, &ses) != nil {
					return
				}
				a := &acked{title: title}
				mu.Lock()
				seen[ses.ID] = a
				count++
				mu.Unlock()
				text := "message of " + title
				err := c.Call(ctx, "session/appendEvent", map[string]any{"sessionID": ses.ID,
					"event": map[string]any{"author": "user", "content": []any{map[string]any{"type": "text", "text": text}},
						"actions": map[string]any{"stateDelta": map[string]any{"title": title}}}}, nil)
				if err != nil {
					return
				}
				mu.Lock()
				a.message = text
				mu.Unlock()
				if i%5 == 4 {
					mu.Lock()
					a.deleting = true
					mu.Unlock()
					if c.Call(ctx, "session/delete", map[string]any{"sessionID": ses.ID}, nil) != nil {
						return
					}
					mu.Lock()
					a.deleted = true
					mu.Unlock()
				}
			}
		})
	}
	waitUntil(t, "100 acknowledged creates", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return count >= 100
	})
	p.cmd.Process.Kill() // SIGKILL, mid-flight
	p.wait()
	wg.Wait()
	if !exists(s.socket) {
		t.Fatal("SIGKILL left no stale socket; the restart would test nothing")
	}

	// A CLI verb restarts the daemon on the stale socket.
	var res session.ListResult
	out := s.runOK("", "ls", "--all", "--json", "--limit", "1000")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	listed := map[string]session.Session{}
	for _, ses := range res.Sessions {
		listed[ses.ID] = ses
	}
	c := s.dial()
	if st := c.status(); st.PID == p.cmd.Process.Pid {
		t.Fatal("the killed daemon is still answering")
	}
	mu.Lock()
	defer mu.Unlock()
	for id, a := range seen {
		got, ok := listed[id]
		switch {
		case a.deleted && ok:
			t.Errorf("%s: deleted (acknowledged) but back after the restart", id)
		case a.deleted:
			errCheck(t, "deleted "+id, c.callErr("session/get", map[string]any{"sessionID": id}), rpc.CodeNotFound, "")
		case a.deleting && !ok:
			// deleted, but killed before it could say so
		case !ok:
			t.Errorf("%s (%s): created (acknowledged) but lost", id, a.title)
		case got.Title != a.title:
			t.Errorf("%s: title %q, want %q", id, got.Title, a.title)
		case a.message != "":
			var msgs []session.MessageWithParts
			c.call("session/messages", map[string]any{"sessionID": id}, &msgs)
			if len(msgs) != 1 || len(msgs[0].Parts) != 1 || msgs[0].Parts[0].Text != a.message || got.MessageCount != 1 {
				t.Errorf("%s: messages after restart %s (count %d), want %q", id, mustJSON(msgs), got.MessageCount, a.message)
			}
			var st session.StateResult
			c.call("session/state/get", map[string]any{"sessionID": id, "key": "title"}, &st)
			if string(st.State["title"]) != mustJSON(a.title) {
				t.Errorf("%s: state after restart %s", id, mustJSON(st.State))
			}
		}
	}
}
