package writetrace

import (
	"slices"
	"testing"
)

func TestHasInnerDotDot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path string
		want bool
	}{
		{"a/b", false},
		{"../a", false},
		{"../../a/b", false},
		{"./../a", false},
		{"/abs/path", false},
		{"a/../b", true},
		{"/x/../y", true},
		{"../a/../b", true},
		{"a/./..", true},
	}
	for _, tt := range tests {
		if got := hasInnerDotDot(tt.path); got != tt.want {
			t.Errorf("hasInnerDotDot(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestJoinPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base, path, want string
	}{
		{"/w", "f", "/w/f"},
		{"/w", "./sub//f/", "/w/sub/f"},
		{"/w/sub", "../f", "/w/f"},
		{"/w", "/abs/./f", "/abs/f"},
		{"/", "f", "/f"},
		{"/w", "../../..", "/"},
	}
	for _, tt := range tests {
		if got := joinPath(tt.base, tt.path); got != tt.want {
			t.Errorf("joinPath(%q, %q) = %q, want %q", tt.base, tt.path, got, tt.want)
		}
	}
}

func TestWriteSet(t *testing.T) {
	t.Parallel()
	s := writeSet{}
	s.add("/w/b", false)
	s.add("/w/a", true)
	s.add("/w/b", true) // a tree stays a tree
	s.add("/w/a", false)
	s.add("/w/c", false)
	want := []Write{{"/w/a", true}, {"/w/b", true}, {"/w/c", false}}
	if got := s.sorted(); !slices.Equal(got, want) {
		t.Errorf("sorted() = %+v, want %+v", got, want)
	}
}
