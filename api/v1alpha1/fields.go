package v1alpha1

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
)

func findField(fields []fieldInfo, name string) (fieldInfo, bool) {
	for _, f := range fields {
		if f.name == name {
			return f, true
		}
	}
	return fieldInfo{}, false
}

// unknownField suggests the closest allowed field, or lists them all.
func unknownField(name string, fields []fieldInfo) string {
	best, bestDist := "", math.MaxInt
	names := make([]string, 0, len(fields))
	for _, f := range fields {
		names = append(names, f.name)
		if dist := editDistance(strings.ToLower(name), strings.ToLower(f.name)); dist < bestDist {
			best, bestDist = f.name, dist
		}
	}
	if best != "" && bestDist <= max(2, len(name)/3) {
		return fmt.Sprintf("unknown field %q, did you mean %q?", name, best)
	}
	sort.Strings(names)
	return fmt.Sprintf("unknown field %q (allowed: %s)", name, strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// fieldsOf lists the YAML fields of struct type t, honouring the yaml tags:
// "-" hides a field and ",inline" flattens an embedded struct.
func (d *decoder) fieldsOf(t reflect.Type) []fieldInfo {
	if fs, ok := d.fields[t]; ok {
		return fs
	}
	fs := yamlFields(t)
	d.fields[t] = fs
	return fs
}

// yamlFields lists the YAML fields of struct type t; see decoder.fieldsOf.
func yamlFields(t reflect.Type) []fieldInfo {
	var fs []fieldInfo
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if tag == "-" || (!sf.IsExported() && !sf.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if slicesContain(strings.Split(opts, ","), "inline") && sf.Type.Kind() == reflect.Struct {
			for _, inner := range yamlFields(sf.Type) {
				fs = append(fs, fieldInfo{name: inner.name, index: append([]int{i}, inner.index...)})
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		fs = append(fs, fieldInfo{name: name, index: []int{i}})
	}
	return fs
}
