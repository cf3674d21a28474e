package session

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sessiond/sessiond/store"
)

func (f *fixture) list(p ListParams) ListResult {
	f.t.Helper()
	res, err := f.svc.List(f.ctx, p)
	if err != nil {
		f.t.Fatalf("List(%+v): %v", p, err)
	}
	return res
}

func TestListNewestFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var want []string
	for i := range 5 {
		want = append(want, f.create(CreateParams{Title: fmt.Sprint("s", i)}).ID)
	}
	res := f.list(ListParams{})
	if got := ids(res.Sessions); !slices.Equal(got, reversed(want)) {
		t.Errorf("List = %q, want newest first %q", got, reversed(want))
	}
	if res.NextCursor != "" {
		t.Errorf("NextCursor = %q on the only page", res.NextCursor)
	}
	if empty := newFixture(t).list(ListParams{}); empty.Sessions == nil || len(empty.Sessions) != 0 {
		t.Errorf("List of an empty store = %#v, want an empty, non-nil slice", empty.Sessions)
	}
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.dir
	sub := mkdirs(t, p, "sub")
	deeper := mkdirs(t, p, "sub", "deeper")
	other := mkdirs(t, p, "other")
	subling := mkdirs(t, p, "sub2") // shares a string prefix with sub
	q := newDir(t)

	byName := map[string]Session{}
	mk := func(name string, cp CreateParams) {
		byName[name] = f.create(cp)
	}
	mk("root", CreateParams{Directory: p, Title: "Refactor the parser", UserID: "alice"})
	mk("sub", CreateParams{Directory: sub, Title: "write tests", UserID: "bob"})
	mk("deeper", CreateParams{Directory: deeper, Title: "REFACTORING deeper", UserID: "alice"})
	mk("sub2", CreateParams{Directory: subling, Title: "sibling dir"})
	mk("archived", CreateParams{Directory: other, Title: "old refactor", UserID: "alice"})
	mk("child", CreateParams{ParentID: byName["root"].ID, Title: "child of root", UserID: "alice"})
	mk("grandchild", CreateParams{ParentID: byName["child"].ID, Title: "grandchild"})
	mk("q", CreateParams{Directory: q, Title: "other project refactor", UserID: "alice"})
	if _, err := f.svc.Update(f.ctx, UpdateParams{SessionID: byName["archived"].ID, Archived: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	// Sessions in subdirectories belong to the project of p.
	for _, n := range []string{"sub", "deeper", "sub2", "archived", "child"} {
		if byName[n].ProjectID != byName["root"].ProjectID {
			t.Fatalf("session %s is in project %s, want %s", n, byName[n].ProjectID, byName["root"].ProjectID)
		}
	}
	if byName["q"].ProjectID == byName["root"].ProjectID {
		t.Fatal("two unrelated directories share a project")
	}

	tests := []struct {
		name string
		p    ListParams
		want []string // newest first
	}{
		{"all", ListParams{}, []string{"q", "grandchild", "child", "sub2", "deeper", "sub", "root"}},
		{"project directory includes subdirectories", ListParams{Directory: p}, []string{"grandchild", "child", "sub2", "deeper", "sub", "root"}},
		{"subdirectory", ListParams{Directory: sub}, []string{"deeper", "sub"}},
		{"deepest directory", ListParams{Directory: deeper}, []string{"deeper"}},
		{"directory of another project", ListParams{Directory: q}, []string{"q"}},
		{"projectID", ListParams{ProjectID: byName["q"].ProjectID}, []string{"q"}},
		{"projectID and a directory of another project", ListParams{ProjectID: byName["q"].ProjectID, Directory: p}, []string{}},
		{"parentID", ListParams{ParentID: byName["root"].ID}, []string{"child"}},
		{"parentID of a leaf", ListParams{ParentID: byName["grandchild"].ID}, []string{}},
		{"rootsOnly", ListParams{RootsOnly: true}, []string{"q", "sub2", "deeper", "sub", "root"}},
		{"rootsOnly in a directory", ListParams{RootsOnly: true, Directory: sub}, []string{"deeper", "sub"}},
		{"userID", ListParams{UserID: "alice"}, []string{"q", "child", "deeper", "root"}},
		{"userID and projectID", ListParams{UserID: "alice", ProjectID: byName["root"].ProjectID}, []string{"child", "deeper", "root"}},
		{"archived only", ListParams{Archived: true}, []string{"archived"}},
		{"archived in its directory", ListParams{Archived: true, Directory: other}, []string{"archived"}},
		{"archived elsewhere", ListParams{Archived: true, Directory: sub}, []string{}},
		{"search ignores case", ListParams{Search: "ReFaCtOr"}, []string{"q", "deeper", "root"}},
		{"search and archived", ListParams{Search: "refactor", Archived: true}, []string{"archived"}},
		{"search no match", ListParams{Search: "nothing like it"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := f.svc.List(f.ctx, tt.p)
			if err != nil {
				t.Fatalf("List(%+v): %v", tt.p, err)
			}
			want := make([]string, len(tt.want))
			for i, n := range tt.want {
				want[i] = byName[n].ID
			}
			if got := ids(res.Sessions); !slices.Equal(got, want) {
				t.Errorf("List(%+v) =\n  %v\nwant\n  %v", tt.p, names(byName, got), tt.want)
			}
		})
	}
}

func names(byName map[string]Session, got []string) []string {
	out := make([]string, len(got))
	for i, id := range got {
		out[i] = id
		for n, s := range byName {
			if s.ID == id {
				out[i] = n
			}
		}
	}
	return out
}

func TestListRejectsBadParams(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(CreateParams{})
	tests := []struct {
		name  string
		p     ListParams
		field string
	}{
		{"negative limit", ListParams{Limit: -1}, "limit"},
		{"limit too large", ListParams{Limit: MaxListLimit + 1}, "limit"},
		{"garbage cursor", ListParams{Cursor: "garbage"}, "cursor"},
		{"message ID as cursor", ListParams{Cursor: f.db.NewID(store.KindMessage)}, "cursor"},
		{"relative directory", ListParams{Directory: "rel"}, "directory"},
		{"missing directory", ListParams{Directory: filepath.Join(f.dir, "missing")}, "directory"},
	}
	for _, tt := range tests {
		_, err := f.svc.List(f.ctx, tt.p)
		t.Run(tt.name, func(t *testing.T) { wantParamErr(t, err, tt.field) })
	}
	for _, limit := range []int{0, 1, MaxListLimit} {
		if res, err := f.svc.List(f.ctx, ListParams{Limit: limit}); err != nil || len(res.Sessions) != 1 {
			t.Errorf("List(limit %d) = %d sessions, %v", limit, len(res.Sessions), err)
		}
	}
}

func TestListDefaultLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for range DefaultListLimit + 1 {
		f.create(CreateParams{})
	}
	res := f.list(ListParams{})
	if len(res.Sessions) != DefaultListLimit || res.NextCursor == "" {
		t.Errorf("List without limit: %d sessions, cursor %q; want %d and a cursor", len(res.Sessions), res.NextCursor, DefaultListLimit)
	}
}

