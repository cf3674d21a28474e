package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

func (a *app) sessionCmds() []*cobra.Command {
	return append(append([]*cobra.Command{a.lsCmd(), a.newCmd(), a.showCmd(), a.renameCmd(), a.rmCmd(), a.statusCmd()}, a.timeMachineCmds()...), append(a.agentCmds(), a.commandCmds()...)...)
}

// withClient runs fn with a connected client, and says what to do about
// the errors users meet most (explain).
func (a *app) withClient(ctx context.Context, fn func(c *rpc.Client) error) error {
	c, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return a.explain(ctx, c, fn(c))
}

func cwd() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the current directory: %w (pass --dir)", err)
	}
	return d, nil
}

func absDir(dir string) (string, error) {
	if dir == "" {
		return cwd()
	}
	if strings.HasPrefix(dir, "/") {
		return dir, nil
	}
	wd, err := cwd()
	if err != nil {
		return "", err
	}
	return wd + "/" + dir, nil
}

func (a *app) lsCmd() *cobra.Command {
	var p session.ListParams
	var dir string
	var all, here bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the sessions of this project, newest first",
		Long: `List sessions, newest first, with the directory each was made in.

By default, the sessions of the project that holds the current directory (or
--dir): a git repository's sessions list together from any of its clones,
worktrees and subdirectories (a repository is known by its first commit).
--here lists only the sessions made in the current directory or below it;
--all lists every project's. Archived sessions are hidden; --archived lists
only them. Listing never registers a directory as a project.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all && here {
				return errors.New("--all and --here contradict each other: --all lists every project, --here only this directory")
			}
			if !all {
				d, err := absDir(dir)
				if err != nil {
					return err
				}
				p.Directory, p.Project = d, !here
			}
			return a.withClient(cmd.Context(), func(c *rpc.Client) error {
				var res session.ListResult
				if err := c.Call(cmd.Context(), "session/list", p, &res); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(res)
				}
				if len(res.Sessions) == 0 {
					fmt.Fprintln(a.stdout, "No sessions. Create one with `sessiond new`.")
					return nil
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTITLE\tMESSAGES\tUPDATED\tDIRECTORY")
				for _, s := range res.Sessions {
					title := s.Title
					if s.Depth > 0 {
						title = strings.Repeat("  ", s.Depth) + "↳ " + title
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", s.ID, title, s.MessageCount, ago(s.Time.Updated), s.Directory)
				}
				tw.Flush()
				if res.NextCursor != "" {
					fmt.Fprintf(a.stdout, "(more: --limit %d --cursor %s)\n", len(res.Sessions), res.NextCursor)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "list the sessions of the project holding this directory (default: the current one)")
	f.BoolVar(&here, "here", false, "only the sessions made in this directory (or --dir) and below, not the rest of the project")
	f.BoolVar(&all, "all", false, "list the sessions of every project")
	f.BoolVar(&p.Archived, "archived", false, "list only archived sessions")
	f.BoolVar(&p.RootsOnly, "roots", false, "leave out child sessions")
	f.StringVar(&p.Search, "search", "", "keep sessions whose title contains this")
	f.IntVar(&p.Limit, "limit", 0, "sessions per page (default 50)")
	f.StringVar(&p.Cursor, "cursor", "", "continue after a previous page")
	return cmd
}

// ago renders an epoch-ms time relative to now, for tables.
func ago(ms int64) string {
	d := time.Since(time.UnixMilli(ms))
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return time.UnixMilli(ms).Local().Format("2006-01-02")
}

func (a *app) newCmd() *cobra.Command {
	var p session.CreateParams
	cmd := &cobra.Command{
		Use:   "new",
		Short: "Create a session in this workspace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if p.ParentID == "" || p.Directory != "" {
				d, err := absDir(p.Directory)
				if err != nil {
					return err
				}
				p.Directory = d
			}
			return a.withClient(cmd.Context(), func(c *rpc.Client) error {
				var s session.Session
				if err := c.Call(cmd.Context(), "session/create", p, &s); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(s)
				}
				fmt.Fprintf(a.stdout, "%s\t%s\n", s.ID, s.Title)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.Directory, "dir", "", "workspace directory (default: the current one)")
	f.StringVar(&p.Title, "title", "", "title (default: \"New session – <time>\")")
	f.StringVar(&p.ParentID, "parent", "", "make it a child of this session")
	return cmd
}

func (a *app) showCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show SESSION",
		Short: "Show a session and its messages",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				var s session.Session
				if err := c.Call(ctx, "session/get", map[string]string{"sessionID": args[0]}, &s); err != nil {
					return err
				}
				var msgs []session.MessageWithParts
				if err := c.Call(ctx, "session/messages", map[string]string{"sessionID": args[0]}, &msgs); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(map[string]any{"session": s, "messages": msgs})
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				row := func(k, v string) {
					if v != "" {
						fmt.Fprintf(tw, "%s\t%s\n", k, v)
					}
				}
				row("id", s.ID)
				row("title", s.Title)
				row("directory", s.Directory)
				row("project", s.ProjectID)
				row("parent", s.ParentID)
				row("lifecycle", s.Lifecycle)
				row("agent", s.Agent)
				if s.Model != nil {
					row("model", s.Model.ProviderID+"/"+s.Model.ModelID)
				}
				row("user", s.UserID)
				row("created", time.UnixMilli(s.Time.Created).Local().Format(time.DateTime))
				row("updated", time.UnixMilli(s.Time.Updated).Local().Format(time.DateTime))
				row("messages", fmt.Sprint(s.MessageCount))
				if rc := s.RevertConflicts; rc != nil {
					for _, p := range rc.Paths {
						row("left by "+rc.Op, p.Path+": "+p.Reason)
					}
				}
				if pj := s.PendingJournal; pj != nil {
					row("parked "+pj.Op, fmt.Sprintf("%d file(s): %s; `sessiond journal retry %s` once fixed, or `sessiond journal abandon %s`", pj.Files, pj.Error, s.ID, s.ID))
				}
				tw.Flush()
				for _, m := range msgs {
					fmt.Fprintf(a.stdout, "\n── %s (%s) %s\n", m.Info.Role, cmp.Or(m.Info.Agent, "-"), time.UnixMilli(m.Info.Time.Created).Local().Format(time.TimeOnly))
					for _, p := range m.Parts {
						switch p.Type {
						case session.PartText:
							fmt.Fprintln(a.stdout, p.Text)
						case session.PartReasoning:
							fmt.Fprintf(a.stdout, "(thinking) %s\n", p.Text)
						case session.PartFile:
							fmt.Fprintf(a.stdout, "[file] %s\n", cmp.Or(p.Path, p.URL))
						case session.PartTool:
							fmt.Fprintf(a.stdout, "[tool %s]\n", p.Tool)
						default:
							fmt.Fprintf(a.stdout, "[%s]\n", p.Type)
						}
					}
				}
				return nil
			})
		},
	}
}

func (a *app) renameCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rename SESSION TITLE",
		Short: "Change a session's title",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd.Context(), func(c *rpc.Client) error {
				var s session.Session
				if err := c.Call(cmd.Context(), "session/update", map[string]any{"sessionID": args[0], "title": args[1]}, &s); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(s)
				}
				fmt.Fprintf(a.stdout, "%s\t%s\n", s.ID, s.Title)
				return nil
			})
		},
	}
}

func (a *app) rmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm SESSION...",
		Short: "Delete sessions, their children and all their data",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd.Context(), func(c *rpc.Client) error {
				deleted := []string{}
				for _, id := range args {
					if err := c.Call(cmd.Context(), "session/delete", map[string]string{"sessionID": id}, nil); err != nil {
						return err
					}
					deleted = append(deleted, id)
					if !a.json {
						fmt.Fprintf(a.stdout, "deleted %s\n", id)
					}
				}
				if a.json {
					return a.printJSON(map[string]any{"deleted": deleted})
				}
				return nil
			})
		},
	}
}
