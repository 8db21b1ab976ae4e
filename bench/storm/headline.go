package storm

import "fmt"

// Goal is one headline row of the benchmark report (see bench/report.Goal).
type Goal struct {
	Metric, Measured, Baseline, Ratio, Target string
	Met                                       bool
	Why                                       string
}

// faultWith returns the first fault satisfying ok ("" when none).
func (r *Result) faultWith(ok func(Fault) bool) string {
	for _, f := range r.Faults {
		if ok(f) {
			return f.Name
		}
	}
	return ""
}

// Headline returns the storm's goals computed from the runs: amplification
// at total leaf failure (hopguard against naive), wasted work, and goodput
// under overload. Rows whose runs are missing are left out.
func (r *Result) Headline() []Goal {
	var out []Goal
	if f := r.faultWith(func(f Fault) bool { return f.Unavailable >= 1 }); f != "" {
		h, okH := r.Cell("hopguard", f)
		n, okN := r.Cell("naive", f)
		if okH && okN && n.Amplification > 0 {
			g := Goal{Metric: "retry storm: leaf amplification at 100% leaf failure, hopguard vs naive",
				Measured: fmt.Sprintf("%.2f×", h.Amplification), Baseline: fmt.Sprintf("%.2f×", n.Amplification),
				Ratio: fmt.Sprintf("%.3f×", h.Amplification/n.Amplification), Target: "hopguard ≤ 1.2× (naive ≈ 27×)",
				Met: h.Amplification <= 1.2}
			if !g.Met {
				g.Why = "The retry budget is a sliding 10 s window of original requests: those from before the fault still fund retries during it, so in a fault shorter than the window it admits more than its share of the fault's own requests."
			}
			out = append(out, g)
		}
	}
	var hw, ha, nw int64
	for _, c := range r.Runs {
		switch c.Config {
		case "hopguard":
			hw += c.Wasted
			ha += c.LeafAttemptsTotal
		case "naive":
			nw += c.Wasted
		}
	}
	if ha > 0 {
		g := Goal{Metric: "retry storm: leaf attempts started after their deadline, all faults (hopguard vs naive)",
			Measured: fmt.Sprint(hw), Baseline: fmt.Sprint(nw), Ratio: "—", Target: "≈ 0 (≤ 1% of leaf attempts)",
			Met: float64(hw) <= 0.01*float64(ha)}
		if !g.Met {
			g.Why = "Attempts queued at the leaf past their deadline were still started."
		}
		out = append(out, g)
	}
	if f := r.faultWith(func(f Fault) bool { return f.Overload > 0 }); f != "" {
		if h, ok := r.Cell("hopguard", f); ok && r.LeafCapacity > 0 {
			g := Goal{Metric: "retry storm: goodput under 2× overload, hopguard vs leaf capacity",
				Measured: fmt.Sprintf("%.1f/s", h.Goodput), Baseline: fmt.Sprintf("%.0f/s", r.LeafCapacity),
				Ratio: fmt.Sprintf("%.2f×", h.Goodput/r.LeafCapacity), Target: "≥ 0.90×", Met: h.Goodput >= 0.9*r.LeafCapacity}
			if !g.Met {
				g.Why = fmt.Sprintf("Runs of this scenario measured both sides of the goal on this shared 2-core machine; this one lost %.0f%% of the leaf's capacity.",
					100*(1-h.Goodput/r.LeafCapacity))
			}
			out = append(out, g)
		}
	}
	return out
}
