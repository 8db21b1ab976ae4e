// Command hopguard-bench runs hopguard's benchmark scenarios and writes
// machine-readable results (bench/results/<scenario>.json, each with the
// machine and commit it ran on) and the report bench/REPORT.md, rendered
// from those files alone.
//
//	go run ./bench/cmd/hopguard-bench [-quick] [-scenarios bench/scenarios] [-out bench/results]
//	    [-report bench/REPORT.md] [-only overhead,storm,cpscale,micro] [-report-only]
//	    [-cpuprofile FILE]
//
// After a run it checks every result file for internal consistency (counts
// add up, percentiles ordered, ratios computed from the numbers shown) and
// exits 1 when one is missing or inconsistent, never because a timing goal
// was missed. Exit 2 is a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/hopguard/hopguard/bench/cpscale"
	"github.com/hopguard/hopguard/bench/micro"
	"github.com/hopguard/hopguard/bench/overhead"
	"github.com/hopguard/hopguard/bench/report"
	"github.com/hopguard/hopguard/bench/result"
	"github.com/hopguard/hopguard/bench/scenario"
)

// config is the parsed command line.
type config struct {
	quick      bool
	scenarios  string
	out        string
	reportPath string
	only       []string
	reportOnly bool
	readme     string
	microCount int
	microTime  string
	goCmd      string
	cpuProfile string
}

// errUsage marks command-line mistakes (exit 2).
var errUsage = errors.New("hopguard-bench: usage")

// allKinds returns the kinds the harness runs, in order.
func allKinds() []string {
	return []string{scenario.KindOverhead, scenario.KindStorm, scenario.KindCPScale, result.KindMicro}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stderr *os.File) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	p := newProgress(stderr, time.Now())
	if cfg.cpuProfile != "" {
		stopProfile, err := startCPUProfile(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer func() {
			if err := stopProfile(); err != nil {
				fmt.Fprintln(stderr, err)
			}
		}()
	}
	if !cfg.reportOnly {
		if err := runScenarios(ctx, cfg, p); err != nil {
			p.Done("FAILED: %v", err)
			// Still render what exists, so partial results can be read.
			if rerr := render(cfg); rerr != nil {
				p.Done("report: %v", rerr)
			}
			return 1
		}
	}
	if err := render(cfg); err != nil {
		p.Done("FAILED: %v", err)
		return 1
	}
	p.Done("report written to %s", cfg.reportPath)
	return 0
}

// startCPUProfile profiles the process into path until the returned
// function is called.
func startCPUProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("hopguard-bench: -cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(fmt.Errorf("hopguard-bench: -cpuprofile: %w", err), f.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("hopguard-bench: -cpuprofile: %w", err)
		}
		return nil
	}, nil
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("hopguard-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &config{}
	var only string
	fs.BoolVar(&cfg.quick, "quick", false, "run every scenario at its small size (make bench-quick)")
	fs.StringVar(&cfg.scenarios, "scenarios", "bench/scenarios", "directory of scenario YAML files")
	fs.StringVar(&cfg.out, "out", "bench/results", "directory of result JSON files (and plots/)")
	fs.StringVar(&cfg.reportPath, "report", "bench/REPORT.md", "report to (re)write")
	fs.StringVar(&only, "only", "", "comma-separated kinds to run: "+strings.Join(allKinds(), ","))
	fs.BoolVar(&cfg.reportOnly, "report-only", false, "re-render the report from the existing results (runs nothing)")
	fs.StringVar(&cfg.readme, "readme", "bench/README.md", "file whose <!-- headline:start/end --> block gets the headline table (not with -quick; empty: none)")
	fs.IntVar(&cfg.microCount, "micro-count", 0, "go test -count for the micro-benchmarks (default 6, quick 2)")
	fs.StringVar(&cfg.microTime, "micro-benchtime", "", "go test -benchtime for the micro-benchmarks (default 200ms, quick 20ms)")
	fs.StringVar(&cfg.goCmd, "go", "go", "the go command")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the run (go tool pprof) to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected arguments %v", errUsage, fs.Args())
	}
	if only != "" {
		for _, k := range strings.Split(only, ",") {
			k = strings.TrimSpace(k)
			if !slices.Contains(allKinds(), k) {
				return nil, fmt.Errorf("%w: -only: unknown kind %q (want %s)", errUsage, k, strings.Join(allKinds(), ","))
			}
			cfg.only = append(cfg.only, k)
		}
	}
	if cfg.microCount == 0 {
		cfg.microCount = 6
		if cfg.quick {
			cfg.microCount = 2
		}
	}
	if cfg.microTime == "" {
		cfg.microTime = "200ms"
		if cfg.quick {
			cfg.microTime = "20ms"
		}
	}
	return cfg, nil
}

