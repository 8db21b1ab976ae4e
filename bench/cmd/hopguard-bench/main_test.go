package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hopguard/hopguard/bench/result"
)

func stderrFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func microFile() *result.File {
	return &result.File{Scenario: "micro", Kind: result.KindMicro,
		Machine: result.Machine{CPU: "t", Cores: 1, GOMAXPROCS: 1, GoVersion: "go", Commit: "c", Time: time.Unix(0, 0)},
		Micro: &result.Micro{Count: 1, Benchtime: "1x", Raw: "x",
			Benchmarks: []result.MicroBench{{Name: "BenchmarkX", Runs: 1, NsPerOp: 1, NsMin: 1, NsMax: 1}}}}
}

func TestParseFlags_Success(t *testing.T) {
	cfg, err := parseFlags([]string{"-quick", "-only", "overhead, micro"}, stderrFile(t))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.quick || len(cfg.only) != 2 || !cfg.selected("micro") || cfg.selected("cpscale") {
		t.Errorf("config %+v", cfg)
	}
	if cfg.microCount != 2 || cfg.microTime != "20ms" {
		t.Errorf("quick micro defaults %d %q, want 2 and 20ms", cfg.microCount, cfg.microTime)
	}
}

func TestRun_UsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{"-only", "nope"}, {"stray"}, {"-bogus"}} {
		if got := run(context.Background(), args, stderrFile(t)); got != 2 {
			t.Errorf("run(%v) = %d, want 2", args, got)
		}
	}
}

func TestRun_ReportOnlyRendersExistingResults(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "results")
	if err := result.Write(out, microFile()); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "REPORT.md")
	readme := filepath.Join(dir, "README.md")
	if err := os.WriteFile(readme, []byte("# x\n<!-- headline:start -->\nold\n<!-- headline:end -->\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := run(context.Background(), []string{"-report-only", "-out", out, "-report", report, "-readme", readme}, stderrFile(t)); got != 0 {
		t.Fatalf("run = %d, want 0", got)
	}
	b, err := os.ReadFile(report)
	if err != nil || !strings.Contains(string(b), "| X | 1.0 |") {
		t.Errorf("report %v:\n%s", err, b)
	}
	b, err = os.ReadFile(readme)
	if err != nil || strings.Contains(string(b), "old") || !strings.Contains(string(b), "Measured on commit `c`") {
		t.Errorf("readme %v:\n%s", err, b)
	}
}

func TestRun_ReportOnlyWithoutResultsExits1(t *testing.T) {
	dir := t.TempDir()
	if got := run(context.Background(), []string{"-report-only", "-out", dir, "-report", filepath.Join(dir, "R.md"), "-readme", ""}, stderrFile(t)); got != 1 {
		t.Errorf("run = %d, want 1", got)
	}
}

func TestCheckResults_Errors(t *testing.T) {
	dir := t.TempDir()
	bad := microFile()
	bad.Micro.Benchmarks[0].Runs = 3
	if err := result.Write(dir, bad); err != nil {
		t.Fatal(err)
	}
	err := checkResults(dir, []string{"micro", "overhead"})
	if !errors.Is(err, result.ErrInconsistent) {
		t.Fatalf("checkResults = %v, want ErrInconsistent", err)
	}
	for _, want := range []string{"ran 3 times", "overhead: no result file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
