package e2e

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/session"
)

// An upload over the snapshot size cap could not be reverted (snapshots
// skip such files), so it is refused and nothing is written.
func TestUploadOverSizeCapRefused(t *testing.T) {
	s := newSandbox(t)
	s.serve("--idle-timeout", "0", "--max-file-size", "1024")
	c := s.dial()
	ws := s.dir("ws")
	ses := c.create(session.CreateParams{Directory: ws})
	big := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 2000)))
	e := c.callErr("session/upload", session.UploadParams{SessionID: ses.ID, Path: "big.txt", Content: big})
	if e.Code != -32602 || e.Data["field"] != "content" || !strings.Contains(e.Message, "max-file-size") {
		t.Fatalf("upload over the cap = %d %q %v; want InvalidParams on content naming --max-file-size", e.Code, e.Message, e.Data)
	}
	if _, err := os.Stat(filepath.Join(ws, "big.txt")); !os.IsNotExist(err) {
		t.Errorf("big.txt exists after the refused upload (err %v)", err)
	}
	var msgs []session.MessageWithParts
	c.call("session/messages", map[string]any{"sessionID": ses.ID}, &msgs)
	if len(msgs) != 0 {
		t.Errorf("the refused upload recorded %d messages", len(msgs))
	}
	// Under the cap it works and is revertible.
	small := base64.StdEncoding.EncodeToString([]byte("small\n"))
	var m session.MessageWithParts
	c.call("session/upload", session.UploadParams{SessionID: ses.ID, Path: "small.txt", Content: small}, &m)
	c.call("session/revert", session.RevertParams{SessionID: ses.ID, MessageID: m.Info.ID}, nil)
	if _, err := os.Stat(filepath.Join(ws, "small.txt")); !os.IsNotExist(err) {
		t.Errorf("revert left small.txt (err %v)", err)
	}
}
