package session

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/store"
)

func (f *fixture) events(p EventsParams) []Event {
	f.t.Helper()
	evs, err := f.svc.Events(f.ctx, p)
	if err != nil {
		f.t.Fatalf("Events(%+v): %v", p, err)
	}
	return evs
}

func (f *fixture) messages(p MessagesParams) []MessageWithParts {
	f.t.Helper()
	ms, err := f.svc.Messages(f.ctx, p)
	if err != nil {
		f.t.Fatalf("Messages(%+v): %v", p, err)
	}
	return ms
}

func TestAppendEventRejectsBadEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{UserID: "alice"})
	// Every bad event also carries valid content and state, none of which
	// may be stored.
	valid := func(ev Event) Event {
		if ev.Content == nil {
			ev.Content = []Part{{Type: PartText, Text: "hello"}}
		}
		if ev.Actions == nil {
			ev.Actions = &EventActions{}
		}
		if ev.Actions.StateDelta == nil {
			ev.Actions.StateDelta = rawDelta(t, map[string]any{"app:a": 1, "user:u": 2, "s": 3})
		}
		return ev
	}
	tests := []struct {
		name      string
		sessionID string
		ev        Event
		field     string
	}{
		{"no author", s.ID, valid(Event{}), "event.author"},
		{"blank author", s.ID, valid(Event{Author: "  "}), "event.author"},
		{"empty branch segment", s.ID, valid(Event{Author: "user", Branch: "a..b"}), "event.branch"},
		{"leading dot", s.ID, valid(Event{Author: "user", Branch: ".a"}), "event.branch"},
		{"trailing dot", s.ID, valid(Event{Author: "user", Branch: "a."}), "event.branch"},
		{"unknown part type", s.ID, valid(Event{Author: "user", Content: []Part{{Type: "video"}}}), "event.content[0].type"},
		{"missing part type", s.ID, valid(Event{Author: "user", Content: []Part{{Text: "x"}}}), "event.content[0].type"},
		{"second part bad", s.ID, valid(Event{Author: "user", Content: []Part{{Type: PartText, Text: "ok"}, {Type: "nope"}}}), "event.content[1].type"},
		{"file part without path or url", s.ID, valid(Event{Author: "user", Content: []Part{{Type: PartFile}}}), "event.content[0].path"},
		{"tool part without tool", s.ID, valid(Event{Author: "bot", Content: []Part{{Type: PartTool}}}), "event.content[0].tool"},
		{"unknown state scope", s.ID, valid(Event{Author: "user", Actions: &EventActions{StateDelta: rawDelta(t, map[string]any{
			"app:a": 1, "user:u": 2, "s": 3, "foo:x": 4,
		})}}), "event.actions.stateDelta.foo:x"},
		{"empty state key name", s.ID, valid(Event{Author: "user", Actions: &EventActions{StateDelta: rawDelta(t, map[string]any{
			"app:a": 1, "app:": 2,
		})}}), "event.actions.stateDelta.app:"},
		{"no sessionID", "", valid(Event{Author: "user"}), "sessionID"},
	}
	for _, tt := range tests {
		_, err := f.svc.AppendEvent(f.ctx, AppendEventParams{SessionID: tt.sessionID, Event: tt.ev})
		t.Run(tt.name, func(t *testing.T) { wantParamErr(t, err, tt.field) })
	}
	absent := f.db.NewID(store.KindSession)
	_, err := f.svc.AppendEvent(f.ctx, AppendEventParams{SessionID: absent, Event: valid(Event{Author: "user"})})
	wantNotFound(t, err, "session", absent)

	// Nothing of any of them was stored: only the session and its
	// indexes and project exist.
	for _, k := range f.allKeys() {
		for _, p := range []string{"evt/", "msg/", "prt/", "sta/", "stu/", "sts/"} {
			if strings.HasPrefix(k, p) {
				t.Errorf("a rejected event left %q", k)
			}
		}
	}
	if got := f.get(s.ID); !jsonEqual(t, got, s) {
		t.Errorf("rejected events changed the session: %+v, was %+v", got, s)
	}
	if got := types(f.pub.since(1), ""); len(got) != 0 {
		t.Errorf("rejected events published %v", got)
	}
}

