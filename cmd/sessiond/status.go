package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/session/shellrun/writetrace"
)

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status [SESSION]",
		Short: "Show the daemon's status, or one session's run state",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				if len(args) == 1 {
					var st map[string]session.Status
					if err := c.Call(ctx, "session/status", map[string]string{"sessionID": args[0]}, &st); err != nil {
						return err
					}
					if a.json {
						return a.printJSON(st)
					}
					s := st[args[0]]
					fmt.Fprintf(a.stdout, "%s\t%s\tqueued %d\tmessages %d\tlast active %s\n", args[0], s.State, s.Queued, s.MessageCount, ago(s.LastActive))
					return nil
				}
				var st daemon.DaemonStatus
				if err := c.Call(ctx, "daemon/status", nil, &st); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(st)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "version\t%s\n", st.Version)
				fmt.Fprintf(tw, "pid\t%d\n", st.PID)
				fmt.Fprintf(tw, "uptime\t%s\n", (time.Duration(st.UptimeMs) * time.Millisecond).Round(time.Second))
				fmt.Fprintf(tw, "data dir\t%s\n", st.DataDir)
				fmt.Fprintf(tw, "socket\t%s\n", st.Socket)
				fmt.Fprintf(tw, "connections\t%d\n", st.Connections)
				fmt.Fprintf(tw, "projects\t%d (%d watched)\n", st.Projects, st.Watched)
				for root, why := range st.Degraded {
					fmt.Fprintf(tw, "degraded\t%s: %s\n", root, why)
				}
				total := st.Store.LSMBytes + st.Store.VLogBytes + st.Store.OtherBytes
				fmt.Fprintf(tw, "store\t%s on disk (tables %s, value log %s), budget %s\n",
					humanize.IBytes(uint64(total)), humanize.IBytes(uint64(st.Store.LSMBytes)),
					humanize.IBytes(uint64(st.Store.VLogBytes)), humanize.IBytes(uint64(max(st.Store.BudgetBytes, 0))))
				fmt.Fprintf(tw, "snapshots\t%d blobs (%s), %d trees (%s)\n",
					st.Store.Blobs, humanize.IBytes(uint64(st.Store.BlobBytes)), st.Store.Trees, humanize.IBytes(uint64(st.Store.TreeBytes)))
				return tw.Flush()
			})
		},
	}
}

// check is one line of `sessiond doctor`.
type check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok, warn, fail
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

func (a *app) doctorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check the data dir, the socket, the daemon and the inotify limits",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			checks := a.doctor(cmd.Context())
			failed := 0
			for _, c := range checks {
				if c.Status == "fail" {
					failed++
				}
			}
			if a.json {
				if err := a.printJSON(checks); err != nil {
					return err
				}
			} else {
				for _, c := range checks {
					mark := map[string]string{"ok": "✓", "warn": "!", "fail": "✗"}[c.Status]
					fmt.Fprintf(a.stdout, "%s %-18s %s\n", mark, c.Name, c.Detail)
					if c.Fix != "" {
						fmt.Fprintf(a.stdout, "  %-18s → %s\n", "", c.Fix)
					}
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d check(s) failed", failed)
			}
			return nil
		},
	}
}

func (a *app) doctor(ctx context.Context) []check {
	var out []check
	cfg, err := a.config()
	if err != nil {
		return append(out, check{Name: "config", Status: "fail", Detail: err.Error()})
	}
	out = append(out, checkDataDir(cfg.DataDir))

	c, err := a.dialNoStart(ctx, cfg)
	switch {
	case err != nil:
		out = append(out, check{Name: "daemon", Status: "warn",
			Detail: fmt.Sprintf("not running on %s", cfg.Socket),
			Fix:    "nothing to do: editors and verbs start it on first use (or run `sessiond serve`)"})
	default:
		var st daemon.DaemonStatus
		cerr := c.Call(ctx, "daemon/status", nil, &st)
		c.Close()
		switch {
		case cerr != nil:
			out = append(out, check{Name: "daemon", Status: "fail", Detail: "daemon/status failed: " + cerr.Error()})
		case st.Version != buildVersion():
			out = append(out, check{Name: "daemon", Status: "warn",
				Detail: fmt.Sprintf("running version %s (pid %d), this binary is %s", st.Version, st.PID, buildVersion()),
				Fix:    "run `sessiond restart` to start this binary's daemon"})
		default:
			out = append(out, check{Name: "daemon", Status: "ok", Detail: fmt.Sprintf("version %s, pid %d, socket %s", st.Version, st.PID, cfg.Socket)})
		}
		for root, why := range st.Degraded {
			// why carries the sysctl to raise.
			out = append(out, check{Name: "watcher", Status: "warn",
				Detail: fmt.Sprintf("%s: %s", root, why),
				Fix:    "until then, snapshots of this workspace scan every file (slower, still exact)"})
		}
		for _, p := range st.PendingJournals {
			out = append(out, check{Name: "parked journal", Status: "warn",
				Detail: fmt.Sprintf("session %s (%s): an unfinished %s of %d file(s), parked %s: %s", p.SessionID, p.Directory, p.Op, p.Files, ago(p.Since), p.Error),
				Fix: fmt.Sprintf("fix that, then `sessiond journal retry %s`; or `sessiond journal abandon %s` to leave the files as they are",
					p.SessionID, p.SessionID)})
		}
	}
	out = append(out, inotifyChecks()...)
	return append(out, writeTraceCheck(ctx))
}

// writeTraceCheck says whether the files a command writes can be told
// from other edits here (package writetrace).
func writeTraceCheck(ctx context.Context) check {
	ok, detail := writetrace.Probe(ctx)
	if !ok {
		return check{Name: "write tracing", Status: "warn", Detail: "unavailable: " + detail}
	}
	return check{Name: "write tracing", Status: "ok", Detail: detail}
}

func checkDataDir(dir string) check {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return check{Name: "data dir", Status: "fail", Detail: err.Error(), Fix: "pass a writable --data-dir"}
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		return check{Name: "data dir", Status: "fail", Detail: fmt.Sprintf("%s is not writable: %v", dir, err), Fix: "fix its permissions or pass another --data-dir"}
	}
	f.Close()
	os.Remove(f.Name())
	return check{Name: "data dir", Status: "ok", Detail: dir}
}

// inotifyChecks reads the kernel's inotify limits: the watcher needs a
// watch per directory of every open workspace.
func inotifyChecks() []check {
	limits := []struct {
		name string
		min  int
	}{
		{"max_user_watches", 65536},
		{"max_user_instances", 128},
	}
	var out []check
	for _, l := range limits {
		path := filepath.Join("/proc/sys/fs/inotify", l.name)
		b, err := os.ReadFile(path)
		if err != nil {
			out = append(out, check{Name: "inotify " + strings.TrimPrefix(l.name, "max_user_"), Status: "warn", Detail: fmt.Sprintf("cannot read %s: %v", path, err)})
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		c := check{Name: "inotify " + strings.TrimPrefix(l.name, "max_user_"), Status: "ok", Detail: fmt.Sprintf("fs.inotify.%s = %d", l.name, n)}
		if n < l.min {
			c.Status = "warn"
			c.Detail += fmt.Sprintf(" (below %d: large workspaces fall back to slower scans)", l.min)
			c.Fix = fmt.Sprintf("sudo sysctl fs.inotify.%s=%d", l.name, l.min*8)
		}
		out = append(out, c)
	}
	return out
}
