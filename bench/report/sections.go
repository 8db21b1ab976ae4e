package report

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hopguard/hopguard/bench/result"
)

// overheadSection renders the filter overhead result and its goals.
func overheadSection(f *result.File, opts Options) (string, []goal, error) {
	o := f.Overhead
	file, link := plotPath(opts, f.Scenario+"-latency.svg")
	if err := overheadPlot(file, o); err != nil {
		return "", nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Filter overhead (`%s`)\n\n", f.Scenario)
	fmt.Fprintf(&b, "An open-loop generator offers a constant rate of Envoy-shaped ext_proc exchanges (one Process stream per request: `request_headers`, then `response_headers`) to hopguard's ext_proc server and to a no-op processor that answers CONTINUE, alternating no-op/hopguard %d time(s) per rate for %.1f s each. Latency runs from each request's *intended* send time, so stalls are not hidden (coordinated omission corrected); HDR histograms.\n\n", o.Rounds, o.StepSeconds)
	fmt.Fprintf(&b, "Placement: %s.\n\n", o.Placement)
	mix := make([]string, 0, len(o.Mix))
	for k, w := range o.Mix {
		mix = append(mix, fmt.Sprintf("%s %d", k, w))
	}
	slices.Sort(mix)
	fmt.Fprintf(&b, "Request mix (weights): %s. A rate counts as sustained when at least %.0f%% of it is achieved and p99 stays under %s.\n\n", strings.Join(mix, ", "), o.MinAchieved*100, fmtUs(o.P99BoundUs))
	fmt.Fprintf(&b, "Floor — a bare gRPC bidi round trip on loopback (one open stream, sequential): p50 %s, p99 %s, p99.9 %s (%d round trips).\n\n", fmtUs(o.Floor.P50), fmtUs(o.Floor.P99), fmtUs(o.Floor.P999), o.Floor.Count)
	b.WriteString("Latency columns run from the intended send time; *service* columns from the actual send time (the generator's own lateness, *send lag*, excluded). *CPU/request* is the whole process's CPU time during the step per request sent: generator and server together, so only the difference between the two servers is the server's.\n\n")
	b.WriteString("| rate | server | achieved | p50 | p99 | p99.9 | max | service p50 | service p99 | send lag p99 | CPU/request | errors | dropped | sustained | p50 ratio | p99 ratio | service p50 ratio |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n")
	for _, r := range o.Rates {
		n, _ := o.Step(result.ServerNoop, r)
		for _, srv := range []string{result.ServerNoop, result.ServerHopguard} {
			s, _ := o.Step(srv, r)
			p50r, p99r, sp50r := "", "", ""
			if srv == result.ServerHopguard {
				p50r, p99r = fmtRatio(result.Ratio(s.Latency.P50, n.Latency.P50)), fmtRatio(result.Ratio(s.Latency.P99, n.Latency.P99))
				sp50r = fmtRatio(result.Ratio(s.Service.P50, n.Service.P50))
			}
			fmt.Fprintf(&b, "| %.0f/s | %s | %.0f/s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %s | %s | %s | %s |\n",
				r, srv, s.Achieved, fmtUs(s.Latency.P50), fmtUs(s.Latency.P99), fmtUs(s.Latency.P999), fmtUs(s.Latency.Max),
				fmtUs(s.Service.P50), fmtUs(s.Service.P99), fmtUs(s.Lag.P99), fmtUs(s.CPUPerRequestUs),
				s.Errors, s.Dropped, yesNo(s.Sustained(o.MinAchieved, o.P99BoundUs)), p50r, p99r, sp50r)
		}
	}
	fmt.Fprintf(&b, "\nMax sustainable rate: hopguard %s, no-op %s (ratio %s). CPU per request over every rate both sustained: %s.\n\n",
		fmtRate(o.Saturation[result.ServerHopguard]), fmtRate(o.Saturation[result.ServerNoop]), fmtRatio(o.Headline.Saturation), fmtRatio(o.Headline.CPUPerRequest))
	fmt.Fprintf(&b, "Headline ratios at %s (%s): p50 %s, p99 %s, p99.9 %s. At %s, the highest rate both sustained (the harshest point: queueing near saturation amplifies any extra cost): p50 %s, p99 %s, p99.9 %s.\n\n",
		fmtRate(o.Headline.Rate), headlineChoice(o), fmtRatio(o.Headline.P50), fmtRatio(o.Headline.P99), fmtRatio(o.Headline.P999),
		fmtRate(o.AtHighest.Rate), fmtRatio(o.AtHighest.P50), fmtRatio(o.AtHighest.P99), fmtRatio(o.AtHighest.P999))
	if o.Headline.Rate > 0 {
		h, _ := o.Step(result.ServerHopguard, o.Headline.Rate)
		n, _ := o.Step(result.ServerNoop, o.Headline.Rate)
		fmt.Fprintf(&b, "Service-time ratios at %s (generator lateness excluded): p50 %s, p99 %s; p50 difference hopguard − no-op: %s.\n\n",
			fmtRate(o.Headline.Rate), fmtRatio(result.Ratio(h.Service.P50, n.Service.P50)), fmtRatio(result.Ratio(h.Service.P99, n.Service.P99)), fmtUs(h.Service.P50-n.Service.P50))
	}
	if hg, ok := o.Step(result.ServerHopguard, o.Rates[0]); ok {
		outs := make([]string, 0, len(hg.Outcomes))
		for k, v := range hg.Outcomes {
			outs = append(outs, fmt.Sprintf("%s %d", k, v))
		}
		slices.Sort(outs)
		fmt.Fprintf(&b, "hopguard's answers at %.0f/s: %s.\n\n", o.Rates[0], strings.Join(outs, ", "))
	}
	fmt.Fprintf(&b, "![latency vs rate](%s)\n", link)

	hg, _ := o.Step(result.ServerHopguard, o.Headline.Rate)
	n, _ := o.Step(result.ServerNoop, o.Headline.Rate)
	at := fmt.Sprintf(" at %s", fmtRate(o.Headline.Rate))
	noRate := "no rate was sustained by both servers, so no latency ratio could be taken"
	goals := []goal{
		{
			metric: "ext_proc p50 vs no-op" + at, measured: fmtUs(hg.Latency.P50), baseline: fmtUs(n.Latency.P50),
			ratio: fmtRatio(o.Headline.P50), target: fmt.Sprintf("≤ %.2f×", GoalP50Ratio),
			met: o.Headline.Rate > 0 && o.Headline.P50 <= GoalP50Ratio,
			why: whyLatency(o, "p50", noRate), caveat: latencyCaveat(o, "p50", GoalP50Ratio),
		},
		{
			metric: "ext_proc p99 vs no-op" + at, measured: fmtUs(hg.Latency.P99), baseline: fmtUs(n.Latency.P99),
			ratio: fmtRatio(o.Headline.P99), target: fmt.Sprintf("≤ %.2f×", GoalP99Ratio),
			met: o.Headline.Rate > 0 && o.Headline.P99 <= GoalP99Ratio,
			why: whyLatency(o, "p99", noRate), caveat: latencyCaveat(o, "p99", GoalP99Ratio),
		},
		{
			metric: "ext_proc CPU per request vs no-op (generator included)", measured: cpuAt(o, result.ServerHopguard), baseline: cpuAt(o, result.ServerNoop),
			ratio: fmtRatio(o.Headline.CPUPerRequest), target: "no goal: context", info: true,
		},
		{
			metric: "ext_proc max sustainable rate vs no-op", measured: fmtRate(o.Saturation[result.ServerHopguard]), baseline: fmtRate(o.Saturation[result.ServerNoop]),
			ratio: fmtRatio(o.Headline.Saturation), target: fmt.Sprintf("≥ %.2f×", GoalSaturationRatio),
			met: o.Headline.Saturation >= GoalSaturationRatio,
			why: whySaturation(o),
		},
	}
	return b.String(), goals, nil
}

// headlineChoice says why the headline compares at its rate.
func headlineChoice(o *result.Overhead) string {
	switch {
	case o.Headline.Rate == 0:
		return "no rate was sustained by both"
	case o.ReferenceRate != 0 && o.Headline.Rate == o.ReferenceRate:
		return "the reference rate the scenario declares"
	case o.ReferenceRate != 0:
		return fmt.Sprintf("the declared reference rate %s was not sustained by both, so the highest rate both sustained", fmtRate(o.ReferenceRate))
	}
	return "the highest rate both sustained; the scenario declares no reference rate"
}

// cpuAt formats server's CPU time per request at the headline rate.
func cpuAt(o *result.Overhead, server string) string {
	s, ok := o.Step(server, o.Headline.Rate)
	if !ok || s.CPUPerRequestUs == 0 {
		return "—"
	}
	return fmtUs(s.CPUPerRequestUs)
}

// whyLatency explains a latency ratio above its goal from the step data.
func whyLatency(o *result.Overhead, which, noRate string) string {
	if o.Headline.Rate == 0 {
		return noRate + "."
	}
	hg, _ := o.Step(result.ServerHopguard, o.Headline.Rate)
	n, _ := o.Step(result.ServerNoop, o.Headline.Rate)
	d := hg.Latency.P50 - n.Latency.P50
	if which == "p99" {
		d = hg.Latency.P99 - n.Latency.P99
	}
	lo, hi := ratioRange(o, which)
	return fmt.Sprintf("hopguard adds %s at %s over a no-op exchange whose own %s is %s (the floor, one bare round trip, is %s p50). Over all rates both sustained the %s ratio ranges %s–%s and the process CPU per request is %s of the no-op's: on 2 shared cores running generator, both servers and other work, run-to-run noise is of the same order as the difference. What hopguard adds per request is the decision (route lookup, deadline parsing, an idempotency claim in the LRU store, metrics) and the larger header mutation it answers with.",
		fmtUs(d), fmtRate(o.Headline.Rate), which, fmtUs(pick(n.Latency, which)), fmtUs(o.Floor.P50), which, fmtRatio(lo), fmtRatio(hi), fmtRatio(o.Headline.CPUPerRequest))
}

// latencyCaveat names the sustained rates where a percentile's ratio is
// above its goal although the headline meets it ("" when there are none).
func latencyCaveat(o *result.Overhead, which string, goal float64) string {
	var over []string
	for _, r := range o.Rates {
		h, _ := o.Step(result.ServerHopguard, r)
		n, _ := o.Step(result.ServerNoop, r)
		if !h.Sustained(o.MinAchieved, o.P99BoundUs) || !n.Sustained(o.MinAchieved, o.P99BoundUs) {
			continue
		}
		if x := result.Ratio(pick(h.Latency, which), pick(n.Latency, which)); x > goal {
			over = append(over, fmt.Sprintf("%s at %s", fmtRatio(x), fmtRate(r)))
		}
	}
	if len(over) == 0 {
		return ""
	}
	msg := fmt.Sprintf("the %s ratio is above the goal at other sustained rates: %s.", which, strings.Join(over, ", "))
	if lo, _ := ratioRange(o, which); lo < 1 {
		msg += fmt.Sprintf(" At other rates hopguard measured faster than the no-op (down to %s) and the process CPU per request is %s of the no-op's: on this shared 2-core machine the spread is noise of the same order as the difference; more rounds per rate would narrow it.",
			fmtRatio(lo), fmtRatio(o.Headline.CPUPerRequest))
	} else {
		msg += " hopguard was slower at every sustained rate, so this is a cost, not only noise."
	}
	return msg
}

// ratioRange is the smallest and largest hopguard/no-op ratio of a
// percentile over the rates both sustained.
func ratioRange(o *result.Overhead, which string) (lo, hi float64) {
	for _, r := range o.Rates {
		h, _ := o.Step(result.ServerHopguard, r)
		n, _ := o.Step(result.ServerNoop, r)
		if !h.Sustained(o.MinAchieved, o.P99BoundUs) || !n.Sustained(o.MinAchieved, o.P99BoundUs) {
			continue
		}
		x := result.Ratio(pick(h.Latency, which), pick(n.Latency, which))
		if lo == 0 || x < lo {
			lo = x
		}
		hi = max(hi, x)
	}
	return lo, hi
}

func pick(l result.Latency, which string) float64 {
	if which == "p99" {
		return l.P99
	}
	return l.P50
}

// whySaturation explains a saturation ratio below its goal.
func whySaturation(o *result.Overhead) string {
	h, n := o.Saturation[result.ServerHopguard], o.Saturation[result.ServerNoop]
	switch {
	case n == 0:
		return "the no-op processor sustained none of the offered rates, so there is no baseline."
	case h == 0:
		return "hopguard sustained none of the offered rates."
	case n == o.Rates[len(o.Rates)-1]:
		return fmt.Sprintf("the no-op processor sustained the highest offered rate (%s), so its true saturation is higher than measured; add higher rates to the scenario.", fmtRate(n))
	}
	return fmt.Sprintf("hopguard stops keeping up at the first rate above %s while the no-op processor keeps up to %s; the offered rates are a coarse grid, so the ratio is bounded by its steps.", fmtRate(h), fmtRate(n))
}

// cpscaleSection renders the control-plane scale result and its goals.
func cpscaleSection(f *result.File, opts Options) (string, []goal, error) {
	c := f.CPScale
	file, link := plotPath(opts, f.Scenario+"-acks.svg")
	if err := cpscalePlot(file, c); err != nil {
		return "", nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Control-plane scale (`%s`)\n\n", f.Scenario)
	fmt.Fprintf(&b, "A generated mesh of %d services × %d routes (%d xDS resources over all Envoy-flavor snapshots).\n\n", c.Services, c.RoutesPerService, c.Resources)
	fmt.Fprintf(&b, "| compile (read, validate, IR) | build all snapshots (render, version) | heap in use before → after | allocated |\n|---:|---:|---:|---:|\n| %.2f s | %.2f s | %.1f MiB → %.1f MiB | %.1f MiB |\n\n",
		c.CompileSeconds, c.SnapshotsSeconds, mib(c.HeapInUseBefore), mib(c.HeapInUseAfter), mib(c.AllocBytes))
	b.WriteString("Lightweight ADS clients (raw xDS streams, one connection and node each, subscribed to their service's listeners, ACKing at once) connect; then the mesh-wide ext_proc timeout changes, which changes every node's listeners. hopguard's xDS server is handed the compiled mesh and renders each connected service itself; the bare go-control-plane server (snapshot cache + server) is handed the same snapshots pre-built. Time is from handing over the change to each client's ACK of the new version. *hopguard-prerendered* is hopguard's xDS server with its rendering replaced by a lookup of the bare server's pre-rendered resources: the difference between it and *hopguard* is the translator, between it and *bare* the server's own bookkeeping. Then one service's route budgets change (service 0's deadlines), which changes the nodes of that service and of its callers only: *one service* is the time to the ACKs of those clients (how many in brackets), the everyday case of a budget edit.\n\n")
	b.WriteString("| clients | server | connect → all first ACKs | change → ACK p50 | p99 | max | p99 ratio | max ratio | one service → ACK p99 | one-service ratio |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range c.ClientCounts() {
		var ratio result.CPScaleRatio
		for _, r := range c.Ratios {
			if r.Clients == n {
				ratio = r
			}
		}
		for _, srv := range []string{result.ServerBare, result.ServerHopguardPrerendered, result.ServerHopguard} {
			r, ok := c.Run(srv, n)
			if !ok {
				continue
			}
			p99r, maxr, oner := "", "", ""
			switch srv {
			case result.ServerHopguard:
				p99r, maxr, oner = fmtRatio(ratio.P99), fmtRatio(ratio.Max), fmtRatio(ratio.OneServiceP99)
			case result.ServerHopguardPrerendered:
				p99r = fmtRatio(ratio.PrerenderedP99)
			}
			one := "—"
			if r.OneServiceClients > 0 {
				one = fmt.Sprintf("%s (%d)", fmtUs(r.OneServiceToAck.P99), r.OneServiceClients)
			}
			fmt.Fprintf(&b, "| %d | %s | %.2f s | %s | %s | %s | %s | %s | %s | %s |\n", n, srv, r.ConnectSeconds, fmtUs(r.ChangeToAck.P50), fmtUs(r.ChangeToAck.P99), fmtUs(r.ChangeToAck.Max), p99r, maxr, one, oner)
		}
	}
	fmt.Fprintf(&b, "\n![change to ACK](%s)\n", link)

	counts := c.ClientCounts()
	n := counts[len(counts)-1]
	h, _ := c.Run(result.ServerHopguard, n)
	bare, _ := c.Run(result.ServerBare, n)
	var ratio result.CPScaleRatio
	for _, r := range c.Ratios {
		if r.Clients == n {
			ratio = r
		}
	}
	scaleNote := ""
	if n < GoalClients {
		scaleNote = fmt.Sprintf(" (measured with %d clients; the goal is set for %d)", n, GoalClients)
	}
	goals := []goal{
		{
			metric: fmt.Sprintf("config change → all ACKs p99, %d clients", n), measured: fmtUs(h.ChangeToAck.P99), baseline: fmtUs(bare.ChangeToAck.P99),
			ratio: "—", target: fmt.Sprintf("≤ %.0f s%s", GoalAckP99Seconds, scaleNote),
			met: n >= GoalClients && h.ChangeToAck.P99 <= GoalAckP99Seconds*1e6,
			why: whyAck(c, n, h),
		},
		{
			metric: fmt.Sprintf("config change → ACK p99 vs bare go-control-plane, %d clients", n), measured: fmtUs(h.ChangeToAck.P99), baseline: fmtUs(bare.ChangeToAck.P99),
			ratio: fmtRatio(ratio.P99), target: fmt.Sprintf("≤ %.2f×", GoalAckRatio),
			met: ratio.P99 > 0 && ratio.P99 <= GoalAckRatio,
			why: whyAckRatio(c, ratio),
		},
	}
	if ratio.OneServiceP99 > 0 {
		goals = append(goals, goal{
			metric:   fmt.Sprintf("one service's budgets change → ACK p99 vs bare go-control-plane, %d clients (%d reached)", n, h.OneServiceClients),
			measured: fmtUs(h.OneServiceToAck.P99), baseline: fmtUs(bare.OneServiceToAck.P99),
			ratio: fmtRatio(ratio.OneServiceP99), target: "no goal: context", info: true,
		})
	}
	return b.String(), goals, nil
}

func whyAck(c *result.CPScale, n int, h result.CPScaleRun) string {
	if n < GoalClients {
		return fmt.Sprintf("this run connected at most %d clients, fewer than the %d the goal is set for.", n, GoalClients)
	}
	return fmt.Sprintf("the slowest client ACKed %s after the change; rendering the %d connected services runs before the first response is sent.", fmtUs(h.ChangeToAck.Max), min(n, c.Services))
}

// whyAckRatio splits hopguard's excess over the bare server into rendering
// and server work, using the pre-rendered run when there is one.
func whyAckRatio(c *result.CPScale, ratio result.CPScaleRatio) string {
	s := fmt.Sprintf("hopguard's change includes rendering and versioning every connected service (%.2f s for all %d services, one at a time, in the snapshot build above; the server spreads it over the cores), all of it before the first node is answered, so that a change that fails to render for one node reaches none; the bare server only swaps pre-built snapshots.", c.SnapshotsSeconds, c.Services)
	if ratio.PrerenderedP99 > 0 {
		s += fmt.Sprintf(" With rendering taken out (hopguard-prerendered) the ratio is %s, so %s.", fmtRatio(ratio.PrerenderedP99), splitVerdict(ratio.PrerenderedP99))
	}
	s += " The change measured here (the mesh-wide ext_proc timeout) is the worst case: a change to one service's budgets re-renders only that service's nodes and its callers' (the one-service row)."
	return s
}

func splitVerdict(prerendered float64) string {
	if prerendered <= GoalAckRatio {
		return "the gap is the translator's rendering, not the xDS server: rendering only the services a change touches would close it"
	}
	return "the xDS server's own work is also above the goal: mostly versioning (a deterministic proto encoding and sha256 of each node's resources, which also gives the config_hash of the manifests), then the snapshot cache and per-node bookkeeping"
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// microSection renders the micro-benchmarks.
func microSection(f *result.File) string {
	m := f.Micro
	var b strings.Builder
	fmt.Fprintf(&b, "## Engine micro-benchmarks (`%s`)\n\n", f.Scenario)
	fmt.Fprintf(&b, "`go test -run '^$' -bench . -benchmem -count %d -benchtime %s` on %s; medians of the %d runs (min–max of ns/op in brackets).\n\n", m.Count, m.Benchtime, strings.Join(m.Packages, ", "), m.Count)
	b.WriteString("| package | benchmark | ns/op | range | B/op | allocs/op |\n|---|---|---:|---:|---:|---:|\n")
	for _, x := range m.Benchmarks {
		fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f–%.1f | %.0f | %.0f |\n", shortPkg(x.Package), strings.TrimPrefix(x.Name, "Benchmark"), x.NsPerOp, x.NsMin, x.NsMax, x.BytesPerOp, x.AllocsPerOp)
	}
	fmt.Fprintf(&b, "\n%s.\n", m.BenchstatNote)
	if m.Benchstat != "" {
		fmt.Fprintf(&b, "\n```\n%s```\n", m.Benchstat)
	}
	return b.String()
}

func shortPkg(p string) string {
	return strings.TrimPrefix(p, "github.com/hopguard/hopguard/")
}
