package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// The store keeps every snapshot a session refers to and frees the rest;
// over its disk budget it gives up the snapshots of archived sessions,
// oldest first, and never those of live ones.
func TestGCFreesDeletedAndPrunesArchived(t *testing.T) {
	s := newSandbox(t)
	// A budget of one byte: every collection is over it.
	s.serve("--idle-timeout", "0", "--disk-budget", "1", "--gc-pin", "-1s")
	c := s.dial()
	ws := s.dir("ws")

	shell := func(id, cmd string) {
		t.Helper()
		var m session.MessageWithParts
		c.call("session/shell", session.ShellParams{SessionID: id, Command: cmd}, &m)
	}
	diff := func(id string) []snapshot.FileDiff {
		t.Helper()
		var d []snapshot.FileDiff
		c.call("session/diff", session.DiffParams{SessionID: id}, &d)
		return d
	}
	live := c.create(session.CreateParams{Directory: ws, Title: "live"})
	archived := c.create(session.CreateParams{Directory: ws, Title: "archived"})
	deleted := c.create(session.CreateParams{Directory: ws, Title: "deleted"})
	shell(live.ID, "echo live > live.txt")
	shell(archived.ID, "head -c 200000 /dev/urandom > archived.bin")
	shell(deleted.ID, "head -c 300000 /dev/urandom > deleted.bin")
	shell(deleted.ID, "rm deleted.bin") // only the deleted session's snapshots hold it now
	c.call("session/update", map[string]any{"sessionID": archived.ID, "archived": true}, nil)
	c.call("session/delete", map[string]any{"sessionID": deleted.ID}, nil)

	var res daemon.GCResult
	c.call("daemon/gc", nil, &res)
	if res.Snapshots.FreedObjects == 0 {
		t.Errorf("gc freed nothing; the deleted session's snapshots should go: %s", mustJSON(res))
	}
	if !slices.Contains(res.Pruned, archived.ID) || slices.Contains(res.Pruned, live.ID) {
		t.Errorf("pruned %v; want the archived session %s and never the live %s", res.Pruned, archived.ID, live.ID)
	}

	// The live session's history is intact; its revert still works.
	if d := diff(live.ID); len(d) != 1 || d[0].Path != "live.txt" {
		t.Fatalf("live session's diff after gc = %s; want live.txt", mustJSON(d))
	}
	var msgs []session.MessageWithParts
	c.call("session/messages", map[string]any{"sessionID": live.ID}, &msgs)
	c.call("session/revert", session.RevertParams{SessionID: live.ID, MessageID: msgs[0].Info.ID}, nil)
	if _, err := os.Stat(filepath.Join(ws, "live.txt")); !os.IsNotExist(err) {
		t.Errorf("revert of the live session after gc left live.txt (err %v)", err)
	}
	c.call("session/unrevert", map[string]any{"sessionID": live.ID}, nil)
	if b, err := os.ReadFile(filepath.Join(ws, "live.txt")); err != nil || strings.TrimSpace(string(b)) != "live" {
		t.Errorf("unrevert after gc: live.txt = %q, %v", b, err)
	}

	// The archived session keeps its messages but no file history.
	got := c.get(archived.ID)
	if !got.SnapshotsReleased {
		t.Errorf("archived session not marked snapshotsReleased: %s", mustJSON(got))
	}
	if d := diff(archived.ID); len(d) != 0 {
		t.Errorf("archived session's diff after pruning = %s; want none", mustJSON(d))
	}
	c.call("session/messages", map[string]any{"sessionID": archived.ID}, &msgs)
	if len(msgs) != 1 {
		t.Errorf("archived session has %d messages after pruning; want its 1 kept", len(msgs))
	}
	// Pruning touched no file.
	if fi, err := os.Stat(filepath.Join(ws, "archived.bin")); err != nil || fi.Size() != 200000 {
		t.Errorf("archived.bin after gc: %v, %v", fi, err)
	}
}
