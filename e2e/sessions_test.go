package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/workspace"
)

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func TestWorkspaceGitCloneIsOneProject(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	s := newSandbox(t)
	repo := s.dir("repo")
	git(t, repo, "init", "-q")
	os.WriteFile(filepath.Join(repo, "README"), []byte("hi\n"), 0o644)
	os.Mkdir(filepath.Join(repo, "sub"), 0o755)
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "first")
	git(t, s.base, "clone", "-q", repo, filepath.Join(s.base, "clone"))
	clone := filepath.Join(s.base, "clone")
	plain := s.dir("plain")

	s.serve()
	c := s.dial()
	p := c.open(repo)
	if p.VCS != workspace.VCSGit || p.Root != repo || p.Name != "repo" || !strings.HasPrefix(p.ID, "prj_") {
		t.Errorf("project of the repo: %+v", p)
	}
	for _, dir := range []string{clone, filepath.Join(repo, "sub"), repo} {
		if q := c.open(dir); q.ID != p.ID {
			t.Errorf("%s opens project %s, want the repo's %s", dir, q.ID, p.ID)
		}
	}
	if q := c.open(plain); q.ID == p.ID || q.VCS != workspace.VCSNone {
		t.Errorf("a plain directory: %+v", q)
	}
	var projects []workspace.Project
	c.call("workspace/list", nil, &projects)
	if len(projects) != 2 {
		t.Fatalf("workspace/list: %d projects, want 2: %+v", len(projects), projects)
	}
	for _, q := range projects {
		if q.ID == p.ID && !slices.Contains(q.Worktrees, clone) {
			t.Errorf("the clone is not among the project's worktrees: %+v", q)
		}
	}

	inRepo := c.create(session.CreateParams{Directory: repo})
	inClone := c.create(session.CreateParams{Directory: clone})
	if inRepo.ProjectID != p.ID || inClone.ProjectID != p.ID {
		t.Fatalf("sessions in the repo and the clone: projects %s and %s, want %s", inRepo.ProjectID, inClone.ProjectID, p.ID)
	}
	ids := func(r session.ListResult) []string {
		var out []string
		for _, s := range r.Sessions {
			out = append(out, s.ID)
		}
		return out
	}
	if got := ids(c.list(session.ListParams{ProjectID: p.ID})); !slices.Equal(got, []string{inClone.ID, inRepo.ID}) {
		t.Errorf("sessions of the project: %v", got)
	}
	if got := ids(c.list(session.ListParams{Directory: clone})); !slices.Equal(got, []string{inClone.ID}) {
		t.Errorf("sessions of the clone's directory: %v", got)
	}
}

func TestSessionListPaging(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.serve()
	c := s.dial()
	dir, other := s.dir("ws"), s.dir("other")
	proj := c.open(dir)
	var created []string
	for i := range 23 {
		created = append(created, c.create(session.CreateParams{Directory: dir, Title: fmt.Sprintf("s%02d", i)}).ID)
		if i%10 == 0 {
			c.create(session.CreateParams{Directory: other})
		}
	}
	slices.Reverse(created) // newest first

	var got []string
	cursor := ""
	for page := 0; ; page++ {
		r := c.list(session.ListParams{ProjectID: proj.ID, Limit: 10, Cursor: cursor})
		if want := min(10, 23-10*page); len(r.Sessions) != want {
			t.Fatalf("page %d: %d sessions, want %d", page, len(r.Sessions), want)
		}
		for _, s := range r.Sessions {
			got = append(got, s.ID)
		}
		if page == 0 {
			// A session created while paging appears before the first
			// page, never on a later one.
			c.create(session.CreateParams{Directory: dir, Title: "late"})
		}
		if r.NextCursor == "" {
			break
		}
		if page > 3 {
			t.Fatal("paging does not end")
		}
		cursor = r.NextCursor
	}
	if !slices.Equal(got, created) {
		t.Fatalf("paged through\n%v\nwant (newest first)\n%v", got, created)
	}
	if r := c.list(session.ListParams{ProjectID: proj.ID, Limit: 1000}); len(r.Sessions) != 24 || r.NextCursor != "" || r.Sessions[0].Title != "late" {
		t.Errorf("one big page: %d sessions, next cursor %q", len(r.Sessions), r.NextCursor)
	}
	if r := c.list(session.ListParams{Directory: dir, Search: "S2"}); len(r.Sessions) != 3 {
		t.Errorf("search \"S2\": %d sessions, want s20, s21, s22", len(r.Sessions))
	}
}

