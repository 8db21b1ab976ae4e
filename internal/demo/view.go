package demo

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hopguard/hopguard/filters/metrics"
)

// decisionsMetric is the counter the view reads hopguard's decisions from.
const decisionsMetric = "hopguard_decisions_total"

// view writes the live view: a table redrawn in place on a terminal, one
// line per refresh otherwise. It is used by drive's goroutine only.
type view struct {
	out         io.Writer
	interactive bool
	s           *shop
	// previous refresh, for per-second rates.
	sent, ok, leaf int64
}

func newView(opts Options, s *shop) *view {
	return &view{out: opts.Out, interactive: opts.Interactive, s: s}
}

// update shows the state at elapsed: totals so far and the last second's
// goodput and amplification.
func (v *view) update(elapsed time.Duration, phase string, sent, ok, leaf int64) {
	dSent, dOK, dLeaf := sent-v.sent, ok-v.ok, leaf-v.leaf
	v.sent, v.ok, v.leaf = sent, ok, leaf
	amp := 0.0
	if dSent > 0 {
		amp = float64(dLeaf) / float64(dSent)
	}
	if !v.interactive {
		_, _ = fmt.Fprintf(v.out, "t=%-4s phase=%-9s sent=%-5d ok=%-5d leaf=%-5d goodput=%3d/s amplification=%.2f\n",
			elapsed.Truncate(time.Second), phase, sent, ok, leaf, dOK, amp)
		return
	}
	var b strings.Builder
	b.WriteString("\x1b[H\x1b[2J")
	fmt.Fprintf(&b, "hopguard demo — %s  phase: %s\n", elapsed.Truncate(time.Second), phase)
	fmt.Fprintf(&b, "checkouts sent %d, ok %d, ledger attempts %d | last second: goodput %d/s, amplification %.2f\n\n",
		sent, ok, leaf, dOK, amp)
	routes, err := routeStats(v.s.reg)
	if err != nil {
		fmt.Fprintf(&b, "(decisions unavailable: %v)\n", err)
	}
	writeRoutes(&b, routes)
	_, _ = io.WriteString(v.out, b.String())
}

// writeRoutes prints one row per route: allowed and dropped by reason.
func writeRoutes(w io.Writer, routes []RouteStats) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tALLOWED\tDROPPED (by reason)\tDRY-RUN (would drop)")
	for _, r := range routes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Route, r.Allowed, reasons(r.Dropped), reasons(r.DryRun))
	}
	_ = tw.Flush()
}

func reasons(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// routeStats reads the decisions counted in reg. Allowed counts the
// callee side (inbound) only, where every attempt is decided once; drops
// count both sides.
func routeStats(reg prometheus.Gatherer) ([]RouteStats, error) {
	fams, err := reg.Gather()
	if err != nil {
		return nil, fmt.Errorf("demo: gather decisions: %w", err)
	}
	byRoute := map[string]*RouteStats{}
	for _, f := range fams {
		if f.GetName() != decisionsMetric {
			continue
		}
		for _, m := range f.GetMetric() {
			l := labels(m)
			n := int64(m.GetCounter().GetValue())
			r := byRoute[l["route"]]
			if r == nil {
				r = &RouteStats{Route: l["route"], Dropped: map[string]int64{}, DryRun: map[string]int64{}}
				byRoute[l["route"]] = r
			}
			switch l["decision"] {
			case metrics.DecisionAllow:
				if l["side"] == "inbound" {
					r.Allowed += n
				}
			case metrics.DecisionReject:
				if n > 0 {
					r.Dropped[l["reason"]] += n
				}
			case metrics.DecisionDryRunReject:
				if n > 0 {
					r.DryRun[l["reason"]] += n
				}
			}
		}
	}
	out := make([]RouteStats, 0, len(byRoute))
	for _, r := range byRoute {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Route < out[j].Route })
	return out, nil
}

func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// writeSummary prints the end-of-run report.
func writeSummary(w io.Writer, s Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nhopguard demo: %d checkouts in %s at %d/s, %d succeeded, %d ledger attempts\n",
		s.Requests, s.Duration.Truncate(time.Millisecond), s.Rate, s.Succeeded, s.LeafAttempts)
	if len(s.Failures) > 0 {
		fmt.Fprintf(&b, "failures by code: %s\n", reasons(s.Failures))
	}
	b.WriteString("\npath to the leaf (declared attempts):\n")
	hops := make([]string, len(s.Path))
	for i, h := range s.Path {
		hops[i] = fmt.Sprintf("%s %s ×%d (%s)", h.Service, strings.TrimPrefix(h.Method, "/"), h.Attempts, h.Authority)
	}
	fmt.Fprintf(&b, "  %s\n\n", strings.Join(hops, " → "))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tWINDOW\tREQUESTS\tOK\tGOODPUT\tLEDGER ATTEMPTS\tAMPLIFICATION")
	for _, p := range s.Phases {
		fmt.Fprintf(tw, "%s\t%s–%s\t%d\t%d\t%.1f/s\t%d\t%.2f\n", p.Name,
			p.From.Truncate(100*time.Millisecond), p.To.Truncate(100*time.Millisecond),
			p.Requests, p.Succeeded, p.Goodput(), p.LeafAttempts, p.Amplification())
	}
	_ = tw.Flush()
	if f, ok := s.Phase(PhaseFault); ok {
		fmt.Fprintf(&b, "\nwhile the ledger failed: %.2f ledger attempts per checkout with hopguard;\n", f.Amplification())
		fmt.Fprintf(&b, "naive retries (every hop retrying with its attempts, %d in all) would have made %d per checkout: %d attempts instead of %d.\n",
			s.NaiveAmplification, s.NaiveAmplification, int64(s.NaiveAmplification)*f.Requests, f.LeafAttempts)
	}
	b.WriteString("\ndecisions per route:\n")
	writeRoutes(&b, s.Routes)
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("demo: write summary: %w", err)
	}
	return nil
}
