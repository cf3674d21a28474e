package session

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/sessiond/sessiond/workspace/confine"
)

// Every path a client names (session/upload, a prompt's file parts) and
// every workspace file the session layer reads for the model (AGENTS.md,
// images of earlier turns, command files) goes through workspace/confine,
// the resolver the agent's tools use too: inside the checkout however it
// is spelt, never inside .git, links followed component by component.

// checkWritePath resolves p (relative to dir, or absolute) for a write
// into root and returns it relative to root, slash-separated. A refusal
// is InvalidParams on field, saying what is refused and why.
func checkWritePath(root, dir, field, p string) (string, error) {
	r, err := confine.Open(root, dir)
	if err != nil {
		return "", err
	}
	defer r.Close()
	rel, real, err := r.Check(p, "write", confine.Write)
	if err != nil {
		return "", pathParamErr(field, "write", p, err)
	}
	if rel == "." || real == "." {
		return "", paramErr(field, "cannot write %s: it is the workspace root, a directory; name a file inside it", p)
	}
	return filepath.ToSlash(rel), nil
}

// writeInRoot writes data at rel (relative to root) after resolving it
// again, so a link planted since the check cannot carry the write into
// .git or out of the workspace.
func writeInRoot(root, rel string, data []byte) error {
	r, err := confine.Open(root, "")
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = r.WriteFile(rel, "write", data)
	return err
}

// checkPromptFile resolves a file part's path p (relative to dir, or
// absolute) as every path is (workspace/confine: links followed, never
// .git, never outside) and makes sure it names a regular file of a size a
// prompt can carry. It returns the path relative to root, slash-separated;
// a refusal is InvalidParams on field.
func checkPromptFile(root, dir, field, p string) (string, error) {
	r, err := confine.Open(root, dir)
	if err != nil {
		return "", err
	}
	defer r.Close()
	rel, real, err := r.Check(p, "attach", confine.Read)
	if err != nil {
		return "", pathParamErr(field, "attach", p, err)
	}
	fi, err := r.OS().Stat(real)
	if err != nil {
		return "", pathParamErr(field, "attach", p, err)
	}
	rel = filepath.ToSlash(rel)
	if !fi.Mode().IsRegular() {
		return "", paramErr(field, "cannot attach %s: it is not a regular file", p)
	}
	limit := int64(MaxPromptFile)
	if isImage(mimeOf(rel)) {
		limit = MaxPromptImage
	}
	if fi.Size() > limit {
		return "", paramErr(field, "%s is %d bytes, more than a prompt attaches (%d): mention its path instead and let the model read it", rel, fi.Size(), limit)
	}
	return rel, nil
}

// pathParamErr is InvalidParams on field for a path that cannot be used:
// the resolver's refusal as it words it, or the file system's error in
// words.
func pathParamErr(field, verb, p string, err error) error {
	var ce *confine.Error
	msg := ""
	switch {
	case errors.As(err, &ce):
		msg = ce.Error()
	case errors.Is(err, fs.ErrNotExist):
		msg = fmt.Sprintf("cannot %s %s: it does not exist in the workspace", verb, p)
	case errors.Is(err, fs.ErrPermission):
		msg = fmt.Sprintf("cannot %s %s: permission denied", verb, p)
	case errors.Is(err, syscall.ENOTDIR):
		msg = fmt.Sprintf("cannot %s %s: part of the path is a file, not a directory", verb, p)
	case errors.Is(err, syscall.EISDIR):
		msg = fmt.Sprintf("cannot %s %s: it is a directory", verb, p)
	default:
		msg = fmt.Sprintf("cannot %s %s: %v", verb, p, plainPathErr(err))
	}
	return &ParamError{Field: field, Msg: msg}
}

// plainPathErr drops the op and path a *PathError adds: the messages
// name the path as the client gave it.
func plainPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