func TestChangeFeed(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.serve()
	p1, p2 := s.dir("p1"), s.dir("p2")
	writer := s.dial()
	watcher := s.dial() // opened p1
	proj1 := watcher.open(p1)
	all := s.dial() // events/subscribe all
	all.call("events/subscribe", map[string]any{"all": true}, nil)
	idle := s.dial() // opened nothing, touched nothing

	x2 := writer.create(session.CreateParams{Directory: p2, Title: "in p2"})
	x1 := writer.create(session.CreateParams{Directory: p1, Title: "in p1"})
	// The watcher's first session.created is p1's: p2's, published before
	// it, is not for it.
	if e := watcher.events.expectWhere(t, "session.created", x1.ID, func(event) bool { return true }); e.Properties.Info.ProjectID != proj1.ID {
		t.Fatalf("watcher's session.created: %s", e.Raw)
	}
	for _, e := range watcher.events.all() {
		if e.sessionID() == x2.ID {
			t.Fatalf("watcher of p1 got an event of p2 first: %s", e.Raw)
		}
	}
	all.events.expect(t, "session.created", x2.ID)
	all.events.expect(t, "session.created", x1.ID)

	ev := writer.say(x1.ID, "user", "hi")
	for _, l := range []*eventLog{watcher.events, all.events} {
		if m := l.expect(t, "message.updated", x1.ID).message(); m.ID != ev.MessageID || m.Role != session.RoleUser {
			t.Errorf("message.updated: %+v", m)
		}
		if p := l.expect(t, "part.updated", x1.ID).Properties.Part; p.MessageID != ev.MessageID || p.Text != "hi" {
			t.Errorf("part.updated: %+v", p)
		}
		if info := l.expect(t, "session.updated", x1.ID).Properties.Info; info.MessageCount != 1 {
			t.Errorf("session.updated after a message: messageCount %d", info.MessageCount)
		}
	}
	writer.call("session/update", map[string]any{"sessionID": x1.ID, "title": "renamed"}, nil)
	if info := watcher.events.expect(t, "session.updated", x1.ID).Properties.Info; info.Title != "renamed" {
		t.Errorf("session.updated: %+v", info)
	}
	child := writer.create(session.CreateParams{ParentID: x1.ID})
	if info := watcher.events.expect(t, "session.created", child.ID).Properties.Info; info.ParentID != x1.ID {
		t.Errorf("child's session.created: %+v", info)
	}
	// A session the watcher created elsewhere it hears about too.
	mine := watcher.create(session.CreateParams{Directory: p2})
	watcher.events.expect(t, "session.created", mine.ID)

	writer.call("session/delete", map[string]any{"sessionID": x1.ID}, nil)
	for _, l := range []*eventLog{watcher.events, all.events} {
		l.expectAll(t, "session.deleted", child.ID, x1.ID)
	}
	// Nothing of p2 but the watcher's own session reached the watcher.
	for _, e := range watcher.events.all() {
		if e.Properties.Info.ID == x2.ID {
			t.Errorf("watcher of p1 got an event of p2: %s", e.Raw)
		}
	}
	// The connection that watches nothing heard nothing (best effort: an
	// event wrongly sent to it would most likely have arrived by now).
	idle.status()
	if evs := idle.events.all(); len(evs) != 0 {
		t.Errorf("a connection that watches nothing got %d events, first %s", len(evs), evs[0].Raw)
	}
}