// selected reports whether kind is to run.
func (c *config) selected(kind string) bool {
	return len(c.only) == 0 || slices.Contains(c.only, kind)
}

// runScenarios runs every selected scenario, writes its result, and checks
// every written file. It keeps going after a failure and returns them all.
func runScenarios(ctx context.Context, cfg *config, p *progress) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	scs, err := scenario.LoadDir(cfg.scenarios)
	if err != nil {
		return err
	}
	var (
		errs    []error
		written []string
	)
	for _, kind := range allKinds() {
		if !cfg.selected(kind) {
			continue
		}
		if kind == result.KindMicro {
			f, err := runMicro(ctx, cfg, root, p)
			errs = append(errs, err)
			if err == nil {
				written = append(written, f.Scenario)
			}
			continue
		}
		for _, sc := range scs {
			if sc.Kind != kind {
				continue
			}
			f, err := runScenario(ctx, cfg, root, sc, p)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", sc.Name, err))
				continue
			}
			written = append(written, f.Scenario)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(written) == 0 {
		return fmt.Errorf("hopguard-bench: no scenario selected by -only %s in %s", strings.Join(cfg.only, ","), cfg.scenarios)
	}
	return checkResults(cfg.out, written)
}

// runScenario runs one YAML scenario and writes its result file.
func runScenario(ctx context.Context, cfg *config, root string, sc *scenario.Scenario, p *progress) (*result.File, error) {
	start := time.Now()
	f := &result.File{Scenario: sc.Name, Kind: sc.Kind, Source: relTo(root, sc.Path), Quick: cfg.quick, Machine: result.DetectMachine(ctx, root, start)}
	p.Done("%s: running %s", sc.Name, sc.Path)
	var err error
	switch sc.Kind {
	case scenario.KindOverhead:
		f.Overhead, err = overhead.Run(ctx, sc.Overhead, overhead.Options{Quick: cfg.quick, Progress: p.Status})
	case scenario.KindCPScale:
		f.CPScale, err = cpscale.Run(ctx, sc.CPScale, cpscale.Options{Quick: cfg.quick, TempDir: os.TempDir(), Progress: p.Status})
	case scenario.KindStorm:
		f.Storm, err = runStorm(ctx, sc.Path, cfg.quick, p.Writer(), zap.NewNop())
	}
	if err != nil {
		return nil, err
	}
	f.Seconds = time.Since(start).Seconds()
	if err := result.Write(cfg.out, f); err != nil {
		return nil, err
	}
	p.Done("%s: done in %.0f s", sc.Name, f.Seconds)
	return f, nil
}

