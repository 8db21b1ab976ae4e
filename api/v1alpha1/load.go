package v1alpha1

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Load reads, decodes, defaults and validates a configuration.
//
// Each path is a file or a directory. A file is read whatever its name; a
// directory contributes every *.yaml and *.yml file below it, recursively, in
// lexical order, skipping hidden files and directories (names starting with
// "."). A file named twice is read once.
//
// The error is non-nil only for I/O problems (a missing path, an unreadable
// file); then the other results are nil. Otherwise vs holds every problem of
// every file — decoding and validation, errors and warnings — sorted by file,
// line and column. When vs holds an error (see Violations.Errors) the Config
// is nil; else it is complete and SetDefaults has been applied to it.
func Load(paths ...string) (*Config, Violations, error) {
	files, err := listFiles(paths)
	if err != nil {
		return nil, nil, err
	}
	var (
		docs   []decodedDoc
		vs     Violations
		ioErrs []error
	)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			ioErrs = append(ioErrs, fmt.Errorf("v1alpha1: %w", err))
			continue
		}
		ds, dvs := decodeFile(f, data)
		docs = append(docs, ds...)
		vs = append(vs, dvs...)
	}
	if len(ioErrs) > 0 {
		return nil, nil, errors.Join(ioErrs...)
	}
	cfg, vs := check(files, docs, vs)
	return cfg, vs, nil
}

// check assembles decoded documents into a Config, applies defaults and
// validates it; vs are the decoding violations. It returns every violation,
// sorted, and the Config when none is an error.
func check(files []string, docs []decodedDoc, vs Violations) (*Config, Violations) {
	cfg, avs := assemble(files, docs)
	vs = append(vs, avs...)
	failed := map[Pos][]string{}
	for _, d := range docs {
		failed[d.pos] = d.errPaths
	}
	suppress := func(doc Pos, path string) bool {
		for _, p := range failed[doc] {
			if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
				return true
			}
		}
		return false
	}
	for _, d := range docs {
		zs := explicitZeros(d.obj, suppress)
		vs = append(vs, zs...)
		// A field written as 0 gets its default, a value nobody wrote:
		// like a field that failed to decode, it must not feed other rules.
		for _, z := range zs {
			failed[d.pos] = append(failed[d.pos], z.Path)
		}
	}
	SetDefaults(cfg)
	vs = append(vs, validate(cfg, suppress)...)
	sortViolations(vs)
	if len(vs.Errors()) > 0 {
		return nil, vs
	}
	return cfg, vs
}

// assemble builds a Config from decoded documents. A second MeshConfig is a
// violation (a Config holds one), pointing at it and naming the first.
func assemble(files []string, docs []decodedDoc) (*Config, Violations) {
	cfg := &Config{Files: files}
	var vs Violations
	for _, d := range docs {
		switch o := d.obj.(type) {
		case *Service:
			cfg.Services = append(cfg.Services, o)
		case *RouteBudget:
			cfg.RouteBudgets = append(cfg.RouteBudgets, o)
		case *MeshConfig:
			if cfg.Mesh != nil {
				vs = append(vs, Violation{
					Pos:     o.Pos,
					Path:    "kind",
					Message: fmt.Sprintf("at most one MeshConfig is allowed (first at %s)", posString(cfg.Mesh.Pos)),
				})
				continue
			}
			cfg.Mesh = o
		}
	}
	return cfg, vs
}

// posString renders "file:line:col" (or less when unknown).
func posString(p Pos) string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// sortViolations orders violations by file, line and column, keeping the
// order of violations at the same place.
func sortViolations(vs Violations) {
	slices.SortStableFunc(vs, func(a, b Violation) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
		)
	})
}

// listFiles expands paths into the files Load reads, in order, without
// repeats.
func listFiles(paths []string) ([]string, error) {
	var (
		files []string
		errs  []error
	)
	seen := map[string]bool{}
	add := func(f string) {
		if key := filepath.Clean(f); !seen[key] {
			seen[key] = true
			files = append(files, f)
		}
	}
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			errs = append(errs, fmt.Errorf("v1alpha1: %w", err))
			continue
		}
		if !info.IsDir() {
			add(root)
			continue
		}
		err = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != root && strings.HasPrefix(e.Name(), ".") {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !e.IsDir() {
				if ext := filepath.Ext(p); ext == ".yaml" || ext == ".yml" {
					add(p)
				}
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("v1alpha1: reading %s: %w", root, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return files, nil
}
