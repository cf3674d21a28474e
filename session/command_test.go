package session

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/provider/builtin"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
)

// userLoader loads providers as configLoader does, from a user config dir
// the test chose (so it can put command templates in it), writing cfg as
// its config.json when cfg is not nil.
func userLoader(t *testing.T, dir string, cfg map[string]any) ProviderLoader {
	t.Helper()
	if cfg != nil {
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "sessiond", "config.json"), string(b))
	}
	return func(projectDir string) (*provider.Registry, error) {
		c, err := provider.Load(provider.LoadOptions{ProjectDir: projectDir, UserConfigDir: dir, Getenv: func(string) string { return "" }})
		if err != nil {
			return nil, err
		}
		return builtin.NewRegistry(c, provider.RegistryOptions{}), nil
	}
}

// fakeModelConfig points provider "fake" at a providertest OpenAI server.
func fakeModelConfig(srv *pt.Server) map[string]any {
	return map[string]any{
		"model": "fake/gpt-4o-mini",
		"providers": map[string]any{"fake": map[string]any{
			"type": provider.TypeOpenAI, "baseURL": srv.URL, "apiKey": pt.APIKey,
		}},
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func commandNames(cs []CommandInfo) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

func paramField(t *testing.T, err error) (string, string) {
	t.Helper()
	var pe *ParamError
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v (%T), want a *ParamError", err, err)
	}
	return pe.Field, pe.Error()
}

// TestCommandDiscoveryOverrideSubstitution: templates come from the
// workspace and the user config dir, a workspace template hides the
// user's of the same name, front matter picks the agent and model, a
// template cannot replace a built-in, broken files are reported, and a
// command's text with $ARGUMENTS and $1..$n substituted runs as a
// prompt turn.
func TestCommandDiscoveryOverrideSubstitution(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t,
		pt.Reply(pt.Text("Hello to both."), pt.Finish("stop")),
		pt.Reply(pt.Text("Reviewed."), pt.Finish("stop")),
	)
	user := t.TempDir()
	f := newAgentFixture(t, userLoader(t, user, fakeModelConfig(srv)))
	userCmds := filepath.Join(user, "sessiond", "commands")
	writeFile(t, filepath.Join(userCmds, "hello.md"), "---\ndescription: \"Greet two people\" # a comment\nargument-hint: <first> <second>\n---\nSay hello to $1 and $2. All: $ARGUMENTS ($3 is empty)\n")
	writeFile(t, filepath.Join(userCmds, "review.md"), "---\ndescription: User review\n---\nReview as the user likes it.\n")
	writeFile(t, filepath.Join(userCmds, "init.md"), "Not the built-in.\n")
	writeFile(t, filepath.Join(userCmds, "broken.md"), "---\ndescription: never closed\nDo it.\n")
	writeFile(t, filepath.Join(userCmds, "notes.txt"), "not a command\n")
	f.write(".sessiond/commands/review.md", "---\r\ndescription: 'Workspace review: it''s stricter'\r\nagent: plan\r\nmodel: fake/gpt-4o\r\nallowed-tools:\r\n  - read\r\n---\r\n# Review\r\nReview the change carefully.\r\n")
	ses := f.create(CreateParams{})

	list, err := f.svc.Commands(f.ctx, CommandsParams{SessionID: ses.ID})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := commandNames(list.Commands), []string{"init", "summarize", "compact", "clear", "hello", "review"}; !slices.Equal(got, want) {
		t.Fatalf("commands = %v, want %v", got, want)
	}
	hello, review := list.Commands[4], list.Commands[5]
	if hello.Source != CommandSourceUser || hello.Description != "Greet two people" || hello.ArgumentHint != "<first> <second>" ||
		!slices.Equal(hello.Placeholders, []string{"$ARGUMENTS", "$1", "$2", "$3"}) || hello.Path != filepath.Join(userCmds, "hello.md") {
		t.Errorf("hello = %+v", hello)
	}
	if review.Source != CommandSourceWorkspace || review.Description != "Workspace review: it's stricter" || review.Agent != "plan" ||
		review.Model == nil || *review.Model != (ModelRef{ProviderID: "fake", ModelID: "gpt-4o"}) ||
		review.Overrides != filepath.Join(userCmds, "review.md") || review.Path != filepath.Join(f.ws, ".sessiond", "commands", "review.md") {
		t.Errorf("review = %+v", review)
	}
	var problems []string
	for _, p := range list.Problems {
		problems = append(problems, filepath.Base(p.Path)+": "+p.Message)
	}
	slices.Sort(problems)
	if len(problems) != 2 || !strings.Contains(problems[0], "broken.md: ") || !strings.Contains(problems[0], "closing") ||
		!strings.Contains(problems[1], "init.md: ") || !strings.Contains(problems[1], "built-in") {
		t.Errorf("problems = %q", problems)
	}

	// $1, $2 and $ARGUMENTS; quotes group words; a missing $3 is empty.
	res, err := f.svc.Command(f.ctx, CommandParams{SessionID: ses.ID, Name: "/hello", Args: args(t, `"Ann 'Bob Smith'"`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Name != "hello" || res.Source != CommandSourceUser || res.Message == nil || res.Message.Info.Role != RoleAssistant {
		t.Fatalf("result = %+v", res)
	}
	msgs := f.messages(ses.ID)
	want := "Say hello to Ann and Bob Smith. All: Ann 'Bob Smith' ( is empty)"
	if len(msgs) != 2 || msgs[0].Parts[0].Text != want {
		t.Fatalf("prompt = %q, want %q", msgs[0].Parts[0].Text, want)
	}
	if body := string(srv.Requests()[0].Body); !strings.Contains(body, "Say hello to Ann and Bob Smith.") {
		t.Errorf("the model was not sent the expanded template: %s", body)
	}

	// The workspace's review wins; with no placeholder the arguments
	// (an array here) are appended; front matter picks agent and model.
	res, err = f.svc.Command(f.ctx, CommandParams{SessionID: ses.ID, Name: "review", Args: args(t, `["a.go", "b c.go"]`)})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Message
	if res.Source != CommandSourceWorkspace || m.Info.Agent != "plan" || m.Info.Model == nil || m.Info.Model.ModelID != "gpt-4o" {
		t.Errorf("review ran as %+v (agent %q, model %+v)", res, m.Info.Agent, m.Info.Model)
	}
	msgs = f.messages(ses.ID)
	if got := msgs[2].Parts[0].Text; got != "# Review\nReview the change carefully.\n\na.go b c.go" {
		t.Errorf("review prompt = %q", got)
	}
	if req := srv.Requests()[1].JSON; req["model"] != "gpt-4o" {
		t.Errorf("review called model %v", req["model"])
	}
}

func args(t *testing.T, js string) CommandArgs {
	t.Helper()
	var a CommandArgs
	if err := json.Unmarshal([]byte(js), &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestCommandUnknownListsAvailable: an unknown command is InvalidParams
// on name, listing every command; a template needs a model, and without
// one the prompt is refused with NoProvider and nothing is stored.
func TestCommandUnknownListsAvailable(t *testing.T) {
	t.Parallel()
	user := t.TempDir()
	f := newAgentFixture(t, userLoader(t, user, nil))
	writeFile(t, filepath.Join(user, "sessiond", "commands", "deploy.md"), "Deploy $1.\n")
	f.write(".sessiond/commands/bad name.md", "x\n")
	ses := f.create(CreateParams{})

	_, err := f.svc.Command(f.ctx, CommandParams{SessionID: ses.ID, Name: "nope"})
	field, msg := paramField(t, err)
	if field != "name" || !strings.Contains(msg, `unknown command "nope"`) || !strings.Contains(msg, "init, summarize, compact, clear, deploy") {
		t.Errorf("unknown command: field %q, message %q", field, msg)
	}
	_, err = f.svc.Command(f.ctx, CommandParams{SessionID: ses.ID, Name: "bad name"})
	if _, msg := paramField(t, err); !strings.Contains(msg, "bad name.md cannot be used") {
		t.Errorf("a command whose file is broken: %q", msg)
	}
	if _, err := f.svc.Command(f.ctx, CommandParams{SessionID: ses.ID}); err == nil {
		t.Error("a command with no name ran")
	}

	_, err = f.svc.Command(f.ctx, CommandParams{SessionID: ses.ID, Name: "deploy", Args: args(t, `"prod"`)})
	var npe *provider.NoProviderError
	if !errors.As(err, &npe) {
		t.Fatalf("a template without a model: %v (%T), want NoProviderError", err, err)
	}
	if ms := f.messages(ses.ID); len(ms) != 0 {
		t.Errorf("a refused command stored %d messages", len(ms))
	}
	if _, err := f.svc.Command(f.ctx, CommandParams{SessionID: "ses_missing", Name: "init"}); err == nil {
		t.Error("a command on a missing session ran")
	}
}

// TestCommandContextBuiltins: /clear and /compact are session/clear and
// session/compact; /compact's arguments say what the summary focuses on.
func TestCommandContextBuiltins(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t, pt.Reply(pt.Text("The journal work so far."), pt.Finish("stop")))
	f := newAgentFixture(t, userLoader(t, t.TempDir(), fakeModelConfig(srv)))
	ses := f.create(CreateParams{})
	f.say(ses.ID, "user", "fix the journal")
	f.say(ses.ID, "build", "the journal is fixed")

	res, err := f.svc.Command(f.ctx, CommandParams{SessionID: ses.ID, Name: "compact", Args: args(t, `"focus on the journal"`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Compact == nil || !res.Compact.Compacted || res.Session != nil || res.Message != nil {
		t.Fatalf("compact = %+v", res)
	}
	if body := string(srv.Requests()[0].Body); !strings.Contains(body, "focus on the journal") {
		t.Errorf("the compaction request lacks the instructions: %s", body)
	}

	if _, err := f.svc.Command(f.ctx, CommandParams{SessionID: ses.ID, Name: "clear", Args: args(t, `"x"`)}); err == nil {
		t.Error("clear took arguments")
	}
	res, err = f.svc.Command(f.ctx, CommandParams{SessionID: ses.ID, Name: "/clear"})
	if err != nil || res.Session == nil || res.Session.ID != ses.ID {
		t.Fatalf("clear = %+v, %v", res, err)
	}
	ms := f.messages(ses.ID)
	last := ms[len(ms)-1]
	if last.Info.Role != RoleSystem || len(last.Parts) == 0 || last.Parts[0].Type != PartCompaction {
		t.Errorf("clear left no marker: %v", partsOfAll(ms))
	}
}

func TestExpandTemplate(t *testing.T) {
	t.Parallel()
	ten := CommandArgs{Raw: "1 2 3 4 5 6 7 8 9 ten", List: strings.Fields("1 2 3 4 5 6 7 8 9 ten")}
	for _, c := range []struct {
		tmpl string
		args CommandArgs
		want string
	}{
		{"Fix $ARGUMENTS now", CommandArgs{Raw: "the  bug", List: []string{"the", "bug"}}, "Fix the  bug now"},
		{"$2-$1-$3", CommandArgs{Raw: "a b", List: []string{"a", "b"}}, "b-a-"},
		{"tenth: $10, first: $1", ten, "tenth: ten, first: 1"},
		{"costs $ and $x and $0 and $", CommandArgs{}, "costs $ and $x and $0 and $"},
		{"No placeholder.\n", CommandArgs{Raw: "extra words", List: []string{"extra", "words"}}, "No placeholder.\n\nextra words"},
		{"No placeholder.", CommandArgs{}, "No placeholder."},
		{"$ARGUMENTS$1", CommandArgs{Raw: "x", List: []string{"x"}}, "xx"},
		{"héllo $1 ✓", CommandArgs{Raw: "wörld", List: []string{"wörld"}}, "héllo wörld ✓"},
	} {
		if got := expandTemplate(c.tmpl, c.args); got != c.want {
			t.Errorf("expandTemplate(%q, %q) = %q, want %q", c.tmpl, c.args.Raw, got, c.want)
		}
	}
	for in, want := range map[string][]string{
		`a  b	c`:              {"a", "b", "c"},
		`"a b" 'c d' e`:       {"a b", "c d", "e"},
		`x="y z" ''`:          {"x=y z", ""},
		`"say \"hi\"" it's`:   {`say "hi"`, "its"},
		``:                    nil,
		`  lead and trail   `: {"lead", "and", "trail"},
		`"unterminated quote`: {"unterminated quote"},
		`back\slash "a\\b"`:   {`back\slash`, `a\b`},
	} {
		if got := splitArgs(in); !slices.Equal(got, want) {
			t.Errorf("splitArgs(%q) = %q, want %q", in, got, want)
		}
	}
	var p CommandParams
	if err := json.Unmarshal([]byte(`{"name":"x","args":3}`), &p); err == nil {
		t.Error("args: 3 was accepted")
	}
	if err := json.Unmarshal([]byte(`{"name":"x","args":null}`), &p); err != nil || p.Args.Raw != "" {
		t.Errorf("args: null = %+v, %v", p.Args, err)
	}
	if err := json.Unmarshal([]byte(`{"name":"x","args":[1]}`), &p); err == nil {
		t.Error("args: [1] was accepted")
	}
}

func TestParseCommandFrontMatter(t *testing.T) {
	t.Parallel()
	c, err := parseCommand("x", []byte("\ufeff---\n# comment\ndescription: plain text # trailing\nmodel: \"openrouter/anthropic/claude-sonnet-4.5\"\nextra:\n  nested: ignored\ntags:\n  - a\n---\n\nBody $1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Description != "plain text" || c.Model == nil || c.Model.ProviderID != "openrouter" || c.Model.ModelID != "anthropic/claude-sonnet-4.5" || c.template != "Body $1" {
		t.Errorf("parsed %+v", c)
	}
	c, err = parseCommand("x", []byte("## Heading line\nmore\n"))
	if err != nil || c.Description != "Heading line" || c.template != "## Heading line\nmore" {
		t.Errorf("no front matter: %+v, %v", c, err)
	}
	for name, src := range map[string]string{
		"block value":     "---\ndescription: |\n  long\n---\nx",
		"bad model":       "---\nmodel: nomodel\n---\nx",
		"bad agent":       "---\nagent: wizard\n---\nx",
		"not key value":   "---\njust words\n---\nx",
		"unclosed quote":  "---\ndescription: \"open\n---\nx",
		"empty template":  "---\ndescription: d\n---\n\n",
		"not closed":      "---\ndescription: d\n",
		"binary":          "\xff\xfe",
		"unclosed single": "---\ndescription: 'open\n---\nx",
	} {
		if _, err := parseCommand("x", []byte(src)); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}