// pages follows nextCursor until it is empty, calling between after each page.
func (f *fixture) pages(p ListParams, between func(page int)) [][]string {
	f.t.Helper()
	var out [][]string
	for page := 0; ; page++ {
		if page > 100 {
			f.t.Fatal("paging does not end")
		}
		res := f.list(p)
		out = append(out, ids(res.Sessions))
		if res.NextCursor == "" {
			return out
		}
		if len(res.Sessions) == 0 {
			f.t.Fatalf("page %d is empty but has a next cursor", page)
		}
		if res.NextCursor != res.Sessions[len(res.Sessions)-1].ID {
			f.t.Errorf("page %d: nextCursor %q is not its last session %q", page, res.NextCursor, res.Sessions[len(res.Sessions)-1].ID)
		}
		if between != nil {
			between(page)
		}
		p.Cursor = res.NextCursor
	}
}

func TestListPaging(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n, limit  int
		wantPages []int
	}{
		{7, 3, []int{3, 3, 1}},
		{9, 3, []int{3, 3, 3}}, // no empty fourth page
		{3, 1, []int{1, 1, 1}},
		{2, 5, []int{2}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d by %d", tt.n, tt.limit), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			var all []string
			for range tt.n {
				all = append(all, f.create(CreateParams{}).ID)
			}
			got := f.pages(ListParams{Limit: tt.limit}, nil)
			var sizes []int
			var flat []string
			for _, pg := range got {
				sizes = append(sizes, len(pg))
				flat = append(flat, pg...)
			}
			if !slices.Equal(sizes, tt.wantPages) {
				t.Errorf("page sizes %v, want %v", sizes, tt.wantPages)
			}
			if !slices.Equal(flat, reversed(all)) {
				t.Errorf("pages gave %q, want every session once, newest first: %q", flat, reversed(all))
			}
		})
	}
}

