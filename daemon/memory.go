package daemon

import (
	"path/filepath"
	"runtime/debug"
	"time"
)

// memoryCheckEvery is how often a serving daemon looks whether its clients
// have gone quiet. Memory is given back one to two periods after the last
// message of a burst: soon enough that an idle daemon is small again within
// a minute, late enough not to run in the middle of the burst.
const memoryCheckEvery = 5 * time.Second

// activity counts what makes the daemon grow: messages its connections
// read and changes it published (a prompt turn streams without requests).
func (d *Daemon) activity() uint64 {
	return d.mux.MessagesRead() + d.hub.published.Load()
}

// trimmer decides, every memoryCheckEvery, whether to give memory back.
type trimmer struct {
	seen  uint64 // activity at the last check
	busy  bool   // activity since the last release
	floor int64  // resident bytes after the last release (Linux)
	again bool   // the last release gave back much: check again
}

func (d *Daemon) newTrimmer() *trimmer {
	floor, _ := residentBytes()
	return &trimmer{seen: d.activity(), floor: floor}
}

// checkMemory releases memory when the clients have been quiet for a
// whole period and the daemon has grown since its last release, and again
// at the next check after a release that gave back much: what was still
// in use then (Badger compacts after a burst of writes) is free by now.
// Where the resident set cannot be read, it releases after every burst.
func (d *Daemon) checkMemory(t *trimmer, why string) {
	if a := d.activity(); a != t.seen {
		t.seen, t.busy = a, true
		return
	}
	rss, ok := residentBytes()
	margin := max(16<<20, t.floor/4)
	switch {
	case !ok:
		if !t.busy {
			return
		}
	case !t.again && rss <= t.floor+margin:
		return
	}
	d.releaseMemory(why)
	after, _ := residentBytes()
	t.busy, t.again, t.floor = false, ok && rss-after > margin, after
}

// releaseMemory gives the memory a burst of work left behind back to the
// system. The Go runtime keeps freed heap for reuse and returns it slowly,
// and only after a collection that an idle daemon would not run for two
// minutes, so it collects and returns all free heap now. Badger maps its
// tables and value log: every page of them the daemon read or wrote stays
// in its resident set until the kernel needs the memory, so it asks the
// kernel to take those pages back too (the data stays in the files).
func (d *Daemon) releaseMemory(why string) {
	t0 := time.Now()
	debug.FreeOSMemory()
	dir := d.cfg.StorePath()
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	n, err := releaseMapped(dir)
	if err != nil {
		d.log.Warn("cannot give the store's mapped pages back to the kernel", "err", err)
	}
	d.log.Debug("gave memory back", "why", why, "mappedBytes", n, "took", time.Since(t0))
}
