package snapshot

import (
	"context"
	"slices"
	"testing"
)

// TestOverlay checks that a turn's snapshot takes only the paths it claims
// from a capture that also holds other people's changes.
func TestOverlay(t *testing.T) {
	tests := []struct {
		name string
		// change edits the workspace after the base capture.
		change func(t *testing.T, root string)
		paths  []string
		// want lists the paths that differ from base afterwards.
		want []string
		// same lists paths whose entry must equal the capture's.
		same []string
	}{
		{
			name: "a claimed edit is taken, a person's edit is not",
			change: func(t *testing.T, root string) {
				write(t, root, "a.txt", "agent", 0o644)
				write(t, root, "notes.txt", "person", 0o644)
			},
			paths: []string{"a.txt"},
			want:  []string{"a.txt"},
			same:  []string{"a.txt"},
		},
		{
			name: "a new file in a new directory brings the directory, not its other files",
			change: func(t *testing.T, root string) {
				write(t, root, "gen/out/x.go", "package x", 0o644)
				write(t, root, "gen/out/person.txt", "mine", 0o644)
			},
			paths: []string{"gen/out/x.go"},
			want:  []string{"gen", "gen/out", "gen/out/x.go"},
			same:  []string{"gen/out/x.go"},
		},
		{
			name: "a claimed removal removes, an unclaimed one stays",
			change: func(t *testing.T, root string) {
				remove(t, root, "keep/old.txt")
				remove(t, root, "b.txt")
			},
			paths: []string{"b.txt"},
			want:  []string{"b.txt"},
			same:  []string{"b.txt"},
		},
		{
			name: "a claimed mode change",
			change: func(t *testing.T, root string) {
				write(t, root, "run.sh", "#!/bin/sh", 0o755)
			},
			paths: []string{"run.sh"},
			want:  []string{"run.sh"},
			same:  []string{"run.sh"},
		},
		{
			name: "an empty directory made by the turn",
			change: func(t *testing.T, root string) {
				mkdir(t, root, "build/cache")
				mkdir(t, root, "person")
			},
			paths: []string{"build", "build/cache"},
			want:  []string{"build", "build/cache"},
			same:  []string{"build/cache"},
		},
		{
			name: "a claim of a path nothing changed changes nothing",
			change: func(t *testing.T, root string) {
				write(t, root, "notes.txt", "person", 0o644)
			},
			paths: []string{"b.txt", "missing/dir/file"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newEnv(t, Options{})
			write(t, v.root, "b.txt", "b", 0o644)
			write(t, v.root, "run.sh", "#!/bin/sh", 0o644)
			write(t, v.root, "keep/old.txt", "old", 0o644)
			base := v.capture(nil, nil)
			tc.change(t, v.root)
			from := v.capture(nil, nil)
			got, err := v.e.Overlay(context.Background(), base, from, tc.paths)
			if err != nil {
				t.Fatal(err)
			}
			changed := v.changed(base, got)
			if !slices.Equal(changed, tc.want) {
				t.Errorf("overlay changed %q, want %q", changed, tc.want)
			}
			for _, p := range tc.same {
				if a, b := v.lookup(got, p), v.lookup(from, p); a != b {
					t.Errorf("%s: overlay has %+v, the capture %+v", p, a, b)
				}
			}
			// The overlay is a real snapshot: reading and diffing it works.
			if _, err := v.e.Diff(context.Background(), base, got, true); err != nil {
				t.Errorf("diff the overlay: %v", err)
			}
		})
	}
}
