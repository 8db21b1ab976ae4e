// Package scenario reads the bench harness's scenarios: YAML files under
// bench/scenarios, one scenario per file, told apart by their `kind`
// (overhead, cpscale or storm). Overhead and cpscale scenarios are decoded
// here, strictly (unknown fields are errors); storm scenarios belong to the
// storm package and are only recognised here, so the harness can hand their
// path to it.
package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Kinds of scenarios.
const (
	KindOverhead = "overhead"
	KindCPScale  = "cpscale"
	KindStorm    = "storm"
)

// ErrInvalid is wrapped by every error about a scenario's content.
var ErrInvalid = errors.New("scenario: invalid")

// Scenario is one scenario file. Exactly one of Overhead and CPScale is set
// for those kinds; neither for storm (see Path).
type Scenario struct {
	// Path is the file the scenario was read from.
	Path string
	// Kind is overhead, cpscale or storm.
	Kind string
	// Name is the scenario's name (default: the file name without .yaml);
	// results are written to <Name>.json.
	Name string
	// Overhead is the decoded overhead scenario.
	Overhead *Overhead
	// CPScale is the decoded control-plane scale scenario.
	CPScale *CPScale
}

// Duration is a YAML duration string ("250ms", "2s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// header is what every scenario file starts with.
type header struct {
	Kind string `yaml:"kind"`
	Name string `yaml:"name"`
}

// LoadDir reads every *.yaml file directly under dir (not subdirectories:
// they hold the scenarios' own data, such as policy directories), sorted by
// name. All errors are reported together; names must be unique.
func LoadDir(dir string) ([]*Scenario, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: no *.yaml files in %s", ErrInvalid, dir)
	}
	slices.Sort(paths)
	var out []*Scenario
	var errs []error
	seen := map[string]string{}
	for _, p := range paths {
		sc, err := Load(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, ok := seen[sc.Name]; ok {
			errs = append(errs, fmt.Errorf("%w: %s: name %q already used by %s", ErrInvalid, p, sc.Name, prev))
			continue
		}
		seen[sc.Name] = p
		out = append(out, sc)
	}
	return out, errors.Join(errs...)
}

// Load reads one scenario file.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	var h header
	if err := yaml.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, path, err)
	}
	sc := &Scenario{Path: path, Kind: h.Kind, Name: h.Name}
	if sc.Name == "" {
		sc.Name = strings.TrimSuffix(filepath.Base(path), ".yaml")
	}
	switch h.Kind {
	case KindOverhead:
		sc.Overhead = &Overhead{}
		err = decodeStrict(b, sc.Overhead)
		if err == nil {
			err = sc.Overhead.validate(filepath.Dir(path))
		}
	case KindCPScale:
		sc.CPScale = &CPScale{}
		err = decodeStrict(b, sc.CPScale)
		if err == nil {
			err = sc.CPScale.validate()
		}
	case KindStorm:
		// Decoded by the storm package.
	default:
		err = fmt.Errorf("%w: kind %q, want %s, %s or %s", ErrInvalid, h.Kind, KindOverhead, KindCPScale, KindStorm)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// decodeStrict decodes b into v, refusing unknown fields.
func decodeStrict(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}
