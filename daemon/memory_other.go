//go:build !linux

package daemon

// releaseMapped has nothing to do where the kernel offers no way to give
// mapped file pages back; they are reclaimed under memory pressure.
func releaseMapped(string) (int64, error) { return 0, nil }

// residentBytes is not known here; the daemon then releases memory after
// every burst instead of when it grew.
func residentBytes() (int64, bool) { return 0, false }