func TestAppendEventRecordsAMessage(t *testing.T) {
	t.Parallel()
	tests := []struct{ author, role string }{
		{"user", RoleUser},
		{"system", RoleSystem},
		{"assistant", RoleAssistant},
		{"planner", RoleAssistant},
		{"User", RoleAssistant}, // roles are exact
	}
	for _, tt := range tests {
		t.Run(tt.author, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			s := f.create(CreateParams{})
			mark := f.pub.len()
			in := Event{
				ID:           "evt_client_supplied",
				Author:       tt.author,
				InvocationID: "inv-1",
				Branch:       "root.sub",
				MessageID:    "msg_client_supplied",
				Content: []Part{
					{ID: "prt_client", Type: PartText, Text: "first"},
					{Type: PartReasoning, Text: "thinking"},
					{Type: PartFile, Path: "src/main.go", Mime: "text/x-go"},
					{Type: PartTool, Tool: "bash", CallID: "c1", State: &ToolState{Status: "completed", Output: "ok"}},
				},
				Metadata: map[string]any{"k": "v"},
			}
			ev := f.appendEvent(s.ID, in)

			if !store.ValidID(store.KindEvent, ev.ID) {
				t.Errorf("event ID = %q, want a fresh evt_ ID", ev.ID)
			}
			if ev.SessionID != s.ID || ev.Time == 0 || ev.Author != tt.author || ev.InvocationID != "inv-1" || ev.Branch != "root.sub" {
				t.Errorf("event = %+v", ev)
			}
			if !store.ValidID(store.KindMessage, ev.MessageID) {
				t.Fatalf("event.MessageID = %q, want a fresh msg_ ID", ev.MessageID)
			}
			if len(ev.Content) != len(in.Content) {
				t.Fatalf("event has %d parts, want %d", len(ev.Content), len(in.Content))
			}
			for i, p := range ev.Content {
				if !store.ValidID(store.KindPart, p.ID) || p.SessionID != s.ID || p.MessageID != ev.MessageID {
					t.Errorf("event part %d ids = %q/%q/%q", i, p.ID, p.SessionID, p.MessageID)
				}
				if p.Type != in.Content[i].Type || p.Text != in.Content[i].Text {
					t.Errorf("event part %d = %+v, want %+v", i, p, in.Content[i])
				}
			}

			m, err := f.svc.Message(f.ctx, MessageParams{SessionID: s.ID, MessageID: ev.MessageID})
			if err != nil {
				t.Fatal(err)
			}
			if m.Info.Role != tt.role || m.Info.EventID != ev.ID || m.Info.SessionID != s.ID || m.Info.Time.Created != ev.Time {
				t.Errorf("message info = %+v; want role %q, eventID %q", m.Info, tt.role, ev.ID)
			}
			if !jsonEqual(t, m.Parts, ev.Content) {
				t.Errorf("message parts = %+v\nwant the event's %+v", m.Parts, ev.Content)
			}
			if ms := f.messages(MessagesParams{SessionID: s.ID}); len(ms) != 1 || !jsonEqual(t, ms[0], m) {
				t.Errorf("Messages = %+v, want [%+v]", ms, m)
			}
			if evs := f.events(EventsParams{SessionID: s.ID}); len(evs) != 1 || !jsonEqual(t, evs[0], ev) {
				t.Errorf("Events = %+v, want [%+v]", evs, ev)
			}
			got := f.get(s.ID)
			if got.MessageCount != 1 || got.Version != s.Version+1 || got.Time.Updated < s.Time.Updated {
				t.Errorf("session after append: count %d, version %d (was %d)", got.MessageCount, got.Version, s.Version)
			}

			changes := f.pub.since(mark)
			want := []string{"message.updated", "part.updated", "part.updated", "part.updated", "part.updated", "session.updated"}
			if ty := types(changes, s.ID); !slices.Equal(ty, want) {
				t.Errorf("published %v, want %v", ty, want)
			}
			for _, c := range changes {
				if c.ProjectID != s.ProjectID || c.SessionID != s.ID {
					t.Errorf("change %s routed to project %q session %q", c.Type, c.ProjectID, c.SessionID)
				}
			}
		})
	}
}

