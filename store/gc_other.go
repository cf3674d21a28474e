//go:build !unix

package store

import "io/fs"

// allocated returns the size of a file; without block counts this
// overstates Badger's sparse preallocated files.
func allocated(fi fs.FileInfo) int64 { return fi.Size() }
