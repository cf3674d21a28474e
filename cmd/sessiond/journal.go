package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

// journalCmd is `sessiond journal`: the reverts and unreverts that could
// not finish and are parked on their sessions, and the two ways to end
// one.
func (a *app) journalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "journal",
		Short: "List, retry or abandon reverts that could not finish",
		Long: `A revert or unrevert writes a journal before it touches a file. When it cannot
finish (a directory it writes into became a symlink, the disk is full), the
journal is parked on its session: the session refuses turns, reverts and
unreverts until you end it, and everything else goes on.

  sessiond journal                  list the parked journals
  sessiond journal retry SESSION    fix the cause first, then finish it
  sessiond journal abandon SESSION  give it up; the files stay as they are

A retry leaves any file changed since the revert was planned as it is, and
lists it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				var st daemon.DaemonStatus
				if err := c.Call(ctx, "daemon/status", nil, &st); err != nil {
					return err
				}
				if a.json {
					if st.PendingJournals == nil {
						st.PendingJournals = []session.PendingJournalInfo{}
					}
					return a.printJSON(st.PendingJournals)
				}
				if len(st.PendingJournals) == 0 {
					fmt.Fprintln(a.stdout, "No parked journals: every revert and unrevert finished.")
					return nil
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SESSION\tOP\tFILES\tSINCE\tDIRECTORY\tERROR")
				for _, p := range st.PendingJournals {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", p.SessionID, p.Op, p.Files, ago(p.Since), p.Directory, p.Error)
				}
				return tw.Flush()
			})
		},
	}
	cmd.AddCommand(a.journalEndCmd("retry"), a.journalEndCmd("abandon"))
	return cmd
}

func (a *app) journalEndCmd(verb string) *cobra.Command {
	short := "Finish a parked revert or unrevert, once its cause is fixed"
	if verb == "abandon" {
		short = "Give up a parked revert or unrevert, leaving the files as they are"
	}
	return &cobra.Command{
		Use:   verb + " SESSION",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				var s session.Session
				if err := c.Call(ctx, "session/journal/"+verb, session.JournalParams{SessionID: args[0]}, &s); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(s)
				}
				if verb == "abandon" {
					fmt.Fprintf(a.stdout, "Abandoned the unfinished revert or unrevert of %s: the files stay as they are now, and the session takes turns again.\n", s.ID)
					return nil
				}
				op := "unrevert"
				if s.Revert != nil {
					op = "revert"
				}
				fmt.Fprintf(a.stdout, "Finished the %s of %s.\n", op, s.ID)
				if rc := s.RevertConflicts; rc != nil && len(rc.Paths) > 0 {
					fmt.Fprintln(a.stdout, "These files were changed after it was planned and are left as they are:")
					for _, p := range rc.Paths {
						fmt.Fprintf(a.stdout, "  %s: %s\n", p.Path, p.Reason)
					}
				}
				return nil
			})
		},
	}
}
