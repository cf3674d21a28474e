package session

import (
	"context"
	"os"

	"github.com/sessiond/sessiond/session/provider"
)

// commandEnv is the environment of the commands a session runs
// (session/shell turns, the agent's bash tool): the daemon's, or
// AgentLimits.ShellEnv when set, without the secrets provider.CommandEnv
// removes, adjusted by the shell.env section of the workspace's config.
// The config is read at every call, as for prompts. A config that cannot
// be read leaves the default rule alone in force: nothing is passed
// through that a user file might have allowed.
func (s *Service) commandEnv(ctx context.Context, ses Session) []string {
	base := s.agent.limits.ShellEnv
	if base == nil {
		base = os.Environ()
	}
	var cfg *provider.Config
	root, err := s.contextRoot(ctx, ses)
	if err == nil {
		var reg *provider.Registry
		if reg, err = s.contextProviders(root); err == nil && reg != nil {
			cfg = reg.Config()
		}
	}
	if err != nil {
		s.log.Warn("cannot read the config; commands get the default environment without secrets, and shell.env is not applied", "session", ses.ID, "err", err)
	}
	if ignored := cfg.IgnoredPassthrough(); len(ignored) > 0 {
		s.log.Warn("a project config's shell.env.passthrough is ignored: only the user config may pass variables through", "project config", cfg.ProjectPath, "passthrough", ignored)
	}
	return cfg.CommandEnv(base)
}
