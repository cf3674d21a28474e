package daemon

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestParseMapsLine(t *testing.T) {
	tests := []struct {
		line   string
		start  uintptr
		end    uintptr
		shared bool
		path   string
		ok     bool
	}{
		{"7f1c2a000000-7f1c2e000000 rw-s 00000000 08:01 1234                       /d/store/000001.vlog", 0x7f1c2a000000, 0x7f1c2e000000, true, "/d/store/000001.vlog", true},
		{"00400000-00452000 r-xp 00000000 08:02 173521      /home/a user/sessiond", 0x400000, 0x452000, false, "/home/a user/sessiond", true},
		{"7ffd5b5f1000-7ffd5b612000 rw-p 00000000 00:00 0                          [stack]", 0x7ffd5b5f1000, 0x7ffd5b612000, false, "[stack]", true},
		{"7f0000000000-7f0000001000 rw-p 00000000 00:00 0 ", 0x7f0000000000, 0x7f0000001000, false, "", true},
		{"7f0000001000-7f0000000000 rw-s 00000000 00:00 0 /x", 0, 0, false, "", false}, // end before start
		{"zz-7f00 rw-s 00000000 00:00 0 /x", 0, 0, false, "", false},
		{"7f00-7f10 rw 0 0 0 /x", 0, 0, false, "", false},
		{"7f00-7f10 rw-s", 0, 0, false, "", false},
	}
	for _, tt := range tests {
		start, end, shared, path, ok := parseMapsLine([]byte(tt.line))
		if start != tt.start || end != tt.end || shared != tt.shared || string(path) != tt.path || ok != tt.ok {
			t.Errorf("parseMapsLine(%q) = %#x, %#x, %v, %q, %v; want %#x, %#x, %v, %q, %v",
				tt.line, start, end, shared, path, ok, tt.start, tt.end, tt.shared, tt.path, tt.ok)
		}
	}
}

// mapTouched maps size bytes of a new file in dir, shared, and writes every
// page, as Badger does with its value log.
func mapTouched(t *testing.T, dir string, size int) []byte {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "mapped"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(b) })
	for i := 0; i < size; i += os.Getpagesize() {
		b[i] = byte(i)
	}
	return b
}

// mappedRss returns the resident bytes of this process's mapping of path.
func mappedRss(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		l := sc.Text()
		if _, _, _, p, ok := parseMapsLine([]byte(l)); ok {
			in = string(p) == path
			continue
		}
		if v, found := strings.CutPrefix(l, "Rss:"); found && in {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no mapping of %s in /proc/self/smaps", path)
	return 0
}

// The pages of the store's mapped files leave the resident set, and their
// contents stay; a mapping outside the store is left alone.
func TestReleaseMapped(t *testing.T) {
	const size = 8 << 20
	store, other := t.TempDir(), t.TempDir()
	mine, theirs := mapTouched(t, store, size), mapTouched(t, other, size)
	minePath, theirPath := filepath.Join(store, "mapped"), filepath.Join(other, "mapped")
	if rss := mappedRss(t, minePath); rss < size/2 {
		t.Fatalf("touched mapping has only %d resident bytes", rss)
	}
	n, err := releaseMapped(store)
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Errorf("released mappings spanning %d bytes, want %d", n, size)
	}
	if rss := mappedRss(t, minePath); rss > size/4 {
		t.Errorf("after releaseMapped the store's mapping still has %d resident bytes (MADV_PAGEOUT unsupported?)", rss)
	}
	if rss := mappedRss(t, theirPath); rss < size/2 {
		t.Errorf("a mapping outside the store lost its pages: %d resident bytes", rss)
	}
	for i := 0; i < size; i += os.Getpagesize() {
		if mine[i] != byte(i) || theirs[i] != byte(i) {
			t.Fatalf("byte %d changed", i)
		}
	}
}
