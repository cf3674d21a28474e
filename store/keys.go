package store

// The key layout. Every record kind has a short prefix; records are JSON.
// IDs are fixed-length and time-sortable, so a prefix scan in key order is a
// scan in creation order, and a reverse scan is newest first. Free-form
// components (user IDs, state keys, directory identities) end with a NUL
// byte so that one value can never be a prefix of another; callers reject
// NUL in them.
//
//	meta/schema                     schema version (uint64, big endian)
//	prj/<prjID>                     Project
//	prjk/<identity>\0               prjID for an identity ("git:<root commit>" or "path:<dir>")
//	ses/<sesID>                     Session
//	sesp/<prjID>/<sesID>            index: the sessions of a project
//	sesc/<parentID>/<sesID>         index: the children of a session
//	msg/<sesID>/<msgID>             Message
//	prt/<sesID>/<msgID>/<prtID>     Part
//	evt/<sesID>/<evtID>             Event
//	sta/<key>\0                     state, app: scope
//	stu/<userID>\0<key>\0           state, user: scope
//	sts/<sesID>/<key>\0             state, session scope
//	purge/<sesID>                   a session delete whose data is still being removed
//	sexp/<sesID>/<path>\0           what a session last left at path (time machine)
//	jrnl/<sesID>                    a revert or unrevert being applied to the files
//	turn/<sesID>                    the message of a turn that is running (finished at start if the daemon died)
//	out/<sesID>/<prtID>             the whole output of a part whose inline output was cut
//	obj/b/<hash>                    blob: codec byte, then content (hash: SHA-256 of the content, hex)
//	obj/t/<hash>                    tree: binary entries (see EncodeTree); hash: SHA-256 of the value
//	fidm/<idxID>                    file index of one workspace root: its meta (root, root tree)
//	fidx/<idxID>/<dir>\0<name>      file index entry: stat and hash of one path (dir "" is the root)

// KeySchema is where the schema version lives.
func KeySchema() []byte { return []byte("meta/schema") }

// KeyProject is a Project record.
func KeyProject(id string) []byte { return cat("prj/", id) }

// PrefixProjects covers every Project record.
func PrefixProjects() []byte { return []byte("prj/") }

// KeyProjectIdentity maps a project identity to its ID.
func KeyProjectIdentity(identity string) []byte { return cat("prjk/", identity, "\x00") }

// KeySession is a Session record.
func KeySession(id string) []byte { return cat("ses/", id) }

// PrefixSessions covers every Session record, oldest first.
func PrefixSessions() []byte { return []byte("ses/") }

// KeySessionByProject indexes a session under its project.
func KeySessionByProject(projectID, sessionID string) []byte {
	return cat("sesp/", projectID, "/", sessionID)
}

// PrefixSessionsByProject covers the index of one project.
func PrefixSessionsByProject(projectID string) []byte { return cat("sesp/", projectID, "/") }

// KeySessionByParent indexes a session under its parent.
func KeySessionByParent(parentID, sessionID string) []byte {
	return cat("sesc/", parentID, "/", sessionID)
}

// PrefixSessionsByParent covers the children of one session.
func PrefixSessionsByParent(parentID string) []byte { return cat("sesc/", parentID, "/") }

// KeyMessage is a Message record.
func KeyMessage(sessionID, messageID string) []byte {
	return cat("msg/", sessionID, "/", messageID)
}

// PrefixMessages covers the messages of one session, oldest first.
func PrefixMessages(sessionID string) []byte { return cat("msg/", sessionID, "/") }

// KeyPart is a Part record.
func KeyPart(sessionID, messageID, partID string) []byte {
	return cat("prt/", sessionID, "/", messageID, "/", partID)
}

// PrefixParts covers the parts of one message, in order.
func PrefixParts(sessionID, messageID string) []byte {
	return cat("prt/", sessionID, "/", messageID, "/")
}

// PrefixSessionParts covers the parts of every message of one session.
func PrefixSessionParts(sessionID string) []byte { return cat("prt/", sessionID, "/") }

// KeyEvent is an Event record.
func KeyEvent(sessionID, eventID string) []byte { return cat("evt/", sessionID, "/", eventID) }

// PrefixEvents covers the event log of one session, oldest first.
func PrefixEvents(sessionID string) []byte { return cat("evt/", sessionID, "/") }

// KeyAppState is one app: state key.
func KeyAppState(key string) []byte { return cat("sta/", key, "\x00") }

// PrefixAppState covers all app: state.
func PrefixAppState() []byte { return []byte("sta/") }