// TestSubscribeAsFirstRequest: a client may subscribe before anything
// else, even before initialize; the subscription must hold.
func TestSubscribeAsFirstRequest(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.serve()
	const n = 50
	var subs []*client
	for range n {
		conn, err := net.Dial("unix", s.socket)
		if err != nil {
			t.Fatal(err)
		}
		ev := &eventLog{wake: make(chan struct{}, 1)}
		c := &client{t: t, events: ev}
		c.Client = rpc.Dial(context.Background(), conn, rpc.ClientOptions{Logger: quiet, OnNotify: func(method string, params json.RawMessage) {
			if method == "session/event" {
				ev.add(params)
			}
		}})
		t.Cleanup(func() { c.Close() })
		c.call("events/subscribe", map[string]any{"all": true}, nil)
		subs = append(subs, c)
	}
	w := s.dial()
	ses := w.create(session.CreateParams{Directory: s.dir("ws")})
	for _, c := range subs {
		c.events.expect(t, "session.created", ses.ID)
	}
}

func TestAppendEventAndState(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.serve()
	c := s.dial()
	dir := s.dir("ws")
	ses := c.create(session.CreateParams{Directory: dir, UserID: "ann"})
	sameUser := c.create(session.CreateParams{Directory: dir, UserID: "ann"})
	otherUser := c.create(session.CreateParams{Directory: dir, UserID: "bob"})

	var ev session.Event
	c.call("session/appendEvent", map[string]any{"sessionID": ses.ID, "event": map[string]any{
		"author": "planner", "agentID": "planner-1", "branch": "root.planner", "invocationID": "inv-1",
		"content": []any{map[string]any{"type": "text", "text": "the plan"}},
		"actions": map[string]any{"stateDelta": map[string]any{
			"step": 1, "session:phase": "draft", "app:theme": "dark", "user:lang": "go", "temp:scratch": true,
		}},
	}}, &ev)
	if !strings.HasPrefix(ev.ID, "evt_") || ev.SessionID != ses.ID || ev.MessageID == "" || ev.Time == 0 {
		t.Errorf("appended event: %+v", ev)
	}

	state := func(id string, key string) map[string]string {
		t.Helper()
		var r session.StateResult
		p := map[string]any{"sessionID": id}
		if key != "" {
			p["key"] = key
		}
		c.call("session/state/get", p, &r)
		out := map[string]string{}
		for k, v := range r.State {
			out[k] = string(v)
		}
		return out
	}
	want := map[string]string{"step": "1", "phase": `"draft"`, "app:theme": `"dark"`, "user:lang": `"go"`}
	if got := state(ses.ID, ""); !mapsEqual(got, want) {
		t.Errorf("state after appendEvent: %v, want %v (temp: keys are never stored)", got, want)
	}
	if got := state(ses.ID, "user:lang"); !mapsEqual(got, map[string]string{"user:lang": `"go"`}) {
		t.Errorf("state/get user:lang: %v", got)
	}
	if got := state(ses.ID, "temp:scratch"); len(got) != 0 {
		t.Errorf("state/get temp:scratch: %v", got)
	}
	if got := state(sameUser.ID, ""); !mapsEqual(got, map[string]string{"app:theme": `"dark"`, "user:lang": `"go"`}) {
		t.Errorf("state of another session of the same user: %v", got)
	}
	if got := state(otherUser.ID, ""); !mapsEqual(got, map[string]string{"app:theme": `"dark"`}) {
		t.Errorf("state of another user's session: %v", got)
	}

	// The content became a message; the log keeps the event without temp:.
	var msgs []session.MessageWithParts
	c.call("session/messages", map[string]any{"sessionID": ses.ID}, &msgs)
	if len(msgs) != 1 || msgs[0].Info.ID != ev.MessageID || msgs[0].Info.Role != session.RoleAssistant ||
		msgs[0].Info.Agent != "planner-1" || len(msgs[0].Parts) != 1 || msgs[0].Parts[0].Text != "the plan" {
		t.Errorf("messages: %s", mustJSON(msgs))
	}
	var log []session.Event
	c.call("session/events", map[string]any{"sessionID": ses.ID, "branch": "root.planner.sub"}, &log)
	if len(log) != 1 || log[0].ID != ev.ID || log[0].InvocationID != "inv-1" || log[0].Actions == nil {
		t.Fatalf("session/events: %s", mustJSON(log))
	}
	if _, ok := log[0].Actions.StateDelta["temp:scratch"]; ok || len(log[0].Actions.StateDelta) != 4 {
		t.Errorf("logged stateDelta: %s", mustJSON(log[0].Actions.StateDelta))
	}
	c.call("session/events", map[string]any{"sessionID": ses.ID, "branch": "other"}, &log)
	if len(log) != 0 {
		t.Errorf("events visible on another branch: %s", mustJSON(log))
	}

	// A null removes a key; state/update changes state without an event.
	c.call("session/appendEvent", map[string]any{"sessionID": ses.ID, "event": map[string]any{
		"author": "planner", "actions": map[string]any{"stateDelta": map[string]any{"step": nil}},
	}}, nil)
	var r session.StateResult
	c.call("session/state/update", map[string]any{"sessionID": ses.ID, "delta": map[string]any{"phase": "final", "app:theme": nil}}, &r)
	want = map[string]string{"phase": `"final"`, "user:lang": `"go"`}
	if got := state(ses.ID, ""); !mapsEqual(got, want) {
		t.Errorf("state after removals: %v, want %v", got, want)
	}
	if got := c.get(ses.ID); got.MessageCount != 1 {
		t.Errorf("an event without content made a message: count %d", got.MessageCount)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestDeleteParentRemovesChildren(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.serve()
	c := s.dial()
	all := s.dial()
	all.call("events/subscribe", map[string]any{"all": true}, nil)
	dir := s.dir("ws")
	parent := c.create(session.CreateParams{Directory: dir, Title: "parent"})
	kid1 := c.create(session.CreateParams{ParentID: parent.ID})
	kid2 := c.create(session.CreateParams{ParentID: parent.ID})
	grandkid := c.create(session.CreateParams{ParentID: kid1.ID})
	bystander := c.create(session.CreateParams{Directory: dir, Title: "bystander"})
	if grandkid.RootID != parent.ID || grandkid.Depth != 2 || kid1.Depth != 1 {
		t.Errorf("tree: grandkid root %s depth %d, kid depth %d", grandkid.RootID, grandkid.Depth, kid1.Depth)
	}
	doomed := []session.Session{parent, kid1, kid2, grandkid}
	for _, ses := range append(doomed, bystander) {
		c.say(ses.ID, "user", "hello "+ses.ID)
		c.call("session/state/update", map[string]any{"sessionID": ses.ID, "delta": map[string]any{"k": 1}}, nil)
	}
	var kids []session.Session
	c.call("session/children", map[string]any{"sessionID": parent.ID}, &kids)
	if len(kids) != 2 {
		t.Fatalf("children: %d", len(kids))
	}

	// Deleting a leaf leaves its parent.
	c.call("session/delete", map[string]any{"sessionID": kid2.ID}, nil)
	c.call("session/children", map[string]any{"sessionID": parent.ID}, &kids)
	if len(kids) != 1 || kids[0].ID != kid1.ID {
		t.Fatalf("children after deleting one: %s", mustJSON(kids))
	}

	c.call("session/delete", map[string]any{"sessionID": parent.ID}, nil)
	for _, ses := range doomed {
		for _, method := range []string{"session/get", "session/messages", "session/events", "session/state/get"} {
			errCheck(t, method+" of deleted "+ses.Title, c.callErr(method, map[string]any{"sessionID": ses.ID}), rpc.CodeNotFound, "")
		}
	}
	if r := c.list(session.ListParams{}); len(r.Sessions) != 1 || r.Sessions[0].ID != bystander.ID {
		t.Errorf("sessions left: %s", mustJSON(r.Sessions))
	}
	var msgs []session.MessageWithParts
	c.call("session/messages", map[string]any{"sessionID": bystander.ID}, &msgs)
	if len(msgs) != 1 {
		t.Errorf("bystander's messages: %d", len(msgs))
	}
	all.events.expectAll(t, "session.deleted", parent.ID, kid1.ID, kid2.ID, grandkid.ID)
	// Creating under a deleted parent is refused, naming parentID.
	errCheck(t, "child of a deleted parent", c.callErr("session/create", map[string]any{"parentID": parent.ID}), rpc.CodeInvalidParams, "parentID")
}

// TestConcurrentClients runs many clients at once against one daemon (the
// daemon built with -race): every answer must be the right one.
func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	const (
		clients  = 50
		requests = 200
	)
	s := newSandbox(t)
	s.serve()
	// Five clients per workspace: each also receives the change feed of
	// the four others.
	dirs := make([]string, clients/5)
	for i := range dirs {
		dirs[i] = s.dir(fmt.Sprint("ws", i))
	}
	conns := make([]*client, clients)
	for i := range conns {
		conns[i] = s.dial()
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range conns {
		wg.Go(func() {
			if err := clientWorkload(c, i, dirs[i%len(dirs)], requests); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	c := s.dial()
	r := c.list(session.ListParams{Limit: 1000})
	if len(r.Sessions) != clients {
		t.Fatalf("%d sessions, want %d", len(r.Sessions), clients)
	}
	for _, ses := range r.Sessions {
		var n int
		fmt.Sscanf(ses.Title, "c%d-", &n)
		if want := fmt.Sprintf("c%d-%d", n, requests-1); ses.Title != want || ses.MessageCount != requests/10 {
			t.Errorf("session %s: title %q messages %d, want %q and %d", ses.ID, ses.Title, ses.MessageCount, want, requests/10)
		}
	}
}

// clientWorkload makes n requests on one connection and checks each answer.
func clientWorkload(c *client, me int, dir string, n int) error {
	ctx := context.Background()
	var ses session.Session
	if err := c.Call(ctx, "session/create", map[string]any{"directory": dir, "title": fmt.Sprintf("c%d-0", me)}, &ses); err != nil {
		return err
	}
	messages := 0
	for i := 1; i < n; i++ {
		title := fmt.Sprintf("c%d-%d", me, i)
		switch i % 5 {
		case 0:
			var got session.Session
			if err := c.Call(ctx, "session/update", map[string]any{"sessionID": ses.ID, "title": title}, &got); err != nil {
				return err
			}
			if got.Title != title {
				return fmt.Errorf("update answered title %q, want %q", got.Title, title)
			}
		case 1:
			var got session.Session
			if err := c.Call(ctx, "session/get", map[string]any{"sessionID": ses.ID}, &got); err != nil {
				return err
			}
			if got.ID != ses.ID || !strings.HasPrefix(got.Title, fmt.Sprintf("c%d-", me)) || got.MessageCount != messages {
				return fmt.Errorf("get answered %s %q with %d messages, want %s with %d", got.ID, got.Title, got.MessageCount, ses.ID, messages)
			}
		case 2:
			var got session.StateResult
			if err := c.Call(ctx, "session/state/update", map[string]any{"sessionID": ses.ID, "delta": map[string]any{"i": i}}, &got); err != nil {
				return err
			}
			if string(got.State["i"]) != fmt.Sprint(i) {
				return fmt.Errorf("state/update answered %s, want i=%d", mustJSON(got.State), i)
			}
		case 3:
			if i%10 == 3 {
				var ev session.Event
				err := c.Call(ctx, "session/appendEvent", map[string]any{"sessionID": ses.ID, "event": map[string]any{
					"author": "user", "content": []any{map[string]any{"type": "text", "text": title}}}}, &ev)
				if err != nil {
					return err
				}
				messages++
				if ev.SessionID != ses.ID || ev.MessageID == "" {
					return fmt.Errorf("appendEvent answered %+v", ev)
				}
			} else {
				var r session.ListResult
				if err := c.Call(ctx, "session/list", map[string]any{"directory": dir, "limit": 5}, &r); err != nil {
					return err
				}
				if len(r.Sessions) == 0 || len(r.Sessions) > 5 {
					return fmt.Errorf("list answered %d sessions", len(r.Sessions))
				}
			}
		case 4:
			if i == n-1 {
				break
			}
			var msgs []session.MessageWithParts
			if err := c.Call(ctx, "session/messages", map[string]any{"sessionID": ses.ID}, &msgs); err != nil {
				return err
			}
			if len(msgs) != messages {
				return fmt.Errorf("messages answered %d, want %d", len(msgs), messages)
			}
		}
	}
	// The last title written is c<me>-<n-1>.
	var got session.Session
	return c.Call(ctx, "session/update", map[string]any{"sessionID": ses.ID, "title": fmt.Sprintf("c%d-%d", me, n-1)}, &got)
}
