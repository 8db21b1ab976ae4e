package v1alpha1

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"
	yaml "go.yaml.in/yaml/v3"
)

// schemaDoc is the parsed Schema, failing the test when it is not JSON.
func schemaDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(Schema, &doc); err != nil {
		t.Fatalf("Schema is not JSON: %v", err)
	}
	return doc
}

// resolveRef follows a local "#/$defs/X" reference.
func resolveRef(t *testing.T, root, node map[string]any) map[string]any {
	t.Helper()
	for i := 0; i < 10; i++ {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		name, found := strings.CutPrefix(ref, "#/$defs/")
		def, ok := root["$defs"].(map[string]any)[name].(map[string]any)
		if !found || !ok {
			t.Fatalf("unresolvable $ref %q", ref)
		}
		node = def
	}
	t.Fatalf("$ref chain too long")
	return nil
}

// TestSchema_MatchesGoTypes walks the Go types and the schema side by side:
// every yaml field must be a schema property at the same place (with a
// description and a matching JSON type), and every schema property a field.
func TestSchema_MatchesGoTypes(t *testing.T) {
	root := schemaDoc(t)
	defs := root["$defs"].(map[string]any)
	var walk func(typ reflect.Type, node map[string]any, path string)
	walk = func(typ reflect.Type, node map[string]any, path string) {
		node = resolveRef(t, root, node)
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		switch typ {
		case durationType:
			if node["pattern"] == nil {
				t.Errorf("%s: duration without pattern", path)
			}
			return
		case minRemainingType:
			if node["anyOf"] == nil {
				t.Errorf("%s: minRemaining must allow auto or a duration", path)
			}
			return
		}
		want := map[reflect.Kind]string{reflect.String: "string", reflect.Int: "integer", reflect.Float64: "number", reflect.Bool: "boolean"}
		switch typ.Kind() {
		case reflect.Struct:
			props, _ := node["properties"].(map[string]any)
			if node["additionalProperties"] != false {
				t.Errorf("%s: additionalProperties must be false", path)
			}
			var goNames, schemaNames []string
			for _, f := range yamlFields(typ) {
				goNames = append(goNames, f.name)
				p, ok := props[f.name].(map[string]any)
				if !ok {
					continue
				}
				if d, _ := p["description"].(string); d == "" {
					t.Errorf("%s.%s: no description", path, f.name)
				}
				walk(typ.FieldByIndex(f.index).Type, p, path+"."+f.name)
			}
			for name := range props {
				schemaNames = append(schemaNames, name)
			}
			sort.Strings(goNames)
			sort.Strings(schemaNames)
			if diff := cmp.Diff(schemaNames, goNames); diff != "" {
				t.Errorf("%s: schema properties (-schema +Go):\n%s", path, diff)
			}
		case reflect.Slice:
			items, ok := node["items"].(map[string]any)
			if !ok || node["type"] != "array" {
				t.Errorf("%s: want an array with items", path)
				return
			}
			walk(typ.Elem(), items, path+"[]")
		case reflect.Map:
			ap, ok := node["additionalProperties"].(map[string]any)
			if !ok || node["type"] != "object" {
				t.Errorf("%s: want an object with additionalProperties", path)
				return
			}
			walk(typ.Elem(), ap, path+".*")
		default:
			if got := node["type"]; got != nil && got != want[typ.Kind()] {
				t.Errorf("%s: schema type %v, Go %s", path, got, typ)
			}
			if node["type"] == nil && node["enum"] == nil && node["const"] == nil && node["anyOf"] == nil {
				t.Errorf("%s: no type, enum or const", path)
			}
		}
	}
	for name, typ := range map[string]reflect.Type{
		KindService:     reflect.TypeFor[Service](),
		KindRouteBudget: reflect.TypeFor[RouteBudget](),
		KindMeshConfig:  reflect.TypeFor[MeshConfig](),
	} {
		def, ok := defs[name].(map[string]any)
		if !ok {
			t.Fatalf("$defs/%s missing", name)
		}
		walk(typ, def, name)
	}
}

// compileSchema compiles the embedded Schema.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("hopguard.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("hopguard.schema.json")
	if err != nil {
		t.Fatalf("compiling Schema: %v", err)
	}
	return s
}

// yamlDocs converts each document of a multi-document YAML file to a JSON
// value. It parses YAML 1.2 (go.yaml.in/yaml/v3) like Decode, so that keys
// such as "on" stay strings.
func yamlDocs(t *testing.T, data []byte) []any {
	t.Helper()
	var out []any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("parsing YAML: %v", err)
		}
		if v == nil {
			continue
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("converting to JSON: %v", err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, doc)
	}
	return out
}

func TestSchema_ValidExamples(t *testing.T) {
	s := compileSchema(t)
	files, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range yamlDocs(t, data) {
			if err := s.Validate(doc); err != nil {
				t.Errorf("%s document %d: %v", f, i, err)
			}
		}
	}
}

func TestSchema_InvalidDocuments(t *testing.T) {
	s := compileSchema(t)
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid documents: %v", err)
	}
	extra := map[string]string{
		"missing kind":          "apiVersion: hopguard.dev/v1alpha1\nmetadata: {name: a}\n",
		"bad duration":          "apiVersion: hopguard.dev/v1alpha1\nkind: RouteBudget\nmetadata: {name: a}\nspec: {service: s, match: {path: /}, deadline: {default: 5 s}}\n",
		"two matches":           "apiVersion: hopguard.dev/v1alpha1\nkind: RouteBudget\nmetadata: {name: a}\nspec: {service: s, match: {path: /, grpcMethod: a.B/C}}\n",
		"unknown mesh field":    "apiVersion: hopguard.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: a}\nspec: {drift: {mode: x}}\n",
		"port out of range":     "apiVersion: hopguard.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec: {port: 70000, dns: a:1}\n",
		"unknown retry on":      "apiVersion: hopguard.dev/v1alpha1\nkind: RouteBudget\nmetadata: {name: a}\nspec: {service: s, match: {path: /}, retry: {on: [sometimes]}}\n",
		"wrong kind's field":    "apiVersion: hopguard.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec: {port: 1, dns: a:1, service: s}\n",
		"bad minRemaining auto": "apiVersion: hopguard.dev/v1alpha1\nkind: RouteBudget\nmetadata: {name: a}\nspec: {service: s, match: {path: /}, retry: {minRemaining: automatic}}\n",
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range extra {
			if !yield(k) {
				return
			}
		}
	})
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		extra[f] = string(data)
		names = append(names, f)
	}
	for _, name := range names {
		docs := yamlDocs(t, []byte(extra[name]))
		failed := false
		for _, doc := range docs {
			if s.Validate(doc) != nil {
				failed = true
			}
		}
		if !failed {
			t.Errorf("%s: schema accepted an invalid document", name)
		}
	}
}
