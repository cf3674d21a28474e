package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/rpc"
)

// app is what every verb shares: where the daemon is and how to print.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	dataDir string
	socket  string
	json    bool

	args []string // the verb's arguments
}

// We use cobra for the command line: it is the most widely used and kept
// Go CLI library, gives us subcommands, help and shell completion, and
// costs nothing measurable at start-up.
func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "sessiond",
		Short: "The session daemon for AI coding in editors",
		Long: `sessiond keeps AI coding sessions for your workspaces and serves them to
editors and tools over JSON-RPC 2.0. Editors spawn "sessiond stdio"; people
use the verbs below. Every verb talks to one shared daemon, starting it when
none is running.

With no verb, sessiond behaves as "sessiond stdio" when its standard input is
not a terminal, and prints this help when it is.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildVersion(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if isTerminal(a.stdin) {
				return cmd.Help()
			}
			return a.runStdio(cmd.Context(), false)
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&a.dataDir, "data-dir", os.Getenv("SESSIOND_DATA_DIR"), "data directory (env SESSIOND_DATA_DIR; default $XDG_DATA_HOME/sessiond)")
	pf.StringVar(&a.socket, "socket", os.Getenv("SESSIOND_SOCKET"), "daemon socket (env SESSIOND_SOCKET; default $XDG_RUNTIME_DIR/sessiond/sessiond.sock, else in the data dir)")
	pf.BoolVar(&a.json, "json", false, "print machine-readable JSON")

	root.AddCommand(a.serveCmd(), a.stdioCmd(), a.versionCmd(), a.doctorCmd())
	root.AddCommand(a.sessionCmds()...)
	root.AddCommand(a.lifecycleCmds()...)
	// The verb's arguments, for the hints errors get (explain).
	root.PersistentPreRun = func(_ *cobra.Command, args []string) { a.args = args }
	usageErrors(root)
	return root
}

func (a *app) config() (daemon.Config, error) {
	return daemon.Config{DataDir: a.dataDir, Socket: a.socket, Version: buildVersion()}.ResolveFromEnv()
}

// isTerminal reports whether r is a terminal. Being a character device is
// not enough: /dev/null is one too, and a script running `sessiond
// </dev/null` wants the protocol, not help.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}

// newLogger logs to stderr and, when path is set, to the log file too.
func newLogger(stderr io.Writer, path string, level slog.Level) (*slog.Logger, func(), error) {
	opts := &slog.HandlerOptions{Level: level}
	handlers := []slog.Handler{slog.NewTextHandler(stderr, opts)}
	closeFn := func() {}
	if path != "" {
		if err := os.MkdirAll(dirOf(path), 0o700); err != nil {
			return nil, nil, fmt.Errorf("create log dir: %w", err)
		}
		rotate(path)
		// Never through a link: one planted as sessiond.log would have
		// the daemon append to whatever file it points at.
		f, err := daemon.OpenPrivateFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("open log file: %w", err)
		}
		handlers = append(handlers, slog.NewJSONHandler(f, opts))
		closeFn = func() { f.Close() }
	}
	return slog.New(slog.NewMultiHandler(handlers...)), closeFn, nil
}

