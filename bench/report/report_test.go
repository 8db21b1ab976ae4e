package report

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hopguard/hopguard/bench/result"
)

func lat(p50, p99 float64, n int64) result.Latency {
	return result.Latency{Count: n, P50: p50, P90: p50, P99: p99, P999: p99, Max: p99, Mean: p50}
}

func files() []*result.File {
	m := result.Machine{CPU: "Test CPU", Cores: 2, GOMAXPROCS: 2, GoVersion: "go1.26", Commit: "0123456789abcdef", Time: time.Unix(0, 0)}
	o := &result.Overhead{Rates: []float64{100, 200}, P99BoundUs: 10000, MinAchieved: 0.95, Floor: lat(50, 80, 10), Rounds: 1, StepSeconds: 1,
		Mix: map[string]int{"allow": 8, "drop": 2}}
	for _, s := range []struct {
		srv       string
		rate      float64
		p50, p99  float64
		completed int64
	}{
		{result.ServerHopguard, 100, 300, 900, 100}, {result.ServerNoop, 100, 200, 600, 100},
		{result.ServerHopguard, 200, 400, 1200, 150}, {result.ServerNoop, 200, 250, 700, 200},
	} {
		o.Steps = append(o.Steps, result.OverheadStep{Server: s.srv, Rate: s.rate, Scheduled: s.completed, Completed: s.completed, Seconds: 1,
			Achieved: float64(s.completed), Outcomes: map[string]int64{"continue": s.completed}, Latency: lat(s.p50, s.p99, s.completed),
			Service: lat(s.p50/2, s.p99/2, s.completed), Lag: lat(5, 10, s.completed)})
	}
	o.Derive()
	c := &result.CPScale{Services: 1000, RoutesPerService: 10, Resources: 5000, CompileSeconds: 1, SnapshotsSeconds: 2,
		Runs: []result.CPScaleRun{
			{Server: result.ServerHopguard, Clients: 1000, Acked: 1000, ChangeToAck: lat(200_000, 400_000, 1000)},
			{Server: result.ServerBare, Clients: 1000, Acked: 1000, ChangeToAck: lat(100_000, 200_000, 1000)},
		}}
	c.Derive()
	return []*result.File{
		{Scenario: "cpscale", Kind: result.KindCPScale, Machine: m, CPScale: c},
		{Scenario: "micro", Kind: result.KindMicro, Machine: m, Micro: &result.Micro{Count: 1, Benchtime: "1x", Raw: "x", BenchstatNote: "benchstat not run",
			Benchmarks: []result.MicroBench{{Package: "github.com/hopguard/hopguard/filters/engine", Name: "BenchmarkDecide_Allow", Runs: 1, NsPerOp: 250, NsMin: 250, NsMax: 250}}}},
		{Scenario: "overhead", Kind: result.KindOverhead, Machine: m, Overhead: o},
		{Scenario: "storm-a", Kind: result.KindStorm, Machine: m, Storm: []byte(`{}`)},
	}
}

func TestRender_Success(t *testing.T) {
	dir := t.TempDir()
	out, err := Render(files(), Options{PlotDir: filepath.Join(dir, "plots"), RelPlotDir: "results/plots", Sections: map[string]SectionFunc{
		result.KindStorm: func(f *result.File, plotDir, relDir string) (string, error) {
			return "## storm " + f.Scenario + " via " + relDir + "\n", nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	md := out.Markdown
	for _, want := range []string{
		// Headline ratios are the derived ones: p50 300/200, p99 900/600 at 100/s; saturation 100/200.
		"| ext_proc p50 vs no-op at 100/s | 300 µs | 200 µs | 1.50× | ≤ 1.10× | **no** |",
		"| ext_proc p99 vs no-op at 100/s | 900 µs | 600 µs | 1.50× | ≤ 1.25× | **no** |",
		"| ext_proc max sustainable rate vs no-op | 100/s | 200/s | 0.50× | ≥ 0.90× | **no** |",
		"| config change → all ACKs p99, 1000 clients | 400.00 ms | 200.00 ms | — | ≤ 1 s | yes |",
		"| config change → ACK p99 vs bare go-control-plane, 1000 clients | 400.00 ms | 200.00 ms | 2.00× | ≤ 1.50× | **no** |",
		"## Where hopguard is not yet at its goals",
		"- **ext_proc p50 vs no-op at 100/s**: measured 1.50×",
		"![latency vs rate](results/plots/overhead-latency.svg)",
		"![change to ACK](results/plots/cpscale-acks.svg)",
		"| filters/engine | Decide_Allow | 250.0 |",
		"## storm storm-a via results/plots",
		"`0123456789ab`",
		"## How to reproduce",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Sections follow the kind order: overhead, storm, cpscale, micro.
	if o, s, c := strings.Index(md, "## Filter overhead"), strings.Index(md, "## storm"), strings.Index(md, "## Control-plane scale"); !(o < s && s < c) {
		t.Errorf("section order overhead %d, storm %d, cpscale %d", o, s, c)
	}
	for _, p := range []string{"overhead-latency.svg", "cpscale-acks.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, "plots", p))
		if err != nil || !strings.Contains(string(b), "<svg") {
			t.Errorf("plot %s: %v, svg=%v", p, err, strings.Contains(string(b), "<svg"))
		}
	}
}

func TestRender_Errors(t *testing.T) {
	boom := errors.New("test: boom")
	_, err := Render(files(), Options{PlotDir: t.TempDir(), Sections: map[string]SectionFunc{
		result.KindStorm: func(*result.File, string, string) (string, error) { return "", boom },
	}})
	if !errors.Is(err, boom) {
		t.Fatalf("Render error = %v, want the section's error", err)
	}
}

func TestRender_UnknownKindIsListed(t *testing.T) {
	out, err := Render(files()[3:], Options{PlotDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if md := out.Markdown; !strings.Contains(md, `No renderer for results of kind "storm"`) {
		t.Errorf("report does not say the storm result has no renderer:\n%s", out.Markdown)
	}
}

func TestRender_HeadlineTable(t *testing.T) {
	out, err := Render(files(), Options{PlotDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| ext_proc p50 vs no-op at 100/s | 300 µs | 200 µs | 1.50× | ≤ 1.10× | **no** |",
		"Measured on commit `0123456789ab` (Test CPU, 2 cores, go1.26); details, plots and the goals not yet met in [REPORT.md](bench/REPORT.md)",
	} {
		if got := out.Headline("bench/REPORT.md"); !strings.Contains(got, want) {
			t.Errorf("headline lacks %q:\n%s", want, got)
		}
	}
}

func TestSpliceHeadline_Success(t *testing.T) {
	doc := "intro\n" + MarkerStart + "\nold\n" + MarkerEnd + "\nrest\n"
	got, err := SpliceHeadline(doc, "new\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "intro\n" + MarkerStart + "\nnew\n" + MarkerEnd + "\nrest\n"; got != want {
		t.Errorf("SpliceHeadline = %q, want %q", got, want)
	}
}

func TestSpliceHeadline_Errors(t *testing.T) {
	for _, doc := range []string{"", MarkerEnd + MarkerStart, MarkerStart} {
		if _, err := SpliceHeadline(doc, "x"); !errors.Is(err, ErrNoMarkers) {
			t.Errorf("SpliceHeadline(%q) error = %v, want ErrNoMarkers", doc, err)
		}
	}
}
