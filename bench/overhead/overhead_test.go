package overhead

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hopguard/hopguard/bench/result"
	"github.com/hopguard/hopguard/bench/scenario"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// tinyScenario is the shipped overhead scenario at a test size.
func tinyScenario(t *testing.T) *scenario.Overhead {
	t.Helper()
	sc, err := scenario.Load("../scenarios/overhead.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o := sc.Overhead
	o.Quick = scenario.OverheadSize{Rates: []float64{100, 300}, Step: scenario.Duration(300 * time.Millisecond), Rounds: 1}
	o.FloorRoundTrips = 200
	return o
}

func TestRun_ResultIsConsistentAndHopguardDecides(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, tinyScenario(t), Options{Quick: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	for _, rate := range res.Rates {
		hg, _ := res.Step(result.ServerHopguard, rate)
		noop, _ := res.Step(result.ServerNoop, rate)
		if hg.Outcomes["reject:deadline-exhausted"] == 0 {
			t.Errorf("hopguard at %g/s: no deadline drops in %v", rate, hg.Outcomes)
		}
		for o := range noop.Outcomes {
			if o != "continue" {
				t.Errorf("noop at %g/s answered %q", rate, o)
			}
		}
		// The mix is 80/10/10: a tenth of hopguard's answers are drops.
		if got, want := float64(hg.Outcomes["reject:deadline-exhausted"])/float64(hg.Completed), 0.1; got < want-0.02 || got > want+0.02 {
			t.Errorf("hopguard at %g/s: drop share %.3f, want ≈ %.2f", rate, got, want)
		}
	}
	if res.Floor.Count != 200 {
		t.Errorf("floor count = %d, want 200", res.Floor.Count)
	}
}

func TestRun_Errors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*scenario.Overhead)
		want string
	}{
		{"route not in policy", func(o *scenario.Overhead) { o.Mix[0].Route = "bench/nope" }, `route "bench/nope" is not in the policy`},
		{"policy dir missing", func(o *scenario.Overhead) { o.Policy = t.TempDir() + "/none" }, "overhead: policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tinyScenario(t)
			tt.mod(o)
			_, err := Run(context.Background(), o, Options{Quick: true})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSmoothWeighted_SpreadsKinds(t *testing.T) {
	mix := []scenario.RequestKind{{Weight: 8}, {Weight: 1}, {Weight: 1}}
	got := smoothWeighted(mix)
	if len(got) != 10 {
		t.Fatalf("cycle length %d, want 10", len(got))
	}
	counts := map[int]int{}
	for _, k := range got {
		counts[k]++
	}
	if counts[0] != 8 || counts[1] != 1 || counts[2] != 1 {
		t.Fatalf("counts %v, want 8/1/1", counts)
	}
	// Every window of 5 holds at most one of each minority kind.
	for i := 0; i+5 <= len(got); i++ {
		w := map[int]int{}
		for _, k := range got[i : i+5] {
			w[k]++
		}
		if w[1] > 1 || w[2] > 1 {
			t.Errorf("window %d: %v", i, got[i:i+5])
		}
	}
}
