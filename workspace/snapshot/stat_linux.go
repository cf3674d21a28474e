package snapshot

import (
	"io/fs"
	"syscall"
)

// statExtra returns the inode number and ctime (ns) of fi, or zeros.
func statExtra(fi fs.FileInfo) (ino uint64, ctime int64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	return st.Ino, st.Ctim.Nano()
}
