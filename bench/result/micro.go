package result

import "fmt"

// Micro is the engine micro-benchmarks' result.
type Micro struct {
	// Count is the -count every benchmark ran with.
	Count int `json:"count"`
	// Benchtime is the -benchtime of each run.
	Benchtime string `json:"benchtime"`
	// Packages are the benchmarked import paths.
	Packages []string `json:"packages"`
	// Benchmarks are the medians per benchmark.
	Benchmarks []MicroBench `json:"benchmarks"`
	// Raw is the `go test -bench` output, as benchstat reads it.
	Raw string `json:"raw"`
	// Benchstat is benchstat's output comparing the previous run's Raw
	// with this one (or summarising this one when there was none); empty
	// when benchstat could not run, see BenchstatNote.
	Benchstat string `json:"benchstat,omitempty"`
	// BenchstatNote says what Benchstat compares, or why it is missing.
	BenchstatNote string `json:"benchstatNote"`
}

// MicroBench is one benchmark's medians over its runs.
type MicroBench struct {
	// Package is the import path, Name the benchmark without the -N suffix.
	Package string `json:"package"`
	Name    string `json:"name"`
	// Runs is the number of result lines (= Count).
	Runs int `json:"runs"`
	// NsPerOp, BytesPerOp and AllocsPerOp are medians over the runs.
	NsPerOp     float64 `json:"nsPerOp"`
	BytesPerOp  float64 `json:"bytesPerOp"`
	AllocsPerOp float64 `json:"allocsPerOp"`
	// NsMin and NsMax bound NsPerOp over the runs.
	NsMin float64 `json:"nsMin"`
	NsMax float64 `json:"nsMax"`
}

// Check verifies that every benchmark ran Count times and its median lies
// within its range.
func (m *Micro) Check() error {
	if len(m.Benchmarks) == 0 {
		return fmt.Errorf("%w: no benchmarks", ErrInconsistent)
	}
	for _, b := range m.Benchmarks {
		if b.Runs != m.Count {
			return fmt.Errorf("%w: %s ran %d times, want %d", ErrInconsistent, b.Name, b.Runs, m.Count)
		}
		if b.NsPerOp <= 0 || b.NsMin > b.NsPerOp || b.NsPerOp > b.NsMax {
			return fmt.Errorf("%w: %s: median %g ns/op outside [%g, %g]", ErrInconsistent, b.Name, b.NsPerOp, b.NsMin, b.NsMax)
		}
		if b.BytesPerOp < 0 || b.AllocsPerOp < 0 {
			return fmt.Errorf("%w: %s: negative allocation figures", ErrInconsistent, b.Name)
		}
	}
	if m.Raw == "" {
		return fmt.Errorf("%w: no raw output", ErrInconsistent)
	}
	return nil
}
