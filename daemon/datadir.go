package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// PrepareDataDir creates the data dir (0700) when it is missing and
// refuses one that belongs to another user: the store, the log and the
// socket there would be theirs to read and to tamper with, and ours to
// overwrite. Call it before anything is written in the data dir.
func PrepareDataDir(cfg Config) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w; pass another --data-dir (or SESSIOND_DATA_DIR)", cfg.DataDir, err)
	}
	fi, err := os.Stat(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data dir %s is not a directory: remove it, or pass another --data-dir (or SESSIOND_DATA_DIR)", cfg.DataDir)
	}
	if uid, ok := otherOwner(fi); ok {
		return fmt.Errorf("data dir %s belongs to %s, but sessiond runs as %s: it keeps your sessions only in a directory of yours; pass another --data-dir (or SESSIOND_DATA_DIR), or take it over with `chown -R %d %s` if it is yours",
			cfg.DataDir, describeUID(uid), describeUID(os.Getuid()), os.Getuid(), cfg.DataDir)
	}
	return nil
}

// otherOwner returns the owner of fi when that is not this process's user.
func otherOwner(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	uid := int(st.Uid)
	return uid, uid != os.Getuid()
}

// describeUID names a user for a message: "user alice (uid 1000)", or
// "uid 1000" when the name is unknown.
func describeUID(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return fmt.Sprintf("user %s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// OpenPrivateFile opens a file of the data dir (the log, the lock, the
// owner record, the daemon's stderr) without following a symbolic link
// (O_NOFOLLOW): a link planted there would otherwise make the daemon
// append to, or truncate, whatever file it points at. It refuses, with a
// message naming the fix, a link, anything but a regular file, a file
// with other hard links (the same trick without a link) and a file of
// another user.
func OpenPrivateFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	// O_NONBLOCK: opening a named pipe for writing would otherwise wait
	// for a reader.
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, perm)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			to := ""
			if target, err := os.Readlink(path); err == nil {
				to = " (to " + target + ")"
			}
			return nil, fmt.Errorf("%s is a symbolic link%s: sessiond writes its own files only, never through a link; remove the link (rm %s) and start again", path, to, path)
		}
		if errors.Is(err, syscall.ENXIO) {
			return nil, fmt.Errorf("%s is not a regular file: remove it (rm %s) and start again", path, path)
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	var problem string
	switch st, _ := fi.Sys().(*syscall.Stat_t); {
	case !fi.Mode().IsRegular():
		problem = fmt.Sprintf("is not a regular file (%s)", fi.Mode().Type())
	case st != nil && st.Nlink > 1:
		problem = fmt.Sprintf("has %d hard links, so writing it would change another file too", st.Nlink)
	case st != nil && int(st.Uid) != os.Getuid():
		problem = fmt.Sprintf("belongs to %s, not to you", describeUID(int(st.Uid)))
	}
	if problem != "" {
		f.Close()
		return nil, fmt.Errorf("%s %s: remove it (rm %s) and start again", path, problem, path)
	}
	return f, nil
}