func TestAppendEventWithoutContent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	mark := f.pub.len()
	ev := f.appendEvent(s.ID, Event{Author: "planner", Actions: &EventActions{TransferToAgent: "coder", Escalate: true}})
	if ev.MessageID != "" {
		t.Errorf("event without content has messageID %q", ev.MessageID)
	}
	got := f.get(s.ID)
	if got.MessageCount != 0 || got.Version != s.Version+1 {
		t.Errorf("count/version = %d/%d, want 0/%d", got.MessageCount, got.Version, s.Version+1)
	}
	if ms := f.messages(MessagesParams{SessionID: s.ID}); len(ms) != 0 {
		t.Errorf("an event without content made %d messages", len(ms))
	}
	evs := f.events(EventsParams{SessionID: s.ID})
	if len(evs) != 1 || evs[0].Actions == nil || evs[0].Actions.TransferToAgent != "coder" || !evs[0].Actions.Escalate {
		t.Errorf("Events = %+v", evs)
	}
	if ty := types(f.pub.since(mark), s.ID); !slices.Equal(ty, []string{"session.updated"}) {
		t.Errorf("published %v, want [session.updated]", ty)
	}
}

func TestAppendEventAppliesStateDelta(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{UserID: "alice"})
	peer := f.create(CreateParams{UserID: "alice"})
	stranger := f.create(CreateParams{UserID: "bob"})
	f.stateUpdate(s.ID, map[string]any{"gone": true, "app:gone": true})

	ev := f.appendEvent(s.ID, Event{
		Author:  "user",
		Content: []Part{{Type: PartText, Text: "set things"}},
		Actions: &EventActions{StateDelta: rawDelta(t, map[string]any{
			"app:theme":    "dark",
			"user:lang":    "fr",
			"count":        3,
			"session:mode": "fast",
			"temp:scratch": "never stored",
			"gone":         nil,
			"app:gone":     nil,
		})},
	})
	want := map[string]any{"app:theme": "dark", "user:lang": "fr", "count": 3.0, "mode": "fast"}
	if got := f.state(s.ID, ""); !jsonEqual(t, got, want) {
		t.Errorf("state after the event = %v, want %v", got, want)
	}
	if got, want := f.state(peer.ID, ""), map[string]any{"app:theme": "dark", "user:lang": "fr"}; !jsonEqual(t, got, want) {
		t.Errorf("state of the same user's other session = %v, want %v", got, want)
	}
	if got, want := f.state(stranger.ID, ""), map[string]any{"app:theme": "dark"}; !jsonEqual(t, got, want) {
		t.Errorf("state of another user's session = %v, want %v", got, want)
	}

	// The log keeps the durable delta, without temp: keys.
	evs := f.events(EventsParams{SessionID: s.ID})
	if len(evs) != 1 || evs[0].Actions == nil {
		t.Fatalf("Events = %+v", evs)
	}
	stored := evs[0].Actions.StateDelta
	if _, ok := stored["temp:scratch"]; ok {
		t.Error("the stored event keeps the temp: key")
	}
	for _, k := range []string{"app:theme", "user:lang", "count", "session:mode", "gone"} {
		if _, ok := stored[k]; !ok {
			t.Errorf("the stored event lost state key %q: %v", k, stored)
		}
	}
	if !jsonEqual(t, ev.Actions.StateDelta, stored) {
		t.Errorf("returned delta %s differs from stored %s", mustJSON(t, ev.Actions.StateDelta), mustJSON(t, stored))
	}
	for _, k := range f.allKeys() {
		if strings.Contains(k, "scratch") {
			t.Errorf("temp: key stored as %q", k)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEventsFilters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	base := time.UnixMilli(f.get(s.ID).Time.Created).Add(time.Second)
	type spec struct {
		name                    string
		author, agentID, branch string
	}
	specs := []spec{
		{"e0", "user", "", ""},
		{"e1", "planner", "planner", "a"},
		{"e2", "coder", "coder", "a.b"},
		{"e3", "coder", "coder2", "a.c"},
		{"e4", "user", "", "a.b.c"},
		{"e5", "reviewer", "reviewer", "ab"},
	}
	byName := map[string]Event{}
	times := map[string]int64{}
	for i, sp := range specs {
		at := base.Add(time.Duration(i) * 10 * time.Millisecond)
		f.setClock(at)
		ev := f.appendEvent(s.ID, Event{Author: sp.author, AgentID: sp.agentID, Branch: sp.branch})
		if ev.Time != at.UnixMilli() {
			t.Fatalf("event time = %d, want %d", ev.Time, at.UnixMilli())
		}
		byName[sp.name], times[sp.name] = ev, ev.Time
	}
	// Another session's events never show.
	other := f.create(CreateParams{})
	f.appendEvent(other.ID, Event{Author: "user"})

	tests := []struct {
		name string
		p    EventsParams
		want []string
	}{
		{"all, oldest first", EventsParams{}, []string{"e0", "e1", "e2", "e3", "e4", "e5"}},
		{"author", EventsParams{Author: "coder"}, []string{"e2", "e3"}},
		{"agentID", EventsParams{AgentID: "coder"}, []string{"e2"}},
		{"branch sees ancestors and no-branch", EventsParams{Branch: "a.b"}, []string{"e0", "e1", "e2"}},
		{"branch root", EventsParams{Branch: "a"}, []string{"e0", "e1"}},
		{"sibling branch", EventsParams{Branch: "a.c"}, []string{"e0", "e1", "e3"}},
		{"descendant sees all its ancestors", EventsParams{Branch: "a.b.c"}, []string{"e0", "e1", "e2", "e4"}},
		{"name prefix is not an ancestor", EventsParams{Branch: "ab"}, []string{"e0", "e5"}},
		{"unrelated branch", EventsParams{Branch: "z"}, []string{"e0"}},
		{"since and until inclusive", EventsParams{Since: times["e1"], Until: times["e3"]}, []string{"e1", "e2", "e3"}},
		{"since only", EventsParams{Since: times["e4"]}, []string{"e4", "e5"}},
		{"until only", EventsParams{Until: times["e1"]}, []string{"e0", "e1"}},
		{"since between events", EventsParams{Since: times["e2"] + 1}, []string{"e3", "e4", "e5"}},
		{"since == until", EventsParams{Since: times["e2"], Until: times["e2"]}, []string{"e2"}},
		{"limit", EventsParams{Limit: 2}, []string{"e0", "e1"}},
		{"offset", EventsParams{Offset: 4}, []string{"e4", "e5"}},
		{"limit and offset", EventsParams{Limit: 2, Offset: 1}, []string{"e1", "e2"}},
		{"offset past the end", EventsParams{Offset: 10}, []string{}},
		{"offset counts filtered events", EventsParams{Author: "user", Offset: 1}, []string{"e4"}},
		{"filter, since and limit", EventsParams{Branch: "a.b.c", Since: times["e1"], Limit: 2}, []string{"e1", "e2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.p.SessionID = s.ID
			evs, err := f.svc.Events(f.ctx, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]string, len(tt.want))
			for i, n := range tt.want {
				want[i] = byName[n].ID
			}
			if got := eventIDs(evs); !slices.Equal(got, want) {
				t.Errorf("Events(%+v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}

	bad := []struct {
		name  string
		p     EventsParams
		field string
	}{
		{"until before since", EventsParams{Since: times["e3"], Until: times["e1"]}, "until"},
		{"negative limit", EventsParams{Limit: -1}, "limit"},
		{"negative offset", EventsParams{Offset: -1}, "offset"},
	}
	for _, tt := range bad {
		tt.p.SessionID = s.ID
		_, err := f.svc.Events(f.ctx, tt.p)
		t.Run(tt.name, func(t *testing.T) { wantParamErr(t, err, tt.field) })
	}
	absent := f.db.NewID(store.KindSession)
	_, err := f.svc.Events(f.ctx, EventsParams{SessionID: absent})
	wantNotFound(t, err, "session", absent)
}

// An event's time comes from the service clock, its place in the log from
// its ID, made by another clock read. The two orders can disagree (appends
// racing across a millisecond boundary, the clock read twice), and until
// must still return every event whose time is within bounds instead of
// stopping at the first later one. The service clock is stepped back here
// to produce such a log deterministically.
func TestEventsUntilDoesNotAssumeLogIsInTimeOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	t0 := time.UnixMilli(s.Time.Created).Add(time.Minute)
	f.setClock(t0)
	first := f.appendEvent(s.ID, Event{Author: "user"})
	f.setClock(t0.Add(-30 * time.Second))
	second := f.appendEvent(s.ID, Event{Author: "user"})

	got := f.events(EventsParams{SessionID: s.ID, Until: t0.Add(-10 * time.Second).UnixMilli()})
	if want := []string{second.ID}; !slices.Equal(eventIDs(got), want) {
		t.Errorf("Events(until %d) = %v, want %v (event times %d, %d)", t0.Add(-10*time.Second).UnixMilli(), eventIDs(got), want, first.Time, second.Time)
	}
}

func TestMessagesPaging(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	other := f.create(CreateParams{})
	var all []string
	for i := range 6 {
		author := "user"
		if i%2 == 1 {
			author = "assistant"
		}
		all = append(all, f.appendEvent(s.ID, Event{Author: author, Content: []Part{
			{Type: PartText, Text: "a"}, {Type: PartText, Text: "b"},
		}}).MessageID)
		f.appendEvent(other.ID, textEvent("user", "elsewhere"))
	}
	tests := []struct {
		name string
		p    MessagesParams
		want []string
	}{
		{"all, oldest first", MessagesParams{}, all},
		{"limit", MessagesParams{Limit: 4}, all[:4]},
		{"offset", MessagesParams{Offset: 4}, all[4:]},
		{"limit and offset", MessagesParams{Limit: 2, Offset: 1}, all[1:3]},
		{"cursor", MessagesParams{Cursor: all[2]}, all[3:]},
		{"cursor and limit", MessagesParams{Cursor: all[0], Limit: 2}, all[1:3]},
		{"cursor and offset", MessagesParams{Cursor: all[0], Offset: 1, Limit: 1}, all[2:3]},
		{"cursor at the last", MessagesParams{Cursor: all[5]}, []string{}},
		{"offset past the end", MessagesParams{Offset: 6}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.p.SessionID = s.ID
			ms, err := f.svc.Messages(f.ctx, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if got := messageIDs(ms); !slices.Equal(got, tt.want) {
				t.Errorf("Messages(%+v) = %q, want %q", tt.p, got, tt.want)
			}
			for _, m := range ms {
				if len(m.Parts) != 2 || m.Parts[0].Text != "a" || m.Parts[1].Text != "b" {
					t.Errorf("message %s parts = %+v, want a, b in order", m.Info.ID, m.Parts)
				}
			}
		})
	}
	// Paging with the cursor walks every message once.
	var walked []string
	cursor := ""
	for range 10 {
		page := f.messages(MessagesParams{SessionID: s.ID, Cursor: cursor, Limit: 4})
		if len(page) == 0 {
			break
		}
		walked = append(walked, messageIDs(page)...)
		cursor = page[len(page)-1].Info.ID
	}
	if !slices.Equal(walked, all) {
		t.Errorf("cursor walk = %q, want %q", walked, all)
	}

	bad := []struct {
		name  string
		p     MessagesParams
		field string
	}{
		{"negative limit", MessagesParams{Limit: -1}, "limit"},
		{"negative offset", MessagesParams{Offset: -1}, "offset"},
		{"garbage cursor", MessagesParams{Cursor: "x"}, "cursor"},
		{"session ID as cursor", MessagesParams{Cursor: s.ID}, "cursor"},
	}
	for _, tt := range bad {
		tt.p.SessionID = s.ID
		_, err := f.svc.Messages(f.ctx, tt.p)
		t.Run(tt.name, func(t *testing.T) { wantParamErr(t, err, tt.field) })
	}
	absent := f.db.NewID(store.KindSession)
	_, err := f.svc.Messages(f.ctx, MessagesParams{SessionID: absent})
	wantNotFound(t, err, "session", absent)
}

func TestMessageNotFound(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	other := f.create(CreateParams{})
	theirs := f.appendEvent(other.ID, textEvent("user", "hi")).MessageID

	absent := f.db.NewID(store.KindMessage)
	_, err := f.svc.Message(f.ctx, MessageParams{SessionID: s.ID, MessageID: absent})
	wantNotFound(t, err, "message", absent)
	// A message of another session is not found under this one.
	_, err = f.svc.Message(f.ctx, MessageParams{SessionID: s.ID, MessageID: theirs})
	wantNotFound(t, err, "message", theirs)
	_, err = f.svc.Message(f.ctx, MessageParams{SessionID: s.ID})
	wantParamErr(t, err, "messageID")
	absentSes := f.db.NewID(store.KindSession)
	_, err = f.svc.Message(f.ctx, MessageParams{SessionID: absentSes, MessageID: theirs})
	wantNotFound(t, err, "session", absentSes)
}
