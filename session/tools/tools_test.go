package tools

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func names(ts []Tool) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name())
	}
	return out
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	all := names(All())
	want := []string{"read", "write", "edit", "list", "glob", "grep", "bash", "todowrite", "todoread", "task"}
	if !slices.Equal(all, want) {
		t.Errorf("All() = %v, want %v", all, want)
	}

	build, err := ForAgent("build")
	if err != nil || !slices.Equal(names(build), want) {
		t.Errorf("ForAgent(build) = %v, %v; want all tools", names(build), err)
	}
	plan, err := ForAgent("plan")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(plan); !slices.Equal(got, []string{"read", "list", "glob", "grep", "todoread"}) {
		t.Errorf("ForAgent(plan) = %v", got)
	}
	for _, tool := range plan {
		if !tool.ReadOnly() {
			t.Errorf("plan has %s, which is not read-only", tool.Name())
		}
	}
	for _, banned := range []string{"write", "edit", "bash", "todowrite", "task"} {
		if slices.Contains(names(plan), banned) {
			t.Errorf("plan has %s", banned)
		}
		if tool, _ := Lookup(banned); tool.ReadOnly() {
			t.Errorf("%s says it is read-only", banned)
		}
	}

	_, err = ForAgent("review")
	wantErr(t, err, `unknown agent "review"`, "build, plan")
	_, err = ForAgent("")
	wantErr(t, err, "unknown agent")

	for _, name := range want {
		tool, ok := Lookup(name)
		if !ok || tool.Name() != name {
			t.Errorf("Lookup(%q) = %v, %v", name, tool, ok)
		}
	}
	if _, ok := Lookup("rm"); ok {
		t.Error("Lookup(rm) found a tool")
	}

	pts := ProviderTools(plan)
	if len(pts) != len(plan) || pts[0].Name != "read" || pts[0].Description == "" || !json.Valid(pts[0].Schema) {
		t.Errorf("ProviderTools(plan) = %+v", pts)
	}
}

func TestSchemas(t *testing.T) {
	t.Parallel()
	for _, tool := range All() {
		t.Run(tool.Name(), func(t *testing.T) {
			t.Parallel()
			if len(tool.Description()) < 80 {
				t.Errorf("Description is too short to guide a model: %q", tool.Description())
			}
			raw := tool.Schema()
			if !json.Valid(raw) {
				t.Fatalf("Schema is not valid JSON: %s", raw)
			}
			var s struct {
				Type                 string                     `json:"type"`
				Properties           map[string]json.RawMessage `json:"properties"`
				Required             *[]string                  `json:"required"`
				AdditionalProperties *bool                      `json:"additionalProperties"`
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatal(err)
			}
			if s.Type != "object" {
				t.Errorf("type = %q, want object", s.Type)
			}
			if s.Properties == nil {
				t.Error("no properties")
			}
			if s.Required == nil {
				t.Error("required is not listed")
			} else {
				for _, r := range *s.Required {
					if _, ok := s.Properties[r]; !ok {
						t.Errorf("required field %q is not a property", r)
					}
				}
			}
			if s.AdditionalProperties == nil || *s.AdditionalProperties {
				t.Error("additionalProperties is not false")
			}
			for name, p := range s.Properties {
				var prop struct {
					Type string `json:"type"`
				}
				if err := json.Unmarshal(p, &prop); err != nil || prop.Type == "" {
					t.Errorf("property %s has no type", name)
				}
				if strings.ToLower(name) != name || strings.Contains(name, "-") {
					t.Errorf("property %s is not snake_case", name)
				}
			}
		})
	}
}

func TestInputValidation(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"a.txt": "a\n"})
	env.Todos = &memTodos{}
	tests := []struct {
		tool  string
		input string
		want  []string
	}{
		{"read", `{}`, []string{"read: path is required", "the file to read"}},
		{"read", ``, []string{"path is required"}},
		{"read", `null`, []string{"path is required"}},
		{"read", `{"path": null}`, []string{"path is required"}},
		{"read", `[1]`, []string{"must be a JSON object", "limit, offset, path"}},
		{"read", `"a.txt"`, []string{"must be a JSON object"}},
		{"read", `{"path": 3}`, []string{"path must be a string, not a number"}},
		{"read", `{"path": "a.txt", "offset": "2"}`, []string{"offset must be an integer, not a string"}},
		{"read", `{"path": "a.txt", "offset": 1.5}`, []string{"offset must be an integer"}},
		{"read", `{"file_path": "a.txt"}`, []string{"unknown field file_path", "read takes the fields limit, offset, path"}},
		{"read", `{"path": ""}`, []string{"path is empty"}},
		{"read", `{"path": "a.txt", "offset": -1}`, []string{"offset must be a line number"}},
		{"write", `{"path": "b.txt"}`, []string{"content is required"}},
		{"edit", `{"path": "a.txt", "old_string": "a"}`, []string{"new_string is required"}},
		{"edit", `{"path": "a.txt", "old_string": "a", "new_string": "b", "replace_all": "yes"}`, []string{"replace_all must be a boolean, not a string"}},
		{"list", `{"ignore": "x"}`, []string{"ignore must be an array, not a string"}},
		{"glob", `{}`, []string{"pattern is required"}},
		{"grep", `{"pattern": "a", "include": 1}`, []string{"include must be a string"}},
		{"bash", `{"command": "true", "timeout_ms": "1s"}`, []string{"timeout_ms must be an integer"}},
		{"bash", `{"cmd": "ls"}`, []string{"unknown field cmd", "command"}},
		{"todowrite", `{"todos": "x"}`, []string{"todos must be an array"}},
		{"todowrite", `{"todos": [{"content": 1, "status": "pending"}]}`, []string{"content must be a string"}},
		{"todoread", `{"all": true}`, []string{"unknown field all", "todoread takes no fields"}},
		{"task", `{"prompt": "p"}`, []string{"description is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.tool+" "+tt.input, func(t *testing.T) {
			t.Parallel()
			_, err := call(t, env, tt.tool, tt.input)
			wantErr(t, err, tt.want...)
		})
	}
}

func TestEnvErrors(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"a.txt": "a\n", "sub/b.txt": "b\n"})
	tests := []struct {
		name string
		env  *Env
		want string
	}{
		{"nil", nil, "no workspace root"},
		{"no root", &Env{}, "no workspace root"},
		{"relative root", &Env{Root: "ws"}, "not an absolute path"},
		{"missing root", &Env{Root: env.Root + "/nope"}, "cannot open the workspace"},
		{"dir outside", &Env{Root: env.Root + "/sub", Dir: env.Root}, "outside the workspace"},
		{"relative dir outside", &Env{Root: env.Root, Dir: "../x"}, "outside the workspace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := call(t, tt.env, "read", obj{"path": "a.txt"})
			wantErr(t, err, tt.want)
		})
	}
	// Dir relative to Root, and empty.
	res := mustCall(t, &Env{Root: env.Root, Dir: "sub"}, "read", obj{"path": "b.txt"})
	if !strings.Contains(res.Output, "b") {
		t.Errorf("Output = %q", res.Output)
	}
	mustCall(t, &Env{Root: env.Root}, "read", obj{"path": "a.txt"})
}