// KeyUserState is one user: state key of userID.
func KeyUserState(userID, key string) []byte { return cat("stu/", userID, "\x00", key, "\x00") }

// PrefixUserState covers the user: state of userID.
func PrefixUserState(userID string) []byte { return cat("stu/", userID, "\x00") }

// KeySessionState is one session-scoped state key.
func KeySessionState(sessionID, key string) []byte {
	return cat("sts/", sessionID, "/", key, "\x00")
}

// PrefixSessionState covers the state of one session.
func PrefixSessionState(sessionID string) []byte { return cat("sts/", sessionID, "/") }

// KeyPurge marks a deleted session whose data is still being removed.
func KeyPurge(sessionID string) []byte { return cat("purge/", sessionID) }

// PrefixPurge covers all pending purges.
func PrefixPurge() []byte { return []byte("purge/") }

// LastComponent returns the part of key after the last '/', which for
// index keys is the indexed ID.
func LastComponent(key []byte) string {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return string(key[i+1:])
		}
	}
	return string(key)
}

// TrimNUL returns the free-form component of key between prefix and the
// trailing NUL.
func TrimNUL(key, prefix []byte) string {
	s := key[len(prefix):]
	if n := len(s); n > 0 && s[n-1] == 0 {
		s = s[:n-1]
	}
	return string(s)
}

func cat(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// Objects and file indexes. Objects are shared by every project; a file
// index belongs to one workspace root, named by a fixed-length idxID (hex,
// no '/') that its owner derives from the root path. Index entries put a
// NUL between directory and name, so the children of a directory are one
// prefix scan and never mix with those of a sibling whose name extends it.

// KeyBlob is a blob object.
func KeyBlob(h Hash) []byte { return cat("obj/b/", h.String()) }

// KeyTree is a tree object.
func KeyTree(h Hash) []byte { return cat("obj/t/", h.String()) }

// PrefixBlobs covers every blob.
func PrefixBlobs() []byte { return []byte("obj/b/") }

// PrefixTrees covers every tree.
func PrefixTrees() []byte { return []byte("obj/t/") }

// KeyFileIndexMeta is the meta record of one file index.
func KeyFileIndexMeta(idxID string) []byte { return cat("fidm/", idxID) }

// PrefixFileIndexMetas covers the meta records of every file index.
func PrefixFileIndexMetas() []byte { return []byte("fidm/") }

// KeyFileIndexEntry is the entry of name in directory dir ("" for the
// root; slash-separated, no leading or trailing slash).
func KeyFileIndexEntry(idxID, dir, name string) []byte {
	return cat("fidx/", idxID, "/", dir, "\x00", name)
}

// PrefixFileIndexDir covers the entries of the direct children of dir.
func PrefixFileIndexDir(idxID, dir string) []byte { return cat("fidx/", idxID, "/", dir, "\x00") }

// PrefixFileIndexBelow covers the entries of everything below dir except
// its direct children (those are PrefixFileIndexDir); for the root, it
// covers the whole index.
func PrefixFileIndexBelow(idxID, dir string) []byte {
	if dir == "" {
		return PrefixFileIndex(idxID)
	}
	return cat("fidx/", idxID, "/", dir, "/")
}

// PrefixFileIndex covers every entry of one file index.
func PrefixFileIndex(idxID string) []byte { return cat("fidx/", idxID, "/") }

// The time machine's per-session records (see the table at the top).

// KeyExpected is what the session last left at path.
func KeyExpected(sessionID, path string) []byte { return cat("sexp/", sessionID, "/", path, "\x00") }

// PrefixExpected covers every path a session has changed.
func PrefixExpected(sessionID string) []byte { return cat("sexp/", sessionID, "/") }

// KeyJournal is the file journal of a session's revert or unrevert.
func KeyJournal(sessionID string) []byte { return cat("jrnl/", sessionID) }

// PrefixJournals covers every pending journal.
func PrefixJournals() []byte { return []byte("jrnl/") }

// KeyTurn marks a session's turn in progress: it names the message that
// records it, so a daemon killed mid-turn finishes that record at start.
func KeyTurn(sessionID string) []byte { return cat("turn/", sessionID) }

// PrefixTurns covers every turn in progress.
func PrefixTurns() []byte { return []byte("turn/") }

// KeyOutput is the whole output of a shell or tool part whose inline
// output was cut.
func KeyOutput(sessionID, partID string) []byte { return cat("out/", sessionID, "/", partID) }

// PrefixOutputs covers the stored outputs of one session.
func PrefixOutputs(sessionID string) []byte { return cat("out/", sessionID, "/") }
