package result

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func lat(p50, p99, max float64, n int64) Latency {
	return Latency{Count: n, P50: p50, P90: (p50 + p99) / 2, P99: p99, P999: max, Max: max, Mean: p50}
}

func step(server string, rate float64, p50, p99 float64) OverheadStep {
	s := OverheadStep{Server: server, Rate: rate, Scheduled: int64(rate), Completed: int64(rate), Seconds: 1,
		Outcomes: map[string]int64{"continue": int64(rate)}, Latency: lat(p50, p99, 2*p99, int64(rate)),
		Service: lat(p50/2, p99/2, p99, int64(rate)), Lag: lat(1, 2, 3, int64(rate))}
	s.Achieved = float64(s.Completed) / s.Seconds
	return s
}

// validOverhead: both sustain 100/s; at 200/s hopguard's p99 exceeds the bound.
func validOverhead() *Overhead {
	o := &Overhead{Rates: []float64{100, 200}, P99BoundUs: 1000, MinAchieved: 0.95, Floor: lat(10, 20, 30, 5),
		Steps: []OverheadStep{
			step(ServerHopguard, 100, 110, 300), step(ServerNoop, 100, 100, 200),
			step(ServerHopguard, 200, 120, 5000), step(ServerNoop, 200, 100, 250),
		}}
	o.Derive()
	return o
}

func validCPScale() *CPScale {
	c := &CPScale{Services: 10, RoutesPerService: 2, Resources: 40, CompileSeconds: 0.1, SnapshotsSeconds: 0.2,
		Runs: []CPScaleRun{
			{Server: ServerHopguard, Clients: 3, Acked: 3, ChangeToAck: lat(300, 600, 700, 3),
				OneServiceClients: 2, OneServiceToAck: lat(50, 80, 90, 2)},
			{Server: ServerBare, Clients: 3, Acked: 3, ChangeToAck: lat(100, 200, 350, 3),
				OneServiceClients: 2, OneServiceToAck: lat(40, 60, 70, 2)},
		}}
	c.Derive()
	return c
}

func machine() Machine {
	return Machine{CPU: "test", Cores: 2, GOMAXPROCS: 2, GoVersion: "go1.26", Commit: "abc", Time: time.Unix(0, 0)}
}

func TestDerive_Overhead(t *testing.T) {
	o := validOverhead()
	want := OverheadRatios{Rate: 100, P50: 1.1, P99: 1.5, P999: 1.5, Saturation: 0.5}
	if diff := cmp.Diff(o.Headline, want, cmp.Comparer(func(a, b float64) bool { return a-b < 1e-12 && b-a < 1e-12 })); diff != "" {
		t.Errorf("headline (-got +want):\n%s", diff)
	}
	if o.Saturation[ServerHopguard] != 100 || o.Saturation[ServerNoop] != 200 {
		t.Errorf("saturation %v, want hopguard 100 and noop 200", o.Saturation)
	}
}

func TestDerive_ReferenceRate(t *testing.T) {
	o := &Overhead{Rates: []float64{100, 200, 300}, P99BoundUs: 1000, MinAchieved: 0.95, ReferenceRate: 100,
		Steps: []OverheadStep{
			step(ServerHopguard, 100, 110, 300), step(ServerNoop, 100, 100, 200),
			step(ServerHopguard, 200, 150, 400), step(ServerNoop, 200, 100, 200),
			step(ServerHopguard, 300, 150, 4000), step(ServerNoop, 300, 100, 200),
		}}
	o.Derive()
	if o.Headline.Rate != 100 || o.AtHighest.Rate != 200 {
		t.Errorf("headline at %g, highest at %g; want 100 (the reference) and 200", o.Headline.Rate, o.AtHighest.Rate)
	}
	if o.AtHighest.P50 != 1.5 {
		t.Errorf("p50 ratio at the highest rate = %g, want 1.5", o.AtHighest.P50)
	}
	// A reference rate that is not sustained falls back to the highest.
	o.ReferenceRate = 300
	o.Derive()
	if o.Headline != o.AtHighest {
		t.Errorf("headline %+v, want the highest-rate comparison %+v", o.Headline, o.AtHighest)
	}
}

func TestCheck_Success(t *testing.T) {
	files := []*File{
		{Scenario: "o", Kind: KindOverhead, Machine: machine(), Overhead: validOverhead()},
		{Scenario: "c", Kind: KindCPScale, Machine: machine(), CPScale: validCPScale()},
		{Scenario: "m", Kind: KindMicro, Machine: machine(), Micro: &Micro{Count: 1, Raw: "x", Benchmarks: []MicroBench{{Name: "B", Runs: 1, NsPerOp: 2, NsMin: 2, NsMax: 2}}}},
		{Scenario: "s", Kind: KindStorm, Machine: machine(), Storm: []byte(`{}`)},
	}
	for _, f := range files {
		if err := f.Check(); err != nil {
			t.Errorf("%s: %v", f.Scenario, err)
		}
	}
}

