package v1alpha1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Decode decodes every document of a (multi-document) YAML file into a
// *Service, *RouteBudget or *MeshConfig, chosen by the document's kind.
// Decoding is strict: unknown fields, duplicate keys, values of the wrong
// type, bad or negative durations, documents that are not mappings and YAML
// syntax errors are all reported as Violations carrying file:line:col and the
// field path. Decoding goes on after a problem so that every problem is
// reported at once; a document whose kind is missing or unknown is left out
// of docs. Empty documents are skipped. file only labels positions.
//
// Each returned document has its Pos (where it starts) and Positions (where
// each field is written) set. Decode never panics.
func Decode(file string, data []byte) (docs []any, vs Violations) {
	decs, vs := decodeFile(file, data)
	for _, d := range decs {
		docs = append(docs, d.obj)
	}
	return docs, vs
}

// decodedDoc is one decoded document with the paths at which decoding failed,
// so that Load does not report the same field twice (once from the decoder and
// once from the validator looking at the zero value left behind).
type decodedDoc struct {
	obj      any
	pos      Pos
	errPaths []string
}

// syntaxLine extracts the line number yaml reports in syntax errors.
var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decodeFile is Decode with the per-document failed paths kept.
func decodeFile(file string, data []byte) ([]decodedDoc, Violations) {
	var (
		docs []decodedDoc
		vs   Violations
	)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var root yaml.Node
		err := safeDecode(dec, &root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			vs = append(vs, syntaxViolation(file, err))
			break // the yaml parser cannot resume after a syntax error
		}
		d := &decoder{file: file, fields: map[reflect.Type][]fieldInfo{}}
		doc, ok := d.document(&root)
		vs = append(vs, d.vs...)
		if ok {
			docs = append(docs, doc)
		}
	}
	return docs, vs
}

// safeDecode runs the yaml parser and turns a panic inside it into an error:
// a malformed input must never take the process down.
func safeDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: parser failure: %v", r)
		}
	}()
	return dec.Decode(n)
}

// parserProblems are the messages of the yaml parser proper. It reports
// their line 0-based (its scanner reports 1-based lines), and omits it on the
// first line.
var parserProblems = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"did not find expected node content",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
	"found undefined tag handle",
}

func syntaxViolation(file string, err error) Violation {
	line, msg := 1, strings.TrimPrefix(err.Error(), "yaml: ")
	if m := syntaxLine.FindStringSubmatch(err.Error()); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil && n > 0 {
			line = n
			if slicesContain(parserProblems, m[2]) {
				line++
			}
		}
		msg = m[2]
	}
	return Violation{Pos: Pos{File: file, Line: line, Col: 1}, Message: "syntax error: " + msg}
}

// fieldInfo is one YAML-visible field of a struct (inline fields flattened).
type fieldInfo struct {
	name  string
	index []int
}

// decoder walks one document's node tree with reflection over the Go types.
type decoder struct {
	file     string
	vs       Violations
	pos      Positions
	errPaths []string
	fields   map[reflect.Type][]fieldInfo
}

var (
	durationType     = reflect.TypeFor[Duration]()
	minRemainingType = reflect.TypeFor[MinRemaining]()
)

func (d *decoder) at(n *yaml.Node) Pos {
	return Pos{File: d.file, Line: n.Line, Col: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.vs = append(d.vs, Violation{Pos: d.at(n), Path: path, Message: fmt.Sprintf(format, args...)})
	d.errPaths = append(d.errPaths, path)
}

// document decodes one YAML document. ok is false when the document is empty
// or cannot be typed (not a mapping, kind missing or unknown).
func (d *decoder) document(root *yaml.Node) (decodedDoc, bool) {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return decodedDoc{}, false
	}
	n := resolve(root.Content[0])
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return decodedDoc{}, false // an empty document: only comments or nothing
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "", "a document must be a mapping with apiVersion, kind, metadata and spec, got %s", describe(n))
		return decodedDoc{}, false
	}
	docPos := d.at(n)
	var kindNode, versionNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch n.Content[i].Value {
		case "kind":
			kindNode = resolve(n.Content[i+1])
		case "apiVersion":
			versionNode = resolve(n.Content[i+1])
		}
	}
	var obj any
	switch {
	case kindNode == nil:
		d.errorf(n, "kind", "missing kind (want %s)", kindList)
		return decodedDoc{}, false
	case kindNode.Kind != yaml.ScalarNode || kindNode.Tag != "!!str":
		d.errorf(kindNode, "kind", "expected a string, got %s", describe(kindNode))
		return decodedDoc{}, false
	case kindNode.Value == KindService:
		obj = &Service{}
	case kindNode.Value == KindRouteBudget:
		obj = &RouteBudget{}
	case kindNode.Value == KindMeshConfig:
		obj = &MeshConfig{}
	default:
		d.errorf(kindNode, "kind", "unknown kind %q (want %s)", kindNode.Value, kindList)
		return decodedDoc{}, false
	}
	switch {
	case versionNode == nil:
		d.errorf(n, "apiVersion", "missing apiVersion (want %s)", APIVersion)
	case versionNode.Kind == yaml.ScalarNode && versionNode.Value != APIVersion:
		d.errorf(versionNode, "apiVersion", "unsupported apiVersion %q (want %s)", versionNode.Value, APIVersion)
	}
	d.pos = Positions{}
	d.value(n, reflect.ValueOf(obj).Elem(), "")
	switch o := obj.(type) {
	case *Service:
		o.Pos, o.Positions = docPos, d.pos
	case *RouteBudget:
		o.Pos, o.Positions = docPos, d.pos
	case *MeshConfig:
		o.Pos, o.Positions = docPos, d.pos
	}
	return decodedDoc{obj: obj, pos: docPos, errPaths: d.errPaths}, true
}

