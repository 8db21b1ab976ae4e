// Package result defines the machine-readable results of the bench
// harness: one JSON file per scenario under bench/results, each carrying the
// machine it ran on. The report is rendered from these files alone, so
// every number in it can be traced back to a file, and Check verifies that
// a file is internally consistent (counts add up, percentiles are ordered,
// ratios are computed from the numbers shown) without judging any timing.
package result

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Kinds of result files.
const (
	KindOverhead = "overhead"
	KindCPScale  = "cpscale"
	KindMicro    = "micro"
	KindStorm    = "storm"
)

// ErrInconsistent is wrapped by every Check failure.
var ErrInconsistent = errors.New("result: inconsistent")

// File is one scenario's result: exactly one of the kind-specific fields
// is set, the one named by Kind.
type File struct {
	// Scenario is the scenario's name (the file is <Scenario>.json).
	Scenario string `json:"scenario"`
	// Kind is overhead, cpscale, micro or storm.
	Kind string `json:"kind"`
	// Source is the scenario file the run was declared by ("" for micro).
	Source string `json:"source,omitempty"`
	// Quick is true for a reduced-size run (make bench-quick).
	Quick bool `json:"quick"`
	// Machine is where and on what the scenario ran.
	Machine Machine `json:"machine"`
	// Seconds is the scenario's wall-clock duration.
	Seconds float64 `json:"seconds"`
	// Overhead is set for kind overhead.
	Overhead *Overhead `json:"overhead,omitempty"`
	// CPScale is set for kind cpscale.
	CPScale *CPScale `json:"cpscale,omitempty"`
	// Micro is set for kind micro.
	Micro *Micro `json:"micro,omitempty"`
	// Storm is the storm package's own result (kind storm), kept verbatim:
	// the storm package checks and renders it.
	Storm json.RawMessage `json:"storm,omitempty"`
}

// Machine describes the host and the build a result was measured with.
type Machine struct {
	// CPU is the model name from /proc/cpuinfo ("unknown" elsewhere).
	CPU string `json:"cpu"`
	// Cores is runtime.NumCPU.
	Cores int `json:"cores"`
	// GOMAXPROCS is the scheduler's parallelism during the run.
	GOMAXPROCS int `json:"gomaxprocs"`
	// GoVersion is runtime.Version.
	GoVersion string `json:"goVersion"`
	// OS and Arch are runtime.GOOS and runtime.GOARCH.
	OS   string `json:"os"`
	Arch string `json:"arch"`
	// Commit is `git rev-parse HEAD` of the working tree ("unknown" outside git).
	Commit string `json:"commit"`
	// Time is when the scenario started (UTC).
	Time time.Time `json:"time"`
}

// Latency summarises a latency distribution in microseconds.
type Latency struct {
	// Count is the number of recorded values.
	Count int64 `json:"count"`
	// P50, P90, P99, P999 are percentiles; Max and Mean what they say.
	P50  float64 `json:"p50Us"`
	P90  float64 `json:"p90Us"`
	P99  float64 `json:"p99Us"`
	P999 float64 `json:"p999Us"`
	Max  float64 `json:"maxUs"`
	Mean float64 `json:"meanUs"`
}

// Check reports percentiles out of order or negative values.
func (l Latency) Check() error {
	if l.Count < 0 {
		return fmt.Errorf("%w: negative count %d", ErrInconsistent, l.Count)
	}
	if l.Count == 0 {
		return nil
	}
	v := []float64{0, l.P50, l.P90, l.P99, l.P999, l.Max}
	if !slices.IsSorted(v) {
		return fmt.Errorf("%w: percentiles out of order: p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f", ErrInconsistent, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	if l.Mean < 0 || l.Mean > l.Max {
		return fmt.Errorf("%w: mean %.1f outside [0, max %.1f]", ErrInconsistent, l.Mean, l.Max)
	}
	return nil
}

// Ratio is a/b, or 0 when b is 0 (shown as "n/a").
func Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// sameRatio reports whether got is the ratio a/b up to rounding.
func sameRatio(got, a, b float64) bool {
	want := Ratio(a, b)
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

// Check verifies the file: its kind-specific result exists and is
// consistent. Storm results are checked by the storm package (see the
// harness), so only their presence is checked here.
func (f *File) Check() error {
	if f.Scenario == "" {
		return fmt.Errorf("%w: no scenario name", ErrInconsistent)
	}
	if f.Machine.GoVersion == "" || f.Machine.Cores <= 0 {
		return fmt.Errorf("%w: %s: no machine info", ErrInconsistent, f.Scenario)
	}
	var err error
	switch f.Kind {
	case KindOverhead:
		err = checkSet(f.Overhead != nil, f.Overhead.Check)
	case KindCPScale:
		err = checkSet(f.CPScale != nil, f.CPScale.Check)
	case KindMicro:
		err = checkSet(f.Micro != nil, f.Micro.Check)
	case KindStorm:
		err = checkSet(len(f.Storm) > 0, func() error { return nil })
	default:
		err = fmt.Errorf("%w: unknown kind %q", ErrInconsistent, f.Kind)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", f.Scenario, err)
	}
	return nil
}

func checkSet(set bool, check func() error) error {
	if !set {
		return fmt.Errorf("%w: result missing", ErrInconsistent)
	}
	return check()
}

// Write writes f as dir/<scenario>.json (indented, trailing newline).
func Write(dir string, f *File) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("result: encode %s: %w", f.Scenario, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, f.Scenario+".json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	return nil
}

// ReadDir reads every *.json result file of dir, sorted by scenario name.
// A file that does not decode is an error.
func ReadDir(dir string) ([]*File, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	var files []*File
	var errs []error
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("result: %w", err))
			continue
		}
		var f File
		if err := json.Unmarshal(b, &f); err != nil {
			errs = append(errs, fmt.Errorf("result: %s: %w", p, err))
			continue
		}
		files = append(files, &f)
	}
	slices.SortFunc(files, func(a, b *File) int { return strings.Compare(a.Scenario, b.Scenario) })
	return files, errors.Join(errs...)
}
