package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// madvPageout is MADV_PAGEOUT (Linux 5.4): reclaim these pages now.
const madvPageout = 21

// releaseMapped asks the kernel to reclaim the pages of the files under dir
// that this process has mapped shared, and returns the bytes those
// mappings span. MADV_PAGEOUT never loses data: a file page is written back
// or kept if dirty, and an anonymous one goes to swap or stays; so it is
// harmless even if a mapping was replaced after /proc/self/maps was read.
func releaseMapped(dir string) (int64, error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("read /proc/self/maps: %w", err)
	}
	prefix := []byte(dir + "/")
	var total int64
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		start, end, shared, path, ok := parseMapsLine(sc.Bytes())
		if !ok || !shared || !bytes.HasPrefix(path, prefix) {
			continue
		}
		_, _, e := syscall.Syscall(syscall.SYS_MADVISE, start, end-start, madvPageout)
		if e == syscall.EINVAL {
			return total, nil // a kernel before 5.4: nothing to do
		}
		if e != 0 && e != syscall.ENOMEM { // ENOMEM: unmapped since
			return total, fmt.Errorf("madvise %s: %w", path, e)
		}
		total += int64(end - start)
	}
	if err := sc.Err(); err != nil {
		return total, fmt.Errorf("read /proc/self/maps: %w", err)
	}
	return total, nil
}

// parseMapsLine splits a /proc/self/maps line, "start-end perms offset
// dev inode path", where the path may hold spaces.
func parseMapsLine(l []byte) (start, end uintptr, shared bool, path []byte, ok bool) {
	var f [5][]byte
	rest := l
	for i := range f {
		rest = bytes.TrimLeft(rest, " ")
		j := bytes.IndexByte(rest, ' ')
		if j < 0 {
			return 0, 0, false, nil, false
		}
		f[i], rest = rest[:j], rest[j:]
	}
	lo, hi, found := bytes.Cut(f[0], []byte("-"))
	if !found || len(f[1]) != 4 {
		return 0, 0, false, nil, false
	}
	s, err1 := strconv.ParseUint(string(lo), 16, 64)
	e, err2 := strconv.ParseUint(string(hi), 16, 64)
	if err := errors.Join(err1, err2); err != nil || e <= s {
		return 0, 0, false, nil, false
	}
	return uintptr(s), uintptr(e), f[1][3] == 's', bytes.TrimLeft(rest, " "), true
}

// residentBytes returns the process's resident set (the second field of
// /proc/self/statm, in pages).
func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}