const kindList = KindService + ", " + KindRouteBudget + " or " + KindMeshConfig

// resolve follows aliases. Anchors and aliases cannot nest deeper than the Go
// types do (anything deeper is a type error), so expansion stays bounded.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// describe names a node for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!str" {
			return strconv.Quote(n.Value)
		}
		if n.Tag == "!!null" {
			return "null"
		}
		return n.Value
	default:
		return "an unsupported node"
	}
}

// value decodes n into v, which is addressable. path is v's field path.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if n.Kind == yaml.AliasNode {
		d.errorf(n, path, "unresolvable alias")
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // null means absent: the zero value (and later the default)
	}
	switch v.Type() {
	case durationType:
		if dur, ok := d.duration(n, path); ok {
			v.SetInt(int64(dur))
		}
		return
	case minRemainingType:
		if n.Kind == yaml.ScalarNode && n.Value == "auto" {
			v.Set(reflect.ValueOf(MinRemaining{Auto: true, Set: true}))
			return
		}
		if dur, ok := d.duration(n, path); ok {
			v.Set(reflect.ValueOf(MinRemaining{Value: dur, Set: true}))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.value(n, elem.Elem(), path)
		if !slicesContain(d.errPaths, path) {
			v.Set(elem)
		}
	case reflect.Struct:
		d.structValue(n, v, path)
	case reflect.Slice:
		d.sliceValue(n, v, path)
	case reflect.Map:
		d.mapValue(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int") {
			d.errorf(n, path, "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			d.errorf(n, path, "expected an integer, got %s", describe(n))
			return
		}
		var i int64
		if err := n.Decode(&i); err != nil || int64(int(i)) != i {
			d.errorf(n, path, "integer %s is out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
			d.errorf(n, path, "expected a number, got %s", describe(n))
			return
		}
		var f float64
		if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errorf(n, path, "expected a finite number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.errorf(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	default:
		d.errorf(n, path, "field of unsupported Go type %s", v.Type())
	}
}

func slicesContain(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// duration parses a Go-syntax, non-negative duration.
func (d *decoder) duration(n *yaml.Node, path string) (Duration, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected a duration such as 250ms, 2s or 1h30m, got %s", describe(n))
		return 0, false
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		hint := "use Go syntax such as 250ms, 2s or 1h30m"
		if n.Tag == "!!int" || n.Tag == "!!float" {
			hint = "a unit is required, e.g. " + n.Value + "ms or " + n.Value + "s"
		}
		d.errorf(n, path, "invalid duration %q (%s)", n.Value, hint)
		return 0, false
	}
	if dur < 0 {
		d.errorf(n, path, "negative duration %q is not allowed", n.Value)
		return 0, false
	}
	return Duration(dur), true
}

func (d *decoder) sliceValue(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.record(p, item, nil)
		d.value(item, s.Index(i), p)
	}
	v.Set(s)
}

func (d *decoder) mapValue(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.errorf(n, path, "field of unsupported Go type %s", v.Type())
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "expected a string key, got %s", describe(k))
			continue
		}
		p := path + "." + k.Value
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, p, "duplicate key %q (first at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		d.record(p, val, k)
		elem := reflect.New(v.Type().Elem()).Elem()
		d.value(val, elem, p)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
	}
	v.Set(m)
}

func (d *decoder) structValue(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	fields := d.fieldsOf(v.Type())
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "expected a field name, got %s", describe(k))
			continue
		}
		p := join(path, k.Value)
		if k.Tag == "!!merge" {
			d.errorf(k, p, "merge keys (<<) are not supported; write the fields out")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, p, "duplicate key %q (first at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		f, ok := findField(fields, k.Value)
		if !ok {
			d.errorf(k, p, "%s", unknownField(k.Value, fields))
			continue
		}
		d.record(p, val, k)
		d.value(val, v.FieldByIndex(f.index), p)
	}
}

// record remembers where path is written: the value for scalars, the key
// (when there is one) for mappings and lists, whose value often starts on the
// next line. A field written as null is absent, like an omitted one, and is
// not recorded: validation tells a defaulted value from a written one by its
// position. (A null list item is recorded: the item exists.)
func (d *decoder) record(path string, val, key *yaml.Node) {
	n := resolve(val)
	if key != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if key != nil && n.Kind != yaml.ScalarNode {
		n = key
	}
	if _, ok := d.pos[path]; !ok {
		d.pos[path] = d.at(n)
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