// rotate keeps one previous log once the log passes 10 MiB. Only a
// regular file is rotated: a link is left for the open to refuse.
func rotate(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Size() > 10<<20 {
		os.Rename(path, path+".1")
	}
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		return path[:i]
	}
	return "."
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("--log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

func (a *app) serveCmd() *cobra.Command {
	var idle time.Duration
	var maxMsg, maxFile, budget int64
	var gcPin time.Duration
	var level string
	var traceWrites bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon on its Unix socket",
		Long: `Run the daemon in the foreground. It owns the data dir, listens on the
socket, and exits after --idle-timeout with no client, or on SIGINT/SIGTERM,
closing the store cleanly. Editors and verbs start it on their own when it
is not running; run it by hand to watch its log.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			cfg.IdleTimeout, cfg.MaxMessageBytes, cfg.MaxFileSize, cfg.DiskBudget = idle, maxMsg, maxFile, budget
			// Test-only: tests of crash recovery name a point where the
			// daemon kills itself. Unset, nothing changes.
			cfg.CrashPoint = os.Getenv("SESSIOND_TEST_CRASH_POINT")
			cfg.HideMethods = strings.Fields(os.Getenv("SESSIOND_TEST_HIDE_METHODS"))
			cfg.GCPin = gcPin
			if !traceWrites {
				cfg.NoWriteTrace = "write tracing is turned off (serve --trace-writes=false or SESSIOND_TRACE_WRITES=off)"
			}
			lvl, err := parseLevel(level)
			if err != nil {
				return err
			}
			if err := daemon.PrepareDataDir(cfg); err != nil {
				return err
			}
			log, closeLog, err := newLogger(a.stderr, cfg.LogPath(), lvl)
			if err != nil {
				return err
			}
			defer closeLog()
			return daemon.Run(cmd.Context(), cfg, log)
		},
	}
	cmd.Flags().DurationVar(&idle, "idle-timeout", daemon.DefaultIdleTimeout, "exit after this long with no client (0 = never)")
	cmd.Flags().Int64Var(&maxMsg, "max-message-size", rpc.DefaultMaxMessageBytes, "largest JSON-RPC message accepted, in bytes")
	cmd.Flags().Int64Var(&maxFile, "max-file-size", 10<<20, "largest file kept in snapshots, in bytes; larger files are recorded as skipped and never reverted")
	cmd.Flags().Int64Var(&budget, "disk-budget", 2<<30, "bytes snapshots may take; over it, gc gives up the snapshots of archived sessions, oldest first (-1: no budget)")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().BoolVar(&traceWrites, "trace-writes", os.Getenv("SESSIOND_TRACE_WRITES") != "off",
		"trace which files shell commands and bash write, so a turn claims only those (env SESSIOND_TRACE_WRITES=off turns it off; untraced changes need revert --force)")
	// Tests of the collector need fresh captures to be collectable.
	cmd.Flags().DurationVar(&gcPin, "gc-pin", 0, "how long gc keeps a fresh capture nobody recorded yet (0: 10m, negative: not at all)")
	cmd.Flags().MarkHidden("gc-pin")
	return cmd
}

func (a *app) stdioCmd() *cobra.Command {
	var standalone bool
	cmd := &cobra.Command{
		Use:   "stdio",
		Short: "Speak JSON-RPC on stdin/stdout (what editors spawn)",
		Long: `Connect stdin and stdout to the daemon, starting it when none answers, and
relay bytes both ways. Either framing works: LSP Content-Length headers or
newline-delimited JSON, detected from the first byte.

With --standalone the connection is served in this process instead of the
shared daemon (tests, sandboxes, CI); the data dir must not be in use.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runStdio(cmd.Context(), standalone)
		},
	}
	cmd.Flags().BoolVar(&standalone, "standalone", false, "serve in this process, without the shared daemon")
	return cmd
}

func (a *app) runStdio(ctx context.Context, standalone bool) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	if standalone {
		if err := daemon.PrepareDataDir(cfg); err != nil {
			return err
		}
		log, closeLog, err := newLogger(a.stderr, cfg.LogPath(), slog.LevelWarn)
		if err != nil {
			return err
		}
		defer closeLog()
		d, err := daemon.Open(ctx, cfg, "standalone", log)
		if err != nil {
			return err
		}
		defer d.Close()
		return d.ServeConn(ctx, stdioConn{a.stdin, a.stdout})
	}
	conn, err := daemon.Dial(ctx, cfg, daemon.DialOptions{AutoStart: true})
	if err != nil {
		return err
	}
	if err := daemon.Relay(ctx, conn, a.stdin, a.stdout); err != nil && ctx.Err() == nil {
		return err
	}
	return nil // a signal ends the relay; the daemon goes on
}

// stdioConn joins stdin and stdout into one connection.
type stdioConn struct {
	io.Reader
	io.Writer
}

func (stdioConn) Close() error { return nil }

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary and of the running daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := map[string]any{"version": buildVersion()}
			if cfg, err := a.config(); err == nil {
				if c, err := a.dialNoStart(cmd.Context(), cfg); err == nil {
					var st daemon.DaemonStatus
					if c.Call(cmd.Context(), "daemon/status", nil, &st) == nil {
						out["daemon"] = st.Version
					}
					c.Close()
				}
			}
			if a.json {
				return a.printJSON(out)
			}
			fmt.Fprintf(a.stdout, "sessiond %s\n", out["version"])
			if v, ok := out["daemon"]; ok {
				fmt.Fprintf(a.stdout, "daemon   %s\n", v)
			}
			return nil
		},
	}
}
