package storm

import "testing"

func TestHeadline(t *testing.T) {
	r := &Result{LeafCapacity: 200,
		Faults: []Fault{{Name: "down", Unavailable: 1}, {Name: "busy", Overload: 2}},
		Runs: []Cell{
			{Config: "naive", Fault: "down", Amplification: 26, LeafAttemptsTotal: 1000, Wasted: 30},
			{Config: "hopguard", Fault: "down", Amplification: 1.1, LeafAttemptsTotal: 100},
			{Config: "hopguard", Fault: "busy", Goodput: 170, LeafAttemptsTotal: 400, Wasted: 1},
		}}
	g := r.Headline()
	if len(g) != 3 {
		t.Fatalf("rows = %+v", g)
	}
	if !g[0].Met || g[0].Measured != "1.10×" || g[0].Baseline != "26.00×" {
		t.Errorf("amplification row %+v", g[0])
	}
	if !g[1].Met || g[1].Measured != "1" {
		t.Errorf("wasted row %+v (1 of 500 attempts is within 1%%)", g[1])
	}
	if g[2].Met || g[2].Why == "" || g[2].Ratio != "0.85×" {
		t.Errorf("overload row %+v: 170/s of 200/s is below 90%% and needs a reason", g[2])
	}
}