// runMicro runs the micro-benchmarks and writes micro.json, comparing with
// the micro.json already there.
func runMicro(ctx context.Context, cfg *config, root string, p *progress) (*result.File, error) {
	start := time.Now()
	p.Done("micro: go test -bench (count %d, benchtime %s)", cfg.microCount, cfg.microTime)
	tmp, err := os.MkdirTemp("", "hopguard-bench-micro-")
	if err != nil {
		return nil, fmt.Errorf("hopguard-bench: %w", err)
	}
	defer os.RemoveAll(tmp)
	prev := ""
	if old, err := result.ReadDir(cfg.out); err == nil {
		for _, f := range old {
			if f.Kind == result.KindMicro && f.Micro != nil {
				prev = f.Micro.Raw
			}
		}
	}
	f := &result.File{Scenario: result.KindMicro, Kind: result.KindMicro, Quick: cfg.quick, Machine: result.DetectMachine(ctx, root, start)}
	f.Micro, err = micro.Run(ctx, micro.Options{
		Dir: root, Go: cfg.goCmd, Count: cfg.microCount, Benchtime: cfg.microTime, Previous: prev, TempDir: tmp,
		Packages:  []string{"./filters/engine", "./filters/idempotency", "./bench/storm"},
		Benchstat: benchstat(cfg.goCmd),
	})
	if err != nil {
		return nil, err
	}
	f.Seconds = time.Since(start).Seconds()
	if err := result.Write(cfg.out, f); err != nil {
		return nil, err
	}
	p.Done("micro: %d benchmarks in %.0f s", len(f.Micro.Benchmarks), f.Seconds)
	return f, nil
}

// checkResults reads the result files back and checks each one; every
// name in want must be there.
func checkResults(dir string, want []string) error {
	files, err := result.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	have := map[string]bool{}
	for _, f := range files {
		have[f.Scenario] = true
		if !slices.Contains(want, f.Scenario) {
			continue
		}
		if err := f.Check(); err != nil {
			errs = append(errs, err)
			continue
		}
		if f.Kind == result.KindStorm {
			if err := checkStorm(f.Storm); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.Scenario, err))
			}
		}
	}
	for _, w := range want {
		if !have[w] {
			errs = append(errs, fmt.Errorf("%w: %s: no result file in %s", result.ErrInconsistent, w, dir))
		}
	}
	return errors.Join(errs...)
}

// render rewrites the report from the result files.
func render(cfg *config) error {
	files, err := result.ReadDir(cfg.out)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("hopguard-bench: no results in %s", cfg.out)
	}
	plotDir := filepath.Join(cfg.out, "plots")
	rel, err := filepath.Rel(filepath.Dir(cfg.reportPath), plotDir)
	if err != nil {
		rel = plotDir
	}
	out, err := report.Render(files, report.Options{
		PlotDir: plotDir, RelPlotDir: rel,
		Sections: map[string]report.SectionFunc{result.KindStorm: stormSection},
		Goals:    map[string]report.GoalsFunc{result.KindStorm: stormGoals},
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg.reportPath, []byte(out.Markdown), 0o644); err != nil {
		return fmt.Errorf("hopguard-bench: %w", err)
	}
	if cfg.readme == "" || cfg.quick || slices.ContainsFunc(files, func(f *result.File) bool { return f.Quick }) {
		return nil
	}
	link, err := filepath.Rel(filepath.Dir(cfg.readme), cfg.reportPath)
	if err != nil {
		link = cfg.reportPath
	}
	return spliceReadme(cfg.readme, out.Headline(filepath.ToSlash(link)))
}

// spliceReadme rewrites the headline block of the file at path.
func spliceReadme(path, headline string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("hopguard-bench: %w", err)
	}
	updated, err := report.SpliceHeadline(string(doc), headline)
	if err != nil {
		return fmt.Errorf("hopguard-bench: %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(updated), 0o644); err != nil {
		return fmt.Errorf("hopguard-bench: %w", err)
	}
	return nil
}

// moduleRoot returns the directory of the enclosing go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("hopguard-bench: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("hopguard-bench: no go.mod above %s", dir)
		}
	}
}

// relTo returns path relative to root when possible.
func relTo(root, path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if r, err := filepath.Rel(root, abs); err == nil {
		return r
	}
	return path
}