// Paging through a filtered index (by project) where the filter drops
// some entries: every kept session exactly once.
func TestListPagingWithFilter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var want []string
	for i := range 10 {
		s := f.create(CreateParams{UserID: fmt.Sprint("u", i%2)})
		if i%2 == 0 {
			want = append(want, s.ID)
		}
	}
	f.create(CreateParams{Directory: newDir(t), UserID: "u0"}) // another project
	got := slices.Concat(f.pages(ListParams{Directory: f.dir, UserID: "u0", Limit: 2}, nil)...)
	if !slices.Equal(got, reversed(want)) {
		t.Errorf("filtered paging gave %q, want %q", got, reversed(want))
	}
}

func TestListPagingWhileCreatingAndDeleting(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var old []string
	for range 6 {
		old = append(old, f.create(CreateParams{}).ID)
	}
	newest := reversed(old)
	var added []string
	got := f.pages(ListParams{Limit: 2}, func(page int) {
		for range 3 {
			added = append(added, f.create(CreateParams{}).ID)
		}
		if page == 1 {
			// Deleting the session the cursor names must not break paging.
			if err := f.svc.Delete(f.ctx, newest[3]); err != nil {
				t.Fatal(err)
			}
		}
	})
	flat := slices.Concat(got...)
	if !slices.Equal(flat, newest) {
		t.Errorf("paging while creating gave %q, want %q", flat, newest)
	}
	for _, id := range added {
		if slices.Contains(flat, id) {
			t.Errorf("session %s created after the first page showed up on a later page", id)
		}
	}
	// A fresh listing shows the new ones first.
	res := f.list(ListParams{Limit: len(added)})
	if !slices.Equal(ids(res.Sessions), reversed(added)) {
		t.Errorf("fresh first page = %q, want %q", ids(res.Sessions), reversed(added))
	}
}

// session/list is a query: listing a directory must not register it as a
// project, or every later non-git directory beneath it would be swallowed
// into that accidental project.
func TestListByDirectoryDoesNotCreateProjects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	parent := newDir(t)
	before, err := f.reg.List(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.List(f.ctx, ListParams{Directory: parent})
	if err != nil || len(res.Sessions) != 0 {
		t.Fatalf("List of an unknown directory = %v, %v", ids(res.Sessions), err)
	}
	after, err := f.reg.List(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("List(directory %s) registered a project: %d projects before, %d after", parent, len(before), len(after))
	}
	// The consequence: a new workspace below it is no longer its own project.
	proj := mkdirs(t, parent, "newproj")
	s := f.create(CreateParams{Directory: proj})
	p, err := f.reg.Get(f.ctx, s.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Root != proj {
		t.Errorf("session in %s got project rooted at %s", proj, p.Root)
	}
}

func TestChildren(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	root := f.create(CreateParams{})
	var kids []string
	for range 3 {
		kids = append(kids, f.create(CreateParams{ParentID: root.ID}).ID)
	}
	f.create(CreateParams{ParentID: kids[0]}) // a grandchild is not a child
	got, err := f.svc.Children(f.ctx, root.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), kids) {
		t.Errorf("Children = %q, want %q (oldest first)", ids(got), kids)
	}
	leaf, err := f.svc.Children(f.ctx, kids[2])
	if err != nil || leaf == nil || len(leaf) != 0 {
		t.Errorf("Children of a leaf = %#v, %v; want empty", leaf, err)
	}
	absent := f.db.NewID(store.KindSession)
	_, err = f.svc.Children(f.ctx, absent)
	wantNotFound(t, err, "session", absent)
}
