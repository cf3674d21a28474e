package provider

import (
	"fmt"
	"path"
	"strings"
)

// ShellConfig is the "shell" section of a config file:
//
//	{"shell": {"env": {"passthrough": ["GITHUB_TOKEN"], "deny": ["DATABASE_URL", "MYCORP_*"]}}}
type ShellConfig struct {
	Env ShellEnvConfig `json:"env"`
}

// ShellEnvConfig adjusts the environment of the commands sessions run
// (session/shell turns, the agent's bash tool). Entries are variable
// names or globs (path.Match syntax: *, ?, [...]), matched without
// regard to case.
type ShellEnvConfig struct {
	// Passthrough keeps variables the default rule would remove. Only the
	// user's file may set it: a project's is ignored, or a cloned
	// repository could hand the user's tokens to the commands the model
	// runs.
	Passthrough []string `json:"passthrough,omitempty"`
	// Deny removes more variables; it wins over Passthrough.
	Deny []string `json:"deny,omitempty"`
}

// secretNames are well-known secrets that the patterns below miss.
var secretNames = []string{
	EnvOpenAIKey, EnvAnthropicKey,
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
	"GITHUB_TOKEN", "GH_TOKEN", "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN", "GITHUB_PAT",
	"GITLAB_TOKEN", "GL_TOKEN", "CI_JOB_TOKEN",
	"GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_API_KEY", "GEMINI_API_KEY",
	"AZURE_CLIENT_SECRET", "AZURE_OPENAI_API_KEY",
	"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
	"NPM_TOKEN", "NODE_AUTH_TOKEN", "PYPI_TOKEN", "TWINE_PASSWORD", "CARGO_REGISTRY_TOKEN",
	"DOCKER_PASSWORD", "DOCKER_AUTH_CONFIG",
}

// secretPatterns are names that look like secrets, matched without
// regard to case. SESSIOND_* are sessiond's own settings, which commands
// have no business with.
var secretPatterns = []string{
	"*_API_KEY", "*_APIKEY", "*_TOKEN", "*SECRET*", "*PASSWORD*", "*PASSWD*",
	"*CREDENTIALS*", "*_PRIVATE_KEY", "*ACCESS_KEY*", "SESSIOND_*",
}

// SecretRule describes the default rule, for messages and docs.
func SecretRule() (names, patterns []string) {
	return append([]string(nil), secretNames...), append([]string(nil), secretPatterns...)
}

// checkEnvPatterns rejects an entry that is not a name or a valid glob.
func checkEnvPatterns(file, key string, pats []string) error {
	for _, p := range pats {
		if strings.TrimSpace(p) == "" || strings.ContainsAny(p, "=\x00") {
			return fmt.Errorf("config %s: shell.env.%s: %q is not a variable name or glob (fix the file)", file, key, p)
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("config %s: shell.env.%s: %q is not a valid glob: %w (fix the file)", file, key, p, err)
		}
	}
	return nil
}

// matchAny says name matches one of the patterns, ignoring case.
func matchAny(pats []string, name string) bool {
	name = strings.ToUpper(name)
	for _, p := range pats {
		if ok, _ := path.Match(strings.ToUpper(p), name); ok {
			return true
		}
	}
	return false
}

// IsSecretEnv says the default rule removes name from commands'
// environments, before any config is applied.
func IsSecretEnv(name string) bool {
	return matchAny(secretNames, name) || matchAny(secretPatterns, name)
}

// CommandEnv returns environ (KEY=value entries, as os.Environ gives)
// without what commands must not see, in the same order. Removed: the
// provider keys (OPENAI_API_KEY, ANTHROPIC_API_KEY and every apiKeyEnv a
// config file names), the well-known secrets of SecretRule, and names
// that look like secrets, unless the user's shell.env.passthrough keeps
// them; and whatever shell.env.deny (user's or project's) names. A nil
// Config applies the default rule alone.
func (c *Config) CommandEnv(environ []string) []string {
	var keyEnvs, pass, deny []string
	if c != nil {
		for _, p := range c.Providers {
			if p.APIKeyEnv != "" {
				keyEnvs = append(keyEnvs, p.APIKeyEnv)
			}
		}
		pass, deny = c.shellPassthrough, c.shellDeny
	}
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case matchAny(deny, name):
			continue
		case (IsSecretEnv(name) || matchExact(keyEnvs, name)) && !matchAny(pass, name):
			continue
		}
		out = append(out, kv)
	}
	return out
}

// matchExact says name is one of names (variable names are matched as
// written, apiKeyEnv being a name, not a pattern).
func matchExact(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// IgnoredPassthrough lists the shell.env.passthrough entries of the
// project file, which CommandEnv does not honour; empty when it has none.
func (c *Config) IgnoredPassthrough() []string {
	if c == nil {
		return nil
	}
	return c.projectPassthrough
}
