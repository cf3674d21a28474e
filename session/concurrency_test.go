package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestConcurrentAppendEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	const goroutines, each = 20, 5
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		got  []Event
		errs []error
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				ev, err := f.svc.AppendEvent(f.ctx, AppendEventParams{SessionID: s.ID, Event: Event{
					Author:  "user",
					Content: []Part{{Type: PartText, Text: fmt.Sprintf("g%d-%d", g, i)}},
					Actions: &EventActions{StateDelta: map[string]json.RawMessage{fmt.Sprintf("g%d", g): json.RawMessage(strconv.Itoa(i))}},
				}})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					got = append(got, ev)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i < 3 {
			t.Errorf("AppendEvent: %v", err)
		}
	}
	if len(errs) > 0 {
		t.Errorf("%d of %d concurrent appends failed", len(errs), goroutines*each)
	}

	cur := f.get(s.ID)
	if cur.MessageCount != len(got) || len(got) != goroutines*each {
		t.Errorf("MessageCount = %d, %d appends succeeded, want %d", cur.MessageCount, len(got), goroutines*each)
	}
	if cur.Version != s.Version+int64(len(got)) {
		t.Errorf("Version = %d, want %d", cur.Version, s.Version+int64(len(got)))
	}
	evs := f.events(EventsParams{SessionID: s.ID})
	var want []string
	for _, ev := range got {
		want = append(want, ev.ID)
	}
	slices.Sort(want)
	if gotIDs := eventIDs(evs); !slices.Equal(gotIDs, want) {
		t.Errorf("Events holds %d events, want the %d appended, in ID order", len(gotIDs), len(want))
	}
	ms := f.messages(MessagesParams{SessionID: s.ID})
	texts := map[string]bool{}
	for _, m := range ms {
		if len(m.Parts) != 1 {
			t.Fatalf("message %s has %d parts", m.Info.ID, len(m.Parts))
		}
		texts[m.Parts[0].Text] = true
	}
	if len(ms) != len(got) || len(texts) != len(got) {
		t.Errorf("Messages holds %d (%d distinct), want %d", len(ms), len(texts), len(got))
	}
	// Each goroutine's last write of its own key wins.
	state := f.state(s.ID, "")
	if len(errs) == 0 {
		for g := range goroutines {
			if v := state[fmt.Sprintf("g%d", g)]; v != float64(each-1) {
				t.Errorf("state g%d = %v, want %d", g, v, each-1)
			}
		}
	}
}

// Creating children while their parent is deleted must never leave a
// session whose parent is gone. The race needs the child's transaction to
// commit inside the delete's, so it is tried many times; the test stops at
// the first orphan.
func TestConcurrentCreateChildAndDeleteParent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	deadline := time.Now().Add(3 * time.Second)
	for round := 0; round < 2000 && time.Now().Before(deadline); round++ {
		parent := f.create(CreateParams{})
		var (
			wg       sync.WaitGroup
			child    Session
			childErr error
		)
		wg.Go(func() {
			// Either outcome is fine; an orphan is not.
			child, childErr = f.svc.Create(f.ctx, CreateParams{ParentID: parent.ID})
		})
		wg.Go(func() {
			if err := f.svc.Delete(f.ctx, parent.ID); err != nil {
				t.Errorf("Delete: %v", err)
			}
		})
		wg.Wait()
		if childErr != nil {
			var pe *ParamError
			if !errors.As(childErr, &pe) || pe.Field != "parentID" {
				t.Fatalf("round %d: Create child: %v", round, childErr)
			}
			continue
		}
		if _, err := f.svc.Get(f.ctx, child.ID); err == nil {
			t.Fatalf("round %d: child %s was created and survives its deleted parent %s", round, child.ID, parent.ID)
		}
	}
}

// A message's parts come back in the order they were given, even while
// other sessions record events at the same time.
func TestConcurrentAppendsKeepPartOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const sessions, nparts = 12, 16
	deadline := time.Now().Add(500 * time.Millisecond)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	content := make([]Part, nparts)
	for i := range content {
		content[i] = Part{Type: PartText, Text: strconv.Itoa(i)}
	}
	for range sessions {
		s := f.create(CreateParams{})
		wg.Go(func() {
			for time.Now().Before(deadline) {
				ev, err := f.svc.AppendEvent(f.ctx, AppendEventParams{SessionID: s.ID, Event: Event{Author: "bot", Content: content}})
				if err != nil {
					mu.Lock()
					problems = append(problems, err.Error())
					mu.Unlock()
					return
				}
				m, err := f.svc.Message(f.ctx, MessageParams{SessionID: s.ID, MessageID: ev.MessageID})
				var order []string
				for _, p := range m.Parts {
					order = append(order, p.Text)
				}
				if err != nil || len(order) != nparts || !slices.IsSortedFunc(order, func(a, b string) int {
					x, _ := strconv.Atoi(a)
					y, _ := strconv.Atoi(b)
					return x - y
				}) {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("message %s parts in order %v (%v)", ev.MessageID, order, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for i, p := range problems {
		if i < 5 {
			t.Error(p)
		}
	}
	if len(problems) > 0 {
		t.Errorf("%d problems", len(problems))
	}
}