func TestCheck_Errors(t *testing.T) {
	tests := []struct {
		name string
		file func() *File
		want string
	}{
		{"counts do not add up", func() *File {
			o := validOverhead()
			o.Steps[0].Dropped = 1
			return &File{Scenario: "o", Kind: KindOverhead, Machine: machine(), Overhead: o}
		}, "!= scheduled"},
		{"percentiles out of order", func() *File {
			o := validOverhead()
			o.Steps[1].Latency.P99 = 1
			return &File{Scenario: "o", Kind: KindOverhead, Machine: machine(), Overhead: o}
		}, "out of order"},
		{"headline not from the steps", func() *File {
			o := validOverhead()
			o.Headline.P50 = 0.9
			return &File{Scenario: "o", Kind: KindOverhead, Machine: machine(), Overhead: o}
		}, "headline"},
		{"achieved not from the counts", func() *File {
			o := validOverhead()
			o.Steps[2].Achieved *= 2
			return &File{Scenario: "o", Kind: KindOverhead, Machine: machine(), Overhead: o}
		}, "achieved"},
		{"unexpected answers", func() *File {
			o := validOverhead()
			o.Steps[0].Unexpected = 1
			return &File{Scenario: "o", Kind: KindOverhead, Machine: machine(), Overhead: o}
		}, "differ from what the mix expects"},
		{"missing step", func() *File {
			o := validOverhead()
			o.Steps = o.Steps[:3]
			return &File{Scenario: "o", Kind: KindOverhead, Machine: machine(), Overhead: o}
		}, "no noop step at 200/s"},
		{"client did not ack", func() *File {
			c := validCPScale()
			c.Runs[0].Acked = 2
			return &File{Scenario: "c", Kind: KindCPScale, Machine: machine(), CPScale: c}
		}, "2 acked"},
		{"one-service latencies not from its clients", func() *File {
			c := validCPScale()
			c.Runs[1].OneServiceClients = 3
			return &File{Scenario: "c", Kind: KindCPScale, Machine: machine(), CPScale: c}
		}, "one-service change reached 3 clients, 2 latencies"},
		{"one-service ratio not from the runs", func() *File {
			c := validCPScale()
			c.Ratios[0].OneServiceP99 = 9
			return &File{Scenario: "c", Kind: KindCPScale, Machine: machine(), CPScale: c}
		}, "ratios"},
		{"ratio not from the runs", func() *File {
			c := validCPScale()
			c.Ratios[0].P99 = 1
			return &File{Scenario: "c", Kind: KindCPScale, Machine: machine(), CPScale: c}
		}, "ratios"},
		{"bare run missing", func() *File {
			c := validCPScale()
			c.Runs = c.Runs[:1]
			c.Derive()
			return &File{Scenario: "c", Kind: KindCPScale, Machine: machine(), CPScale: c}
		}, "no bare run"},
		{"micro run count", func() *File {
			return &File{Scenario: "m", Kind: KindMicro, Machine: machine(), Micro: &Micro{Count: 2, Raw: "x", Benchmarks: []MicroBench{{Name: "B", Runs: 1, NsPerOp: 2, NsMin: 2, NsMax: 2}}}}
		}, "ran 1 times"},
		{"result missing", func() *File { return &File{Scenario: "o", Kind: KindOverhead, Machine: machine()} }, "result missing"},
		{"no machine", func() *File { return &File{Scenario: "o", Kind: KindOverhead, Overhead: validOverhead()} }, "no machine info"},
		{"unknown kind", func() *File { return &File{Scenario: "x", Kind: "x", Machine: machine()} }, "unknown kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.file().Check()
			if !errors.Is(err, ErrInconsistent) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, want ErrInconsistent containing %q", err, tt.want)
			}
		})
	}
}

func TestWriteReadDir_RoundTripKeepsFilesConsistent(t *testing.T) {
	dir := t.TempDir()
	in := &File{Scenario: "o", Kind: KindOverhead, Machine: machine(), Overhead: validOverhead()}
	if err := Write(dir, in); err != nil {
		t.Fatal(err)
	}
	files, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("%d files, want 1", len(files))
	}
	if diff := cmp.Diff(files[0], in); diff != "" {
		t.Errorf("round trip (-got +want):\n%s", diff)
	}
	if err := files[0].Check(); err != nil {
		t.Errorf("Check after round trip: %v", err)
	}
}

func TestParseCPUModel(t *testing.T) {
	got := parseCPUModel([]byte("processor\t: 0\nvendor_id\t: X\nmodel name\t: Test CPU @ 2GHz\nmodel name\t: other\n"))
	if got != "Test CPU @ 2GHz" {
		t.Errorf("parseCPUModel = %q", got)
	}
	if got := parseCPUModel([]byte("processor: 0\n")); got != "unknown" {
		t.Errorf("parseCPUModel without model = %q, want unknown", got)
	}
}
