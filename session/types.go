package session

import "encoding/json"

// Lifecycle states of a session (DESIGN §2): running ⇄ paused → stopped;
// archived is set and cleared through session/update.
const (
	LifecycleRunning  = "running"
	LifecyclePaused   = "paused"
	LifecycleStopped  = "stopped"
	LifecycleArchived = "archived"
)

// Message roles.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleSystem    = "system"
)

// Session is one conversation in one workspace. Times are epoch
// milliseconds everywhere in the protocol.
type Session struct {
	ID         string          `json:"id"`
	ProjectID  string          `json:"projectID"`
	Directory  string          `json:"directory"`
	ParentID   string          `json:"parentID,omitempty"`
	RootID     string          `json:"rootID"`
	Depth      int             `json:"depth"`
	ForkedFrom *ForkRef        `json:"forkedFrom,omitempty"`
	Title      string          `json:"title"`
	UserID     string          `json:"userID,omitempty"`
	Agent      string          `json:"agent"`
	Model      *ModelRef       `json:"model,omitempty"`
	Permission json.RawMessage `json:"permission,omitempty"`
	Lifecycle  string          `json:"lifecycle"`
	// ArchivedFrom is the lifecycle an archived session returns to.
	ArchivedFrom string       `json:"archivedFrom,omitempty"`
	Revert       *RevertState `json:"revert,omitempty"`
	// RevertConflicts lists the paths the last revert or unrevert left
	// alone because someone else changed them after it was planned.
	RevertConflicts *RevertConflicts `json:"revertConflicts,omitempty"`
	// PendingJournal is a revert or unrevert that could not finish and
	// waits for session/journal/retry or session/journal/abandon.
	PendingJournal *PendingJournal `json:"pendingJournal,omitempty"`
	// SnapshotsReleased says the store gave up this (archived) session's
	// snapshots to stay within its disk budget: its messages remain, its
	// file history does not.
	SnapshotsReleased bool           `json:"snapshotsReleased,omitempty"`
	Share             *Share         `json:"share,omitempty"`
	Summary           *ChangeSummary `json:"summary,omitempty"`
	Usage             Usage          `json:"usage"`
	Metadata          map[string]any `json:"metadata,omitempty"`
	MessageCount      int            `json:"messageCount"`
	Time              SessionTime    `json:"time"`
	// Version counts the changes to this record, so a client can tell a
	// stale copy from a fresh one.
	Version int64 `json:"version"`

	// UsageByModel splits Usage by model, "provider/model".
	UsageByModel map[string]Usage `json:"usageByModel,omitempty"`
}

// SessionTime holds a session's timestamps (epoch ms).
type SessionTime struct {
	Created  int64 `json:"created"`
	Updated  int64 `json:"updated"`
	Archived int64 `json:"archived,omitempty"`
}

// ForkRef names the session and message a fork was copied from.
type ForkRef struct {
	SessionID string `json:"sessionID"`
	MessageID string `json:"messageID,omitempty"`
}

// ModelRef picks a model of a provider.
type ModelRef struct {
	ProviderID string `json:"providerID"`
	ModelID    string `json:"modelID"`
}

// RevertState says a session's files are reverted to before MessageID
// (and PartID): messages from there on are hidden, and Snapshot holds the
// files as they were before the first revert, for session/unrevert.
type RevertState struct {
	MessageID string   `json:"messageID"`
	PartID    string   `json:"partID,omitempty"`
	Snapshot  string   `json:"snapshot"`
	Files     []string `json:"files"`
}

// Share is a session's read-only link.
type Share struct {
	URL string `json:"url"`
}

// ChangeSummary counts what a session changed in its workspace.
type ChangeSummary struct {
	Additions int `json:"additions"`
	Deletions int `json:"deletions"`
	Files     int `json:"files"`
}

// Usage totals tokens and cost.
type Usage struct {
	Input      int64   `json:"input"`
	Output     int64   `json:"output"`
	Reasoning  int64   `json:"reasoning"`
	CacheRead  int64   `json:"cacheRead"`
	CacheWrite int64   `json:"cacheWrite"`
	Cost       float64 `json:"cost"`
}

// Message is one turn's message; its content is in Parts.
type Message struct {
	ID        string        `json:"id"`
	SessionID string        `json:"sessionID"`
	Role      string        `json:"role"`
	Time      MessageTime   `json:"time"`
	Agent     string        `json:"agent,omitempty"`
	Model     *ModelRef     `json:"model,omitempty"`
	Variant   string        `json:"variant,omitempty"`
	ParentID  string        `json:"parentID,omitempty"`
	Tokens    *Tokens       `json:"tokens,omitempty"`
	Cost      float64       `json:"cost,omitempty"`
	Finish    string        `json:"finish,omitempty"`
	Error     *MessageError `json:"error,omitempty"`
	Snapshot  *SnapshotPair `json:"snapshot,omitempty"`
	// EventID is the log event this message was recorded from, if any.
	EventID string `json:"eventID,omitempty"`
}

// MessageTime holds a message's timestamps (epoch ms).
type MessageTime struct {
	Created   int64 `json:"created"`
	Completed int64 `json:"completed,omitempty"`
}

