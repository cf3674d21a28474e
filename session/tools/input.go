package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// schemaInfo is what decode needs of a tool's schema.
type schemaInfo struct {
	Properties map[string]struct {
		Type        string `json:"type"`
		Description string `json:"description"`
	} `json:"properties"`
	Required []string `json:"required"`
}

// decode checks input against the tool's schema (an object; no unknown
// fields; required fields present and not null) and unmarshals it into v,
// turning JSON errors into messages a model can act on.
func decode(t Tool, input json.RawMessage, v any) error {
	var sch schemaInfo
	if err := json.Unmarshal(t.Schema(), &sch); err != nil {
		return fmt.Errorf("tools: %s: bad schema: %v", t.Name(), err)
	}
	allowed := make([]string, 0, len(sch.Properties))
	for k := range sch.Properties {
		allowed = append(allowed, k)
	}
	slices.Sort(allowed)
	takes := "no fields"
	if len(allowed) > 0 {
		takes = "the fields " + strings.Join(allowed, ", ")
	}

	input = bytes.TrimSpace(input)
	if len(input) == 0 || bytes.Equal(input, []byte("null")) {
		input = []byte("{}")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(input, &fields); err != nil {
		return fmt.Errorf("the input of %s must be a JSON object with %s", t.Name(), takes)
	}
	var unknown []string
	for k := range fields {
		if _, ok := sch.Properties[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("%s: unknown field %s; %s takes %s", t.Name(), strings.Join(unknown, ", "), t.Name(), takes)
	}
	for _, k := range sch.Required {
		if raw, ok := fields[k]; !ok || bytes.Equal(raw, []byte("null")) {
			msg := fmt.Sprintf("%s: %s is required", t.Name(), k)
			if d := sch.Properties[k].Description; d != "" {
				msg += ": " + lowerFirst(d)
			}
			return errors.New(msg)
		}
	}
	if err := json.Unmarshal(input, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = "the input"
			}
			kind := te.Type.Kind().String()
			want := jsonKind(kind)
			if strings.HasPrefix(kind, "int") || strings.HasPrefix(kind, "uint") {
				want = "integer"
			}
			top := strings.SplitN(te.Field, ".", 2)[0]
			if sch.Properties[top].Type == "array" && want != "array" && !strings.Contains(te.Field, ".") {
				field = "each item of " + field
			}
			value := te.Value
			if value == "bool" {
				value = "boolean"
			}
			return fmt.Errorf("%s: %s must be %s %s, not %s %s", t.Name(), field, article(want), want, article(value), value)
		}
		return fmt.Errorf("%s: bad input: %v", t.Name(), err)
	}
	return nil
}

// jsonKind names a Go kind the way a JSON Schema would.
func jsonKind(k string) string {
	switch {
	case k == "string":
		return "string"
	case k == "bool":
		return "boolean"
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"), strings.HasPrefix(k, "float"):
		return "number"
	case k == "slice", k == "array":
		return "array"
	}
	return "object"
}

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

func lowerFirst(s string) string {
	if s == "" || (len(s) > 1 && s[1] >= 'A' && s[1] <= 'Z') {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
