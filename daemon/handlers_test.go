package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/session/provider"
)

// Clients switch on error.code and error.data.kind (and read the data the
// kind promises), so every domain error must arrive as its protocol error,
// also when wrapped.
func TestToRPCErrorMapsEveryDomainError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code int64
		kind string
		data map[string]any // keys that must be in error.data, as JSON
	}{
		{"rpc error passes through", rpc.NewError(rpc.CodeUnauthorized, "no"), rpc.CodeUnauthorized, rpc.KindUnauthorized, nil},
		{"param", &session.ParamError{Field: "event.author", Msg: "author is required"}, rpc.CodeInvalidParams, rpc.KindInvalidParams,
			map[string]any{"field": "event.author"}},
		{"not found", &session.NotFoundError{Kind: "session", ID: "ses_1"}, rpc.CodeNotFound, rpc.KindNotFound,
			map[string]any{"id": "ses_1", "resource": "session"}},
		{"closed", &session.ClosedError{ID: "ses_1", Lifecycle: session.LifecycleStopped}, rpc.CodeClosed, rpc.KindClosed,
			map[string]any{"lifecycle": session.LifecycleStopped}},
		{"busy", session.ErrBusy, rpc.CodeBusy, rpc.KindBusy, nil},
		{"conflict", &session.ConflictError{Op: "revert", Paths: []string{"a.go"}, Unattributed: []string{"a.go"}}, rpc.CodeConflict, rpc.KindConflict,
			map[string]any{"paths": []any{"a.go"}, "unattributed": []any{"a.go"}}},
		{"unsafe path", &session.UnsafePathError{Op: "revert", Paths: []session.PathConflict{{Path: "l/x", Reason: "symlink"}}}, rpc.CodeConflict, rpc.KindConflict,
			map[string]any{"reason": "unsafePath", "paths": []any{"l/x"}, "conflicts": []any{map[string]any{"path": "l/x", "reason": "symlink"}}}},
		{"pending journal", &session.PendingJournalError{SessionID: "ses_1", Journal: session.PendingJournal{Op: "revert", Files: 2, Error: "disk full"}}, rpc.CodeConflict, rpc.KindConflict,
			map[string]any{"reason": "pendingJournal", "sessionID": "ses_1", "pendingJournal": map[string]any{"op": "revert", "files": 2.0, "error": "disk full", "since": 0.0}}},
		{"aborted", &session.AbortedError{SessionID: "ses_1", MessageID: "msg_1", Reason: "session/abort"}, rpc.CodeAborted, rpc.KindAborted,
			map[string]any{"messageID": "msg_1"}},
		{"no provider", &provider.NoProviderError{Ref: provider.ModelRef{ProviderID: "openai", ModelID: "m"}, Msg: "no key", Env: []string{"OPENAI_API_KEY"}}, rpc.CodeNoProvider, rpc.KindNoProvider,
			map[string]any{"model": map[string]any{"providerID": "openai", "modelID": "m"}, "env": []any{"OPENAI_API_KEY"}}},
		{"provider", &provider.ProviderError{Provider: "openai", Model: "m", Status: 429, Message: "slow down", Retryable: true}, rpc.CodeProviderError, rpc.KindProviderError,
			map[string]any{"provider": "openai", "model": "m", "status": 429.0, "providerMessage": "slow down", "retryable": true}},
		{"wrapped closed", fmt.Errorf("prompt: %w", &session.ClosedError{ID: "ses_1", Lifecycle: session.LifecycleArchived}), rpc.CodeClosed, rpc.KindClosed,
			map[string]any{"lifecycle": session.LifecycleArchived}},
		{"wrapped busy", fmt.Errorf("revert: %w", session.ErrBusy), rpc.CodeBusy, rpc.KindBusy, nil},
		{"anything else is internal", errors.New("badger: boom"), rpc.CodeInternalError, rpc.KindInternalError, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// What the connection does with a handler's error: AsError,
			// then the JSON the client reads.
			b, err := json.Marshal(rpc.AsError(toRPCError(tt.err)))
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			var wire struct {
				Code    int64          `json:"code"`
				Message string         `json:"message"`
				Data    map[string]any `json:"data"`
			}
			if err := json.Unmarshal(b, &wire); err != nil {
				t.Fatalf("unmarshal %s: %v", b, err)
			}
			if wire.Code != tt.code || wire.Data["kind"] != tt.kind {
				t.Errorf("%v arrives as code %d kind %v, want %d %s (%s)", tt.err, wire.Code, wire.Data["kind"], tt.code, tt.kind, b)
			}
			if wire.Message == "" {
				t.Errorf("%v arrives with no message: %s", tt.err, b)
			}
			for k, want := range tt.data {
				if got := wire.Data[k]; !reflect.DeepEqual(got, want) {
					t.Errorf("data.%s = %#v, want %#v (%s)", k, got, want, b)
				}
			}
		})
	}
}
