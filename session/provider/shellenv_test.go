package provider_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/session/provider"
)

// daemonEnv is an environment with secrets of every kind and ordinary
// variables.
var daemonEnv = []string{
	"PATH=/usr/bin", "HOME=/home/me", "LANG=C.UTF-8", "SSH_AUTH_SOCK=/run/agent",
	"OPENAI_API_KEY=k1", "ANTHROPIC_API_KEY=k2", "WORK_KEY=k3",
	"GITHUB_TOKEN=k4", "GH_TOKEN=k5", "AWS_ACCESS_KEY_ID=k6", "AWS_SECRET_ACCESS_KEY=k7",
	"GOOGLE_APPLICATION_CREDENTIALS=/k8", "AZURE_CLIENT_SECRET=k9", "HF_TOKEN=k10", "NPM_TOKEN=k11",
	"STRIPE_API_KEY=k12", "db_password=k13", "MY_SECRET_THING=k14", "DOCKER_AUTH_CONFIG=k15",
	"SESSIOND_DATA_DIR=/d", "SESSIOND_MODEL=m",
	"DATABASE_URL=postgres://u:p@h/db", "TOKENIZERS_PARALLELISM=false",
}

func names(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		out = append(out, k)
	}
	return out
}

func TestCommandEnv(t *testing.T) {
	t.Parallel()
	userKey := `"providers": {"work": {"type": "anthropic", "apiKeyEnv": "WORK_KEY"}}`
	tests := []struct {
		name          string
		user, project string
		want          []string // the names kept, in order
	}{
		{
			name: "default rule",
			user: `{` + userKey + `}`,
			want: []string{"PATH", "HOME", "LANG", "SSH_AUTH_SOCK", "DATABASE_URL", "TOKENIZERS_PARALLELISM"},
		},
		{
			name: "user passthrough and deny",
			user: `{` + userKey + `, "shell": {"env": {"passthrough": ["github_token", "AWS_*", "WORK_KEY"], "deny": ["DATABASE_URL", "AWS_SECRET*"]}}}`,
			want: []string{"PATH", "HOME", "LANG", "SSH_AUTH_SOCK", "WORK_KEY", "GITHUB_TOKEN", "AWS_ACCESS_KEY_ID", "TOKENIZERS_PARALLELISM"},
		},
		{
			name:    "a project may deny, never pass through",
			user:    `{` + userKey + `}`,
			project: `{"shell": {"env": {"passthrough": ["*", "OPENAI_API_KEY"], "deny": ["LANG", "TOKENIZERS_*"]}}}`,
			want:    []string{"PATH", "HOME", "SSH_AUTH_SOCK", "DATABASE_URL"},
		},
		{
			name:    "a project's apiKeyEnv is removed too",
			project: `{"providers": {"p": {"apiKeyEnv": "LANG", "baseURL": "http://localhost:1/v1"}}}`,
			want:    []string{"PATH", "HOME", "SSH_AUTH_SOCK", "WORK_KEY", "DATABASE_URL", "TOKENIZERS_PARALLELISM"},
		},
		{
			name:    "other shell keys are left to others",
			user:    `{"shell": {"trace": true, "env": {"deny": ["HOME"]}}}`,
			project: `{}`,
			want:    []string{"PATH", "LANG", "SSH_AUTH_SOCK", "WORK_KEY", "DATABASE_URL", "TOKENIZERS_PARALLELISM"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := setup(t, env{}, tt.user, tt.project)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(cfg.CommandEnv(daemonEnv)); !slices.Equal(got, tt.want) {
				t.Errorf("kept %v\nwant %v", got, tt.want)
			}
		})
	}
	var none *provider.Config
	if got := names(none.CommandEnv(daemonEnv)); slices.Contains(got, "OPENAI_API_KEY") || !slices.Contains(got, "PATH") || !slices.Contains(got, "WORK_KEY") {
		t.Errorf("a nil config kept %v", got)
	}
}

func TestCommandEnvIgnoredPassthrough(t *testing.T) {
	t.Parallel()
	cfg, err := setup(t, env{}, `{"shell": {"env": {"passthrough": ["A"]}}}`, `{"shell": {"env": {"passthrough": ["B", "C"]}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.IgnoredPassthrough(); !slices.Equal(got, []string{"B", "C"}) {
		t.Errorf("IgnoredPassthrough = %v", got)
	}
}

func TestShellEnvConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ user, want string }{
		{`{"shell": {"env": {"deny": ["[abc"]}}}`, `shell.env.deny: "[abc" is not a valid glob`},
		{`{"shell": {"env": {"passthrough": ["A=B"]}}}`, `shell.env.passthrough: "A=B" is not a variable name or glob`},
		{`{"shell": {"env": {"passthrough": [""]}}}`, `is not a variable name or glob`},
		{`{"shell": {"env": {"allow": ["A"]}}}`, `unknown field "allow"`},
		{`{"shell": {"env": {"deny": "A"}}}`, `"shell.env"`},
		{`{"shell": []}`, `"shell"`},
	} {
		_, err := setup(t, env{}, tt.user, "")
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "config.json") {
			t.Errorf("%s: err = %v; want it to name the file and say %q", tt.user, err, tt.want)
		}
	}
}
