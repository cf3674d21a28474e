package e2e

// Commands (session/shell turns, the agent's bash tool) get the daemon's
// environment without its secrets: model keys, the variables the config
// names, cloud and forge tokens, anything named like a secret, and
// sessiond's own variables. shell.env.passthrough in the user's config
// keeps names anyway; shell.env.deny removes more. A project's config may
// deny but never pass a secret through.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/session/provider"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
)

// envSecrets are set in the daemon's environment; no command may see
// their values unless a user passes them through.
var envSecrets = map[string]string{
	"OPENAI_API_KEY":        "sk-openai-e2e-secret",
	"ANTHROPIC_API_KEY":     "sk-ant-e2e-secret",
	"GITHUB_TOKEN":          "ghp-e2e-secret",
	"AWS_SECRET_ACCESS_KEY": "aws-e2e-secret",
	"WORK_LLM":              "work-e2e-secret", // named by apiKeyEnv in the user config
	"STRIPE_API_KEY":        "stripe-e2e-secret",
	"DB_PASSWORD":           "db-e2e-secret",
	"SESSIOND_E2E_INTERNAL": "sessiond-e2e-secret",
}

// envPlain are ordinary variables commands keep.
var envPlain = map[string]string{
	"E2E_PLAIN": "plain-e2e-visible",
	"E2E_OTHER": "other-e2e-visible",
}

func envDaemonEnv() []string {
	var env []string
	for _, m := range []map[string]string{envSecrets, envPlain} {
		for k, v := range m {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// envUserConfig writes the user config of sandbox s: a provider whose key
// is in WORK_LLM, plus extra top-level keys.
func envUserConfig(t *testing.T, s *sandbox, extra map[string]any) {
	t.Helper()
	cfg := map[string]any{"providers": map[string]any{"work": map[string]any{"type": "anthropic", "apiKeyEnv": "WORK_LLM"}}}
	for k, v := range extra {
		cfg[k] = v
	}
	dir := filepath.Join(s.base, "home", ".config", "sessiond")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(mustJSON(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// envCheck says which values of output break the rule: secrets shown
// (other than the kept ones), plain variables missing (other than the
// denied ones).
func envCheck(t *testing.T, what, output string, kept, denied []string) {
	t.Helper()
	var bad []string
	for k, v := range envSecrets {
		if got, want := strings.Contains(output, v), slices.Contains(kept, k); got != want {
			bad = append(bad, fmt.Sprintf("%s shown = %v, want %v", k, got, want))
		}
	}
	for k, v := range envPlain {
		if got, want := strings.Contains(output, v), !slices.Contains(denied, k); got != want {
			bad = append(bad, fmt.Sprintf("%s shown = %v, want %v", k, got, want))
		}
	}
	if !strings.Contains(output, "PATH=/") {
		bad = append(bad, "PATH is missing")
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		t.Errorf("%s:\n  %s\noutput:\n%s", what, strings.Join(bad, "\n  "), output)
	}
}

// envCommand prints the variables the tests set, and PATH.
const envCommand = `env | grep -e -e2e- -e '^PATH=' ; true`

// TestShellEnvScrubbed: session/shell's `env` shows no secret of the
// daemon's environment; the user's passthrough keeps one and the user's
// deny removes an ordinary one; a project's passthrough keeps nothing,
// its deny removes.
func TestShellEnvScrubbed(t *testing.T) {
	t.Parallel()
	w := tmSetupEnv(t, false, nil, envDaemonEnv())
	ses := w.newSession("env")
	envUserConfig(t, w.s, nil)
	envCheck(t, "by default", tmShellState(t, w.shell(ses.ID, envCommand)).Output, nil, nil)

	envUserConfig(t, w.s, map[string]any{"shell": map[string]any{"env": map[string]any{
		"passthrough": []string{"GITHUB_TOKEN"},
		"deny":        []string{"E2E_PL*"},
	}}})
	envCheck(t, "with the user's passthrough and deny", tmShellState(t, w.shell(ses.ID, envCommand)).Output,
		[]string{"GITHUB_TOKEN"}, []string{"E2E_PLAIN"})

	envUserConfig(t, w.s, nil)
	w.write(".sessiond/config.json", mustJSON(map[string]any{"shell": map[string]any{"env": map[string]any{
		"passthrough": []string{"OPENAI_API_KEY", "GITHUB_TOKEN", "*"},
		"deny":        []string{"E2E_OTHER"},
	}}}), 0o644)
	envCheck(t, "with a project's passthrough and deny", tmShellState(t, w.shell(ses.ID, envCommand)).Output,
		nil, []string{"E2E_OTHER"})
}

// TestShellEnvAgentBash: the agent's bash tool sees the same scrubbed
// environment, so the model never reads a key through it.
func TestShellEnvAgentBash(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t,
		pt.Reply(pt.Tool("b1", "bash", `{"command":"env | grep -e -e2e- -e '^PATH=' ; true"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("done"), pt.Finish("stop")),
	)
	s := newSandbox(t)
	ws := s.dir("ws")
	envUserConfig(t, s, map[string]any{
		"model": "fake/gpt-4o-mini",
		"providers": map[string]any{
			"fake": map[string]any{"type": provider.TypeOpenAI, "baseURL": srv.URL, "apiKey": pt.APIKey},
			"work": map[string]any{"type": "anthropic", "apiKeyEnv": "WORK_LLM"},
		},
	})
	cmd := s.command("serve", "--idle-timeout", "0")
	cmd.Env = append(cmd.Env, envDaemonEnv()...)
	d := s.start(cmd)
	s.waitListening(d)
	c := s.dial()
	c.open(ws)
	ses := c.create(session.CreateParams{Directory: ws, Title: "bash env"})
	var m session.MessageWithParts
	c.call("session/prompt", textPrompt(ses.ID, "show the environment"), &m)
	var out string
	for _, p := range m.Parts {
		if p.Type == session.PartTool && p.Tool == "bash" {
			if p.State.Status != "completed" {
				t.Fatalf("bash: status %s, error %q", p.State.Status, p.State.Error)
			}
			out = p.State.Output
		}
	}
	envCheck(t, "the bash tool", out, nil, nil)
	for i, r := range srv.Requests() {
		for k, v := range envSecrets {
			if strings.Contains(string(r.Body), v) {
				t.Errorf("request %d to the model carries %s", i, k)
			}
		}
	}
}
