package shellrun

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/session/shellrun/writetrace"
)

// BenchmarkTraceWrites compares a command run untraced and traced. The
// traced run pays for the shim (here the test binary) once and a round
// trip to the supervisor per call that changes the file tree; reads run
// at full speed.
func BenchmarkTraceWrites(b *testing.B) {
	if ok, why := writetrace.Probe(b.Context()); !ok {
		b.Skip("write tracing is unavailable here:", why)
	}
	cases := []struct {
		name    string
		setup   func(b *testing.B, dir string)
		command string
		want    int // writes the traced run must report, at least
	}{
		// The fixed cost: starting through the shim.
		{name: "true", command: "true"},
		{
			// 5,000 truncating opens of one empty file: the cost of a stop.
			name:    "stops-5000",
			command: `i=0; while [ $i -lt 5000 ]; do : > f; i=$((i+1)); done`,
			want:    1,
		},
		{
			// 2,000 files created, appended to and deleted: 6,000 stops.
			name:    "write-2000",
			command: `i=0; while [ $i -lt 2000 ]; do echo a > f$i; echo b >> f$i; i=$((i+1)); done; rm -f f*`,
			want:    2000,
		},
		{
			// 3,000 files of 1 KiB in 30 directories, each read twice.
			name:    "read-3000",
			setup:   readTree,
			command: `find . -type f | xargs cat | wc -c; grep -rc zzz . | wc -l; ls -lR | wc -l`,
		},
		{name: "gcc", setup: helloC, command: "gcc -O0 -o hello hello.c && ./hello", want: 1},
	}
	for _, c := range cases {
		for _, trace := range []bool{false, true} {
			name := c.name + "/untraced"
			if trace {
				name = c.name + "/traced"
			}
			b.Run(name, func(b *testing.B) {
				dir := b.TempDir()
				if c.setup != nil {
					c.setup(b, dir)
				}
				opts := Options{Dir: dir, Shell: "/bin/sh", Command: c.command, TraceWrites: trace}
				for b.Loop() {
					res, err := Run(b.Context(), opts)
					if err != nil || res.ExitCode != 0 {
						b.Fatalf("%v, exit %d: %s", err, res.ExitCode, res.Output)
					}
					if trace && (!res.Writes.Available || len(res.Writes.Writes) < c.want) {
						b.Fatalf("report %v (%s), %d writes; want at least %d", res.Writes.Available, res.Writes.Reason, len(res.Writes.Writes), c.want)
					}
				}
			})
		}
	}
}

func readTree(b *testing.B, dir string) {
	content := []byte(strings.Repeat("0123456789abcdef", 64))
	for d := range 30 {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", d))
		if err := os.Mkdir(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d.txt", f)), content, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func helloC(b *testing.B, dir string) {
	if _, err := exec.LookPath("gcc"); err != nil {
		b.Skip("no gcc")
	}
	src := "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n"
	if err := os.WriteFile(filepath.Join(dir, "hello.c"), []byte(src), 0o644); err != nil {
		b.Fatal(err)
	}
}