// Tokens counts a message's tokens.
type Tokens struct {
	Input     int64      `json:"input"`
	Output    int64      `json:"output"`
	Reasoning int64      `json:"reasoning"`
	Cache     CacheUsage `json:"cache"`
}

// CacheUsage counts prompt-cache tokens.
type CacheUsage struct {
	Read  int64 `json:"read"`
	Write int64 `json:"write"`
}

// MessageError says why a message did not complete.
type MessageError struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// SnapshotPair names the workspace snapshots around a turn.
type SnapshotPair struct {
	Before string `json:"before,omitempty"`
	// After is Before with the changes the turn can show it made: what
	// its write tools named and what its traced commands wrote. A
	// person's edit made while the turn ran is not in it.
	After string `json:"after,omitempty"`
	// Unattributed lists paths that changed while the turn ran but that
	// sessiond cannot tell the turn wrote (a command ran where its writes
	// could not be traced). They are not in After; a revert to before
	// this turn lists them as a Conflict and writes them only with force.
	Unattributed []string `json:"unattributed,omitempty"`
	// UnattributedReason says why they could not be attributed.
	UnattributedReason string `json:"unattributedReason,omitempty"`
}

// Part types.
const (
	PartText       = "text"
	PartReasoning  = "reasoning"
	PartFile       = "file"
	PartTool       = "tool"
	PartStepStart  = "step-start"
	PartStepFinish = "step-finish"
	PartPatch      = "patch"
	PartSubtask    = "subtask"
	PartRetry      = "retry"
	PartCompaction = "compaction"
)

// Part is one ordered piece of a message. Which fields are set depends on
// Type; the others are omitted on the wire.
type Part struct {
	ID        string `json:"id"`
	SessionID string `json:"sessionID"`
	MessageID string `json:"messageID"`
	Type      string `json:"type"`

	// text, reasoning
	Text string `json:"text,omitempty"`
	// file
	Path     string `json:"path,omitempty"`
	URL      string `json:"url,omitempty"`
	Mime     string `json:"mime,omitempty"`
	Filename string `json:"filename,omitempty"`
	// tool
	CallID string     `json:"callID,omitempty"`
	Tool   string     `json:"tool,omitempty"`
	State  *ToolState `json:"state,omitempty"`
	// step-start, step-finish
	Snapshot string  `json:"snapshot,omitempty"`
	Tokens   *Tokens `json:"tokens,omitempty"`
	Cost     float64 `json:"cost,omitempty"`
	// patch
	Files []string `json:"files,omitempty"`

	Time     *PartTime      `json:"time,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// ToolState is a tool call's progress.
type ToolState struct {
	Status string          `json:"status"` // pending|running|completed|error
	Input  json.RawMessage `json:"input,omitempty"`
	Output string          `json:"output,omitempty"`
	Title  string          `json:"title,omitempty"`
	Error  string          `json:"error,omitempty"`
	Time   *PartTime       `json:"time,omitempty"`
}

// PartTime holds a part's timestamps (epoch ms).
type PartTime struct {
	Start int64 `json:"start,omitempty"`
	End   int64 `json:"end,omitempty"`
}

// MessageWithParts is how messages travel on the wire.
type MessageWithParts struct {
	Info  Message `json:"info"`
	Parts []Part  `json:"parts"`
}

// Event is one entry of a session's append-only event log, in the shape
// other agent frameworks (ADK and the like) keep their sessions in.
type Event struct {
	ID                 string         `json:"id"`
	SessionID          string         `json:"sessionID"`
	Time               int64          `json:"time"`
	InvocationID       string         `json:"invocationID,omitempty"`
	Author             string         `json:"author"`
	AgentID            string         `json:"agentID,omitempty"`
	Branch             string         `json:"branch,omitempty"`
	Content            []Part         `json:"content,omitempty"`
	Reasoning          string         `json:"reasoning,omitempty"`
	Actions            *EventActions  `json:"actions,omitempty"`
	LongRunningToolIDs []string       `json:"longRunningToolIDs,omitempty"`
	Metadata           map[string]any `json:"metadata,omitempty"`
	// MessageID is the message recorded from Content, if any.
	MessageID string `json:"messageID,omitempty"`
}

// EventActions are the side effects an event carries.
type EventActions struct {
	StateDelta        map[string]json.RawMessage `json:"stateDelta,omitempty"`
	ArtifactDelta     map[string]json.RawMessage `json:"artifactDelta,omitempty"`
	TransferToAgent   string                     `json:"transferToAgent,omitempty"`
	Escalate          bool                       `json:"escalate,omitempty"`
	SkipSummarization bool                       `json:"skipSummarization,omitempty"`
	Custom            map[string]any             `json:"custom,omitempty"`
}

// Status is what session/status reports for one session.
type Status struct {
	State        string `json:"state"` // idle|busy|retry
	Attempt      int    `json:"attempt,omitempty"`
	Next         int64  `json:"next,omitempty"`
	Queued       int    `json:"queued"`
	MessageCount int    `json:"messageCount"`
	LastActive   int64  `json:"lastActive"`
}
