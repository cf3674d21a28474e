package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

func TestColorPatch(t *testing.T) {
	const patch = "--- a/x.sql\n+++ b/x.sql\n@@ -1,3 +1,3 @@\n keep\n--- old comment\n+++ new comment\n\\ No newline at end of file\n"
	tests := []struct {
		name  string
		color bool
		want  string
	}{
		{"off", false, patch},
		{"on", true, "" +
			"\x1b[1m--- a/x.sql\x1b[0m\n" +
			"\x1b[1m+++ b/x.sql\x1b[0m\n" +
			"\x1b[36m@@ -1,3 +1,3 @@\x1b[0m\n" +
			" keep\n" +
			"\x1b[31m--- old comment\x1b[0m\n" + // a deleted line, not a header
			"\x1b[32m+++ new comment\x1b[0m\n" +
			"\\ No newline at end of file\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := colorPatch(patch, tt.color); got != tt.want {
				t.Errorf("colorPatch:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestFilePatch(t *testing.T) {
	tests := []struct {
		name string
		d    snapshot.FileDiff
		want string
	}{
		{"text", snapshot.FileDiff{Path: "a", Status: "modified", Patch: "--- a/a\n+++ b/a\n@@ -1 +1 @@\n-x\n+y\n"}, "--- a/a\n+++ b/a\n@@ -1 +1 @@\n-x\n+y\n"},
		{"binary modified", snapshot.FileDiff{Path: "i.png", Status: "modified", Binary: true}, "Binary files a/i.png and b/i.png differ\n"},
		{"binary added", snapshot.FileDiff{Path: "i.png", Status: "added", Binary: true}, "Binary files /dev/null and b/i.png differ\n"},
		{"binary deleted", snapshot.FileDiff{Path: "i.png", Status: "deleted", Binary: true}, "Binary files a/i.png and /dev/null differ\n"},
		{"skipped", snapshot.FileDiff{Path: "big.iso", Status: "added", Binary: true, Skipped: true}, "Skipped big.iso (added): over the snapshot size cap, so its content was not kept\n"},
		{"empty added", snapshot.FileDiff{Path: "e", Status: "added"}, "e: empty file added\n"},
		{"mode only", snapshot.FileDiff{Path: "run.sh", Status: "modified"}, "run.sh: modified, no line changed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := filePatch(tt.d, false); got != tt.want {
				t.Errorf("filePatch = %q, want %q", got, tt.want)
			}
		})
	}
	if got := filePatch(snapshot.FileDiff{Path: "b", Status: "modified", Binary: true}, true); got != "\x1b[1mBinary files a/b and b/b differ\x1b[0m\n" {
		t.Errorf("coloured binary line = %q", got)
	}
}

func TestStatLines(t *testing.T) {
	tests := []struct {
		name  string
		diffs []snapshot.FileDiff
		color bool
		want  []string
	}{
		{"none", nil, false, []string{"No changes."}},
		{"one", []snapshot.FileDiff{{Path: "a.go", Status: "modified", Additions: 3, Deletions: 1}}, false,
			[]string{" a.go | +3 -1", " 1 file changed, +3 -1"}},
		{"aligned, binary, skipped, statuses", []snapshot.FileDiff{
			{Path: "a", Status: "added", Additions: 2},
			{Path: "dir/long.txt", Status: "deleted", Deletions: 5},
			{Path: "img.png", Status: "modified", Binary: true},
			{Path: "big.bin", Status: "added", Binary: true, Skipped: true},
		}, false, []string{
			" a            | +2 -0 (added)",
			" dir/long.txt | +0 -5 (deleted)",
			" img.png      | binary",
			" big.bin      | skipped (over the size cap) (added)",
			" 4 files changed, +2 -5",
		}},
		{"colour", []snapshot.FileDiff{{Path: "a", Status: "modified", Additions: 1, Deletions: 2}}, true,
			[]string{" a | \x1b[32m+1\x1b[0m \x1b[31m-2\x1b[0m", " 1 file changed, +1 -2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := statLines(tt.diffs, tt.color)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("statLines:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestUseColor(t *testing.T) {
	tests := []struct {
		mode          string
		tty           bool
		noColor, term string
		want          bool
		wantErr       bool
	}{
		{"auto", true, "", "xterm", true, false},
		{"", true, "", "xterm", true, false},
		{"auto", false, "", "xterm", false, false},
		{"auto", true, "1", "xterm", false, false},
		{"auto", true, "", "dumb", false, false},
		{"always", false, "1", "dumb", true, false},
		{"never", true, "", "xterm", false, false},
		{"sometimes", true, "", "xterm", false, true},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s/tty=%v/NO_COLOR=%q/TERM=%s", tt.mode, tt.tty, tt.noColor, tt.term)
		t.Run(name, func(t *testing.T) {
			got, err := useColor(tt.mode, tt.tty, tt.noColor, tt.term)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("useColor = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		name string
		info shellInfo
		want int
	}{
		{"success", shellInfo{Status: "completed"}, 0},
		{"exit 3", shellInfo{Status: "error", ExitCode: 3}, 3},
		{"exit 127", shellInfo{Status: "error", ExitCode: 127}, 127},
		{"out of range", shellInfo{Status: "error", ExitCode: 300}, 255},
		{"timed out", shellInfo{Status: "error", ExitCode: -1, TimedOut: true, Signal: "terminated"}, 124},
		{"aborted", shellInfo{Status: "error", ExitCode: -1, Aborted: true, Signal: "terminated"}, 130},
		{"killed", shellInfo{Status: "error", ExitCode: -1, Signal: "killed"}, 137},
		{"terminated", shellInfo{Status: "error", ExitCode: -1, Signal: "terminated"}, 143},
		{"unknown signal", shellInfo{Status: "error", ExitCode: -1, Signal: "signal 99"}, 1},
		{"could not start", shellInfo{Status: "error", Error: "no such directory"}, 1},
		{"no status", shellInfo{}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitStatus(tt.info); got != tt.want {
				t.Errorf("exitStatus = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestShellPartAndFooter(t *testing.T) {
	m := session.MessageWithParts{Info: session.Message{ID: "msg_1"}, Parts: []session.Part{
		{ID: "prt_1", Type: session.PartTool, Tool: "shell", State: &session.ToolState{
			Status: "error", Title: "make test", Output: "FAIL\n", Error: "exit status 2",
		}, Metadata: map[string]any{"exitCode": 2.0, "durationMs": 1534.0, "bytes": 5.0}},
		{ID: "prt_2", Type: session.PartPatch, Files: []string{"a", "b", "c", "d", "e"}},
	}}
	info, ok := shellPart(m)
	if !ok || info.Command != "make test" || info.ExitCode != 2 || info.Duration != 1534*time.Millisecond || info.PartID != "prt_1" {
		t.Fatalf("shellPart = %+v, %v", info, ok)
	}
	want := "exit 2 · 1.5s · 5 files changed: a, b, c and 2 more"
	if got := shellFooter(info, patchFiles(m)); got != want {
		t.Errorf("shellFooter = %q, want %q", got, want)
	}
	tests := []struct {
		info shellInfo
		want string
	}{
		{shellInfo{Status: "completed", Duration: 12 * time.Millisecond}, "exit 0 · 12ms · no files changed"},
		{shellInfo{Status: "error", ExitCode: -1, TimedOut: true, Duration: 2 * time.Minute}, "timed out (exit 124) · 2m0s · no files changed"},
		{shellInfo{Status: "error", ExitCode: -1, Signal: "killed"}, "ended by signal: killed (exit 137) · 0s · no files changed"},
		{shellInfo{Status: "error", Error: "chdir /gone: no such file or directory"}, "could not run: chdir /gone: no such file or directory · 0s · no files changed"},
	}
	for _, tt := range tests {
		if got := shellFooter(tt.info, nil); got != tt.want {
			t.Errorf("shellFooter(%+v) = %q, want %q", tt.info, got, tt.want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		words []string
		want  string
	}{
		{[]string{"ls -la | wc -l"}, "ls -la | wc -l"}, // one word: a command line as is
		{[]string{"go", "test", "./..."}, "go test ./..."},
		{[]string{"echo", "a b", "it's", ""}, `echo 'a b' 'it'\''s' ''`},
		{[]string{"sh", "-c", "exit 3"}, "sh -c 'exit 3'"},
		{[]string{"grep", "-r", "$HOME", "*.go"}, `grep -r '$HOME' '*.go'`},
	}
	for _, tt := range tests {
		if got := commandLine(tt.words); got != tt.want {
			t.Errorf("commandLine(%q) = %q, want %q", tt.words, got, tt.want)
		}
	}
}

func TestKVLines(t *testing.T) {
	tests := []struct {
		raw  string
		want []string
	}{
		{`{"freedBytes": 1048576, "blobs": 12, "tookMs": 1500, "note": "ok", "big": 12345678901234567890}`,
			[]string{"big: 12345678901234567890", "blobs: 12", "freedBytes: 1.0 MiB", "note: ok", "tookMs: 1.5s"}},
		{`{"snapshots": {"freedBytes": 2048, "duration": 1500000000, "live": 3}, "store": {}, "list": [1, 2]}`,
			[]string{"list: [1,2]", "snapshots.duration: 1.5s", "snapshots.freedBytes: 2.0 KiB", "snapshots.live: 3", "store: {}"}},
		{`{}`, []string{"done (the daemon reported nothing)"}},
		{`null`, []string{"null"}},
		{`true`, []string{"true"}},
	}
	for _, tt := range tests {
		got := kvLines([]byte(tt.raw))
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("kvLines(%s) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestConflictHint(t *testing.T) {
	conflict := rpc.NewError(rpc.CodeConflict, "revert would overwrite").With("paths", []any{"a.txt", "dir/b.txt"})
	err := conflictHint(conflict, "revert", "sessiond revert ses_1 msg_1")
	var re *rpc.Error
	if !errors.As(err, &re) || re.Code != rpc.CodeConflict {
		t.Fatalf("the hint lost the protocol error (main would not exit 3): %v", err)
	}
	for _, want := range []string{"revert refused", "  a.txt\n", "  dir/b.txt\n", "`sessiond revert ses_1 msg_1 --force`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("hint %q does not say %q", err.Error(), want)
		}
	}
	busy := rpc.NewError(rpc.CodeBusy, "busy")
	if got := conflictHint(busy, "revert", "x"); got != error(busy) {
		t.Errorf("a non-conflict error was changed: %v", got)
	}
}

func TestWriteLines(t *testing.T) {
	tests := []struct {
		text, more string
		want       string
	}{
		{"", "", ""},
		{"a\nb\n", "", "> a\n> b\n"},
		{"1\n2\n3\n4", "", "> 1\n> 2\n> … 2 more lines\n"},
		{"1\n2\n3", "… (1 MiB of output in all)", "> 1\n> 2\n> … (1 MiB of output in all)\n"},
		{strings.Repeat("x", 200), "", "> " + strings.Repeat("x", 160) + "…\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		writeLines(&b, "> ", tt.text, 2, tt.more)
		if b.String() != tt.want {
			t.Errorf("writeLines(%q) = %q, want %q", tt.text, b.String(), tt.want)
		}
	}
}

func TestWriteMessage(t *testing.T) {
	shell := func(status string, meta map[string]any) session.Part {
		return session.Part{Type: session.PartTool, Tool: "shell", Metadata: meta,
			State: &session.ToolState{Status: status, Title: "make", Output: "ok\n"}}
	}
	tests := []struct {
		name     string
		parts    []session.Part
		reverted bool
		want     string
	}{
		{"shell and patch", []session.Part{
			shell("completed", map[string]any{"exitCode": 0.0, "durationMs": 40.0}),
			{Type: session.PartPatch, Files: []string{"a.txt"}},
		}, false, "── msg_1  00:00:00  user (build)\n   $ make\n   │ ok\n   exit 0 · 40ms\n   1 file changed: a.txt\n"},
		{"running, reverted", []session.Part{shell("running", nil)}, true,
			"── msg_1  00:00:00  user (build)  [reverted]\n   $ make\n   │ ok\n   still running\n"},
		{"cut output", []session.Part{shell("completed", map[string]any{"truncated": true, "bytes": 2097152.0})}, false,
			"── msg_1  00:00:00  user (build)\n   $ make\n   │ ok\n   │ … (2.0 MiB of output in all)\n   exit 0 · 0s\n"},
		{"text and steps", []session.Part{{Type: session.PartStepStart}, {Type: session.PartText, Text: "hello"}}, false,
			"── msg_1  00:00:00  user (build)\n   hello\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created := time.Now().Truncate(24 * time.Hour)
			m := session.MessageWithParts{Info: session.Message{ID: "msg_1", Role: "user", Agent: "build", Time: session.MessageTime{Created: created.UnixMilli()}}, Parts: tt.parts}
			var b strings.Builder
			writeMessage(&b, m, tt.reverted)
			want := strings.Replace(tt.want, "00:00:00", stamp(created.UnixMilli()), 1)
			if b.String() != want {
				t.Errorf("writeMessage:\n got %q\nwant %q", b.String(), want)
			}
		})
	}
}
