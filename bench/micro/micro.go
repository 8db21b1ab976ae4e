// Package micro runs the engine's micro-benchmarks (`go test -bench` with
// -benchmem), keeps their raw output for benchstat, and reduces each
// benchmark to the medians of its runs.
package micro

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hopguard/hopguard/bench/result"
)

// Options configure Run.
type Options struct {
	// Dir is the module root the packages are relative to (required).
	Dir string
	// Go is the go command (default "go").
	Go string
	// Packages are the packages to benchmark, relative to Dir
	// ("./filters/engine"); those without benchmarks are skipped.
	Packages []string
	// Count is -count (how many times each benchmark runs; ≥ 1).
	Count int
	// Benchtime is -benchtime ("100ms", "1000x").
	Benchtime string
	// Previous is the raw output of an earlier run to compare with (may be
	// empty).
	Previous string
	// Benchstat runs benchstat in dir with the given files (names relative
	// to dir, which become its column headers) and returns its output; nil
	// skips the comparison.
	Benchstat func(ctx context.Context, dir string, files ...string) (string, error)
	// TempDir holds the files handed to Benchstat (required with it).
	TempDir string
}

// ErrNoBenchmarks is returned when the output holds no benchmark lines.
var ErrNoBenchmarks = errors.New("micro: no benchmark results")

// Run benchmarks the packages and returns the result; a benchstat failure
// is recorded in the result, not returned.
func Run(ctx context.Context, opts Options) (*result.Micro, error) {
	goCmd := opts.Go
	if goCmd == "" {
		goCmd = "go"
	}
	var pkgs []string
	for _, p := range opts.Packages {
		if hasBenchmarks(filepath.Join(opts.Dir, p)) {
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("%w: none of %v has benchmarks", ErrNoBenchmarks, opts.Packages)
	}
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem",
		"-count", strconv.Itoa(opts.Count), "-benchtime", opts.Benchtime}, pkgs...)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = opts.Dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("micro: %s %s: %w\n%s%s", goCmd, strings.Join(args, " "), err, out, stderr.String())
	}
	benches, err := Parse(string(out))
	if err != nil {
		return nil, err
	}
	res := &result.Micro{Count: opts.Count, Benchtime: opts.Benchtime, Benchmarks: benches, Raw: string(out)}
	for _, p := range pkgs {
		res.Packages = append(res.Packages, p)
	}
	if opts.Benchstat == nil {
		res.BenchstatNote = "benchstat not run"
		return res, nil
	}
	res.Benchstat, res.BenchstatNote = compare(ctx, opts, res.Raw)
	return res, nil
}

// compare runs benchstat on the previous and the current raw output (or
// the current alone) and says what it compared.
func compare(ctx context.Context, opts Options, raw string) (string, string) {
	write := func(name, text string) (string, error) {
		return name, os.WriteFile(filepath.Join(opts.TempDir, name), []byte(text), 0o644)
	}
	cur, err := write("current.txt", raw)
	if err != nil {
		return "", fmt.Sprintf("benchstat not run: %v", err)
	}
	files := []string{cur}
	note := "benchstat summary of this run (no previous run to compare with); medians above are computed by the harness"
	if opts.Previous != "" {
		prev, err := write("previous.txt", opts.Previous)
		if err != nil {
			return "", fmt.Sprintf("benchstat not run: %v", err)
		}
		files = []string{prev, cur}
		note = "benchstat comparison: previous.txt is the run recorded before this one in bench/results/micro.json, current.txt is this run"
	}
	out, err := opts.Benchstat(ctx, opts.TempDir, files...)
	if err != nil {
		return "", fmt.Sprintf("benchstat unavailable (%v); the medians above are computed by the harness", err)
	}
	return out, note
}

// hasBenchmarks reports whether dir has a _test.go file declaring a benchmark.
func hasBenchmarks(dir string) bool {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return false
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte("func Benchmark")) {
			return true
		}
	}
	return false
}

// Parse reads `go test -bench -benchmem` output and returns, per package
// and benchmark (GOMAXPROCS suffix removed), the medians of its runs, in
// order of first appearance.
func Parse(out string) ([]result.MicroBench, error) {
	type key struct{ pkg, name string }
	type samples struct{ ns, bytes, allocs []float64 }
	var order []key
	all := map[key]*samples{}
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 4 || fields[3] != "ns/op" {
			continue
		}
		name := fields[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		k := key{pkg, name}
		s := all[k]
		if s == nil {
			s = &samples{}
			all[k] = s
			order = append(order, k)
		}
		ns, err := strconv.ParseFloat(fields[2], 64)
		if err != nil {
			return nil, fmt.Errorf("micro: %q: %w", line, err)
		}
		s.ns = append(s.ns, ns)
		for i := 4; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			switch fields[i+1] {
			case "B/op":
				s.bytes = append(s.bytes, v)
			case "allocs/op":
				s.allocs = append(s.allocs, v)
			}
		}
	}
	if len(order) == 0 {
		return nil, ErrNoBenchmarks
	}
	out2 := make([]result.MicroBench, 0, len(order))
	for _, k := range order {
		s := all[k]
		out2 = append(out2, result.MicroBench{
			Package: k.pkg, Name: k.name, Runs: len(s.ns),
			NsPerOp: median(s.ns), BytesPerOp: median(s.bytes), AllocsPerOp: median(s.allocs),
			NsMin: slices.Min(s.ns), NsMax: slices.Max(s.ns),
		})
	}
	return out2, nil
}

// median returns the median of v (0 for none).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
