package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/rpc"
)

// The daemon's own verbs: stop it, and restart it with this shell's
// environment.
func (a *app) lifecycleCmds() []*cobra.Command {
	return []*cobra.Command{a.stopCmd(), a.restartCmd()}
}

// turnsOnStop is what the help of stop and restart says of running turns.
const turnsOnStop = `Turns still running are stopped as by "sessiond abort": a prompt's model
call and tools are cancelled, a shell command is killed, and each turn is
recorded with what it did so far, marked aborted ("sessiond log", "diff" and
"revert" see it).`

func (a *app) stopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Shut the daemon down cleanly",
		Long: `Ask the daemon of the data dir to shut down, as SIGTERM would, and wait until
it has exited. The next verb or editor starts a new one.

` + turnsOnStop + `

With no daemon running, stop says so and succeeds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			res, err := daemon.Stop(cmd.Context(), cfg, 0)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(map[string]any{"stopped": res})
			}
			fmt.Fprintln(a.stdout, stoppedLine(cfg, res, "is"))
			return nil
		},
	}
}

func (a *app) restartCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restart",
		Short: "Stop the daemon and start a new one with this shell's environment",
		Long: `Stop the daemon of the data dir, then start a new one the way verbs and
editors do (detached, with the default serve flags), and print its pid and
socket.

A daemon keeps the environment it was started with: an API key exported
since (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...) reaches it only after a
restart from the shell that has it. Restart also picks up a new binary.

` + turnsOnStop,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := a.config()
			if err != nil {
				return err
			}
			res, err := daemon.Stop(ctx, cfg, 0)
			if err != nil {
				return err
			}
			st, err := a.startDaemon(ctx, cfg)
			if err != nil {
				return fmt.Errorf("%s, but starting a new one failed: %w", stoppedLine(cfg, res, "was"), err)
			}
			if a.json {
				return a.printJSON(map[string]any{"stopped": res, "started": map[string]any{"pid": st.PID, "socket": st.Socket}})
			}
			fmt.Fprintln(a.stdout, stoppedLine(cfg, res, "was"))
			fmt.Fprintf(a.stdout, "started the daemon (pid %d, socket %s)\n", st.PID, st.Socket)
			return nil
		},
	}
}

// startDaemon starts a daemon as auto-start does and asks who it is.
func (a *app) startDaemon(ctx context.Context, cfg daemon.Config) (daemon.DaemonStatus, error) {
	var st daemon.DaemonStatus
	conn, err := daemon.Dial(ctx, cfg, daemon.DialOptions{AutoStart: true})
	if err != nil {
		return st, err
	}
	c, err := a.handshake(ctx, rpc.Dial(ctx, conn, rpc.ClientOptions{}))
	if err != nil {
		return st, err
	}
	defer c.Close()
	if err := c.Call(ctx, "daemon/status", nil, &st); err != nil {
		return st, fmt.Errorf("ask the new daemon for its status: %w", err)
	}
	return st, nil
}

// stoppedLine says what Stop did; tense is "is" or "was" for when none
// was running.
func stoppedLine(cfg daemon.Config, res daemon.StopResult, tense string) string {
	switch {
	case res.PID == 0:
		return fmt.Sprintf("no daemon %s running for %s", tense, cfg.DataDir)
	case res.Signalled:
		return fmt.Sprintf("stopped the daemon (pid %d) for %s with SIGTERM: %s", res.PID, cfg.DataDir, res.Why)
	}
	return fmt.Sprintf("stopped the daemon (pid %d) for %s", res.PID, cfg.DataDir)
}
