package session

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/session/provider"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
	"github.com/sessiond/sessiond/session/tools"
)

// toolPart returns the message's only part calling tool.
func toolPart(t *testing.T, m MessageWithParts, tool string) Part {
	t.Helper()
	var found []Part
	for _, p := range m.Parts {
		if p.Type == PartTool && p.Tool == tool {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s parts in %v", len(found), tool, partsOf(m))
	}
	return found[0]
}

func (f *agentFixture) children(id string) []Session {
	f.t.Helper()
	cs, err := f.svc.Children(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return cs
}

func (f *agentFixture) usage(id string) UsageResult {
	f.t.Helper()
	u, err := f.svc.Usage(f.ctx, UsageParams{SessionID: id})
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

// TestTaskRunsChildSession: the parent's model calls task; a child
// session (parentID, depth 1, the parent's directory, model and
// permission rules, the description as title) runs the prompt as its own
// turn with its own messages, events, snapshots and usage; its answer and
// ID come back as the task part's output, and the parent's model gets
// them as the tool result.
func TestTaskRunsChildSession(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t,
		// The parent delegates; the child reads and writes, then answers;
		// the parent finishes.
		pt.Reply(pt.Text("Delegating."), pt.Tool("t1", "task", `{"description":"Find the answer","prompt":"What does a.txt say? Note it in b.txt."}`),
			pt.Tokens(pt.Usage{Input: 100, Output: 10}), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("Reading."), pt.Tool("r1", "read", `{"path":"a.txt"}`), pt.Tool("w1", "write", `{"path":"b.txt","content":"forty-two\n"}`),
			pt.Tokens(pt.Usage{Input: 20, Output: 2}), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("a.txt says forty-two."), pt.Tokens(pt.Usage{Input: 30, Output: 3}), pt.Finish("stop")),
		pt.Reply(pt.Text("The answer is 42."), pt.Tokens(pt.Usage{Input: 200, Output: 20}), pt.Finish("stop")),
	)
	f := newAgentFixture(t, serverLoader(t, srv, provider.TypeOpenAI, "gpt-4o-mini"))
	f.write("a.txt", "forty-two\n")
	perm := json.RawMessage(`{"bash":"deny"}`)
	model := &ModelRef{ProviderID: "fake", ModelID: "gpt-4o"} // not the configured default
	parent := f.create(CreateParams{Model: model, Permission: perm, UserID: "u1"})
	n := f.pub.len()
	m := f.prompt(parent.ID, "What does a.txt say?")

	// The child session.
	cs := f.children(parent.ID)
	if len(cs) != 1 {
		t.Fatalf("%d children, want 1", len(cs))
	}
	child := cs[0]
	if child.ParentID != parent.ID || child.RootID != parent.ID || child.Depth != 1 || child.Directory != parent.Directory ||
		child.ProjectID != parent.ProjectID || child.Title != "Find the answer" || child.Agent != tools.AgentBuild ||
		child.Model == nil || *child.Model != *model || string(child.Permission) != string(perm) || child.UserID != "u1" {
		t.Errorf("child session = %+v", child)
	}
	if st := f.status(child.ID); st.State != "idle" {
		t.Errorf("child status = %+v", st)
	}

	// The parent's task part carries the child's final answer and ID.
	task := toolPart(t, m, "task")
	if task.State.Status != ToolCompleted {
		t.Fatalf("task part = %+v", task.State)
	}
	if want := "a.txt says forty-two.\n\n(session " + child.ID + ")"; task.State.Output != want {
		t.Errorf("task output = %q, want %q", task.State.Output, want)
	}
	if task.State.Title != "Find the answer" || task.Metadata["agent"] != tools.AgentBuild {
		t.Errorf("task part title %q, metadata %v", task.State.Title, task.Metadata)
	}
	// What the child wrote is the parent step's change too.
	if got := f.read("b.txt"); got != "forty-two\n" {
		t.Errorf("b.txt = %q", got)
	}
	var parentPatched bool
	for _, p := range m.Parts {
		parentPatched = parentPatched || p.Type == PartPatch && slices.Equal(p.Files, []string{"b.txt"})
	}
	if !parentPatched {
		t.Errorf("the parent's parts record no patch of b.txt: %v", partsOf(m))
	}

	// Each session has its own messages.
	pm := f.messages(parent.ID)
	if len(pm) != 2 || pm[1].Info.ID != m.Info.ID || finalText(m) != "The answer is 42." {
		t.Errorf("parent messages = %v", partsOfAll(pm))
	}
	cm := f.messages(child.ID)
	if len(cm) != 2 || cm[0].Info.Role != RoleUser || cm[0].Parts[0].Text != "What does a.txt say? Note it in b.txt." {
		t.Fatalf("child messages = %v", partsOfAll(cm))
	}
	ca := cm[1]
	want := []string{
		PartStepStart, PartText, "tool:read:completed", "tool:write:completed", PartPatch, PartStepFinish,
		PartStepStart, PartText, PartStepFinish, PartPatch,
	}
	if got := partsOf(ca); !slices.Equal(got, want) {
		t.Errorf("child assistant parts = %v, want %v", got, want)
	}
	if ca.Info.Model == nil || *ca.Info.Model != *model || ca.Info.Agent != tools.AgentBuild || ca.Info.Snapshot == nil || ca.Info.Error != nil {
		t.Errorf("child assistant message = %+v", ca.Info)
	}
	if got := f.get(child.ID).MessageCount; got != 2 {
		t.Errorf("child messageCount = %d", got)
	}

	// Usage adds up per session.
	pu, cu := f.usage(parent.ID), f.usage(child.ID)
	if pu.Input != 300 || pu.Output != 30 || pu.ByModel["fake/gpt-4o"].TotalTokens != 330 {
		t.Errorf("parent usage = %+v", pu)
	}
	if cu.Input != 50 || cu.Output != 5 || cu.ByModel["fake/gpt-4o"].TotalTokens != 55 {
		t.Errorf("child usage = %+v", cu)
	}
	if ca.Info.Tokens == nil || ca.Info.Tokens.Input != 50 || m.Info.Tokens == nil || m.Info.Tokens.Input != 300 {
		t.Errorf("message tokens: child %+v, parent %+v", ca.Info.Tokens, m.Info.Tokens)
	}

	// The child's turn was streamed as events of its own session.
	evs := types(f.pub.since(n), child.ID)
	for _, typ := range []string{"session.created", "message.updated", "part.updated", "session.status"} {
		if !slices.Contains(evs, typ) {
			t.Errorf("no %s event for the child; its events: %v", typ, evs)
		}
	}

	// What the models were sent: the child sees only its prompt, with the
	// parent's model; the parent gets the child's answer.
	reqs := srv.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d model calls, want 4", len(reqs))
	}
	for i, r := range reqs {
		if r.JSON["model"] != "gpt-4o" {
			t.Errorf("request %d model = %v", i, r.JSON["model"])
		}
	}
	if body := string(reqs[1].Body); !strings.Contains(body, "Note it in b.txt.") || strings.Contains(body, "Delegating.") {
		t.Errorf("the child's first request: %s", body)
	}
	if body := string(reqs[3].Body); !strings.Contains(body, "a.txt says forty-two.") || !strings.Contains(body, child.ID) {
		t.Errorf("the parent's last request lacks the child's answer: %s", body)
	}
}

// TestTaskPlanAgent: a task for the plan agent runs a plan child with
// the read-only tools; a child's answer spread over text parts of its
// last step comes back whole.
func TestTaskPlanAgent(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t,
		pt.Reply(pt.Tool("t1", "task", `{"description":"Look","prompt":"look around","agent":"plan"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("Nothing to see."), pt.Finish("stop")),
		pt.Reply(pt.Text("ok"), pt.Finish("stop")),
	)
	f := newAgentFixture(t, serverLoader(t, srv, provider.TypeOpenAI, "gpt-4o-mini"))
	parent := f.create(CreateParams{})
	m := f.prompt(parent.ID, "go")
	cs := f.children(parent.ID)
	if len(cs) != 1 || cs[0].Agent != tools.AgentPlan || cs[0].Model == nil || cs[0].Model.ModelID != "gpt-4o-mini" {
		t.Fatalf("children = %+v", cs)
	}
	task := toolPart(t, m, "task")
	if task.State.Status != ToolCompleted || !strings.HasPrefix(task.State.Output, "Nothing to see.\n\n(session "+cs[0].ID) ||
		task.Metadata["agent"] != tools.AgentPlan {
		t.Errorf("task part = %+v %v", task.State, task.Metadata)
	}
	req := srv.Requests()[1]
	tls, _ := req.JSON["tools"].([]any)
	plan, _ := tools.ForAgent(tools.AgentPlan)
	if len(tls) != len(plan) || !strings.Contains(string(req.Body), "plan agent") {
		t.Errorf("the plan child was offered %d tools (want %d); body %s", len(tls), len(plan), req.Body)
	}
}

// TestTaskDepthLimit: a session at MaxTaskDepth cannot start a subtask:
// the model gets an error that says why, and no child is made.
func TestTaskDepthLimit(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t,
		pt.Reply(pt.Tool("t1", "task", `{"description":"Deeper","prompt":"go deeper"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("I will do it myself."), pt.Finish("stop")),
	)
	f := newAgentFixture(t, serverLoader(t, srv, provider.TypeOpenAI, "gpt-4o-mini"))
	ses := f.create(CreateParams{})
	for ses.Depth < MaxTaskDepth {
		ses = f.create(CreateParams{ParentID: ses.ID})
	}
	m := f.prompt(ses.ID, "go")
	task := toolPart(t, m, "task")
	if task.State.Status != ToolError || !strings.Contains(task.State.Error, "at most 3 deep") ||
		!strings.Contains(task.State.Error, "depth 3") {
		t.Errorf("task part = %+v", task.State)
	}
	if cs := f.children(ses.ID); len(cs) != 0 {
		t.Errorf("a child was made past the limit: %+v", cs)
	}
	if body := string(srv.Requests()[1].Body); !strings.Contains(body, "at most 3 deep") {
		t.Errorf("the model was not told: %s", body)
	}

	// The runner refuses unknown agents and empty prompts itself, before
	// making a child.
	r := &taskRunner{s: f.svc, parent: f.get(ses.ParentID)}
	if _, err := r.Run(f.ctx, tools.TaskRequest{Description: "x", Prompt: "x", Agent: "nope"}); err == nil || !strings.Contains(err.Error(), `unknown agent "nope"`) {
		t.Errorf("unknown agent: %v", err)
	}
	if _, err := r.Run(f.ctx, tools.TaskRequest{Description: "x", Prompt: " "}); err == nil {
		t.Error("an empty prompt ran")
	}
	if cs := f.children(ses.ParentID); len(cs) != 1 {
		t.Errorf("children = %+v", cs)
	}
}

// TestTaskAbortPropagates: aborting the parent's turn, by session/abort
// or by cancelling its prompt, aborts the child's running turn, which is
// recorded as aborted before the parent's prompt returns.
func TestTaskAbortPropagates(t *testing.T) {
	for _, how := range []string{"abort", "cancel"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			srv := pt.NewOpenAI(t,
				pt.Reply(pt.Tool("t1", "task", `{"description":"Slow","prompt":"take forever"}`), pt.Finish("tool_calls")),
				pt.Reply(pt.Text("thinking about it"), pt.Hang()),
			)
			f := newAgentFixture(t, serverLoader(t, srv, provider.TypeOpenAI, "gpt-4o-mini"))
			parent := f.create(CreateParams{})
			ctx, cancel := context.WithCancel(f.ctx)
			defer cancel()
			a := f.promptAsync(ctx, PromptParams{SessionID: parent.ID, Parts: []PromptPart{{Type: PartText, Text: "go"}}})
			var child Session
			waitFor(t, "the child's model call", func() bool {
				cs := f.children(parent.ID)
				if len(cs) != 1 || len(srv.Requests()) < 2 {
					return false
				}
				child = cs[0]
				return f.status(child.ID).State == "busy"
			})

			var ae *AbortedError
			if how == "abort" {
				res, err := f.svc.Abort(f.ctx, AbortParams{SessionID: parent.ID})
				if err != nil || !res.Aborted {
					t.Fatalf("abort = %+v, %v", res, err)
				}
				if _, err := a.wait(t); !errors.As(err, &ae) {
					t.Fatalf("parent prompt err = %v", err)
				}
			} else {
				cancel()
				if _, err := a.wait(t); !errors.Is(err, context.Canceled) {
					t.Fatalf("parent prompt err = %v", err)
				}
				waitFor(t, "the parent to stop", func() bool { return f.status(parent.ID).State == "idle" })
			}
			// The child's turn is recorded, aborted, by then.
			if st := f.status(child.ID); st.State != "idle" {
				t.Errorf("child status = %+v", st)
			}
			cm := f.messages(child.ID)
			if len(cm) != 2 {
				t.Fatalf("child messages = %v", partsOfAll(cm))
			}
			ci := cm[1].Info
			if ci.Error == nil || ci.Error.Kind != ErrorKindAborted || !strings.Contains(ci.Error.Message, "parent session") || ci.Time.Completed == 0 {
				t.Errorf("child message = %+v", ci)
			}
			pm := f.messages(parent.ID)
			if len(pm) != 2 {
				t.Fatalf("parent messages = %v", partsOfAll(pm))
			}
			task := toolPart(t, pm[1], "task")
			if task.State.Status != ToolError || !strings.Contains(task.State.Error, "abort") || task.Metadata["aborted"] != true {
				t.Errorf("task part = %+v %v", task.State, task.Metadata)
			}
			if pm[1].Info.Error == nil || pm[1].Info.Error.Kind != ErrorKindAborted {
				t.Errorf("parent message = %+v", pm[1].Info)
			}
		})
	}
}
