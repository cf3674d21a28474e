// Package writetrace reports which files a command's process tree asked
// to modify.
package writetrace

// Report is what a traced command wrote.
type Report struct {
	// Available is false when the command was not traced, or not wholly:
	// nothing is known then, and Reason says why.
	Available bool
	Reason    string
	Writes    []Write
}

// Write is one path the command's processes asked to modify: absolute
// and cleaned, as the process named it.
type Write struct {
	Path string
	// Tree is set for renames: everything below Path changed too.
	Tree bool
}
