package result

import (
	"fmt"
	"slices"
)

// Servers of the overhead scenario.
const (
	ServerHopguard = "hopguard"
	ServerNoop     = "noop"
)

// Overhead is the ext_proc filter overhead scenario's result: hopguard's
// ext_proc server and a no-op processor under the same open-loop load,
// interleaved at every rate.
type Overhead struct {
	// Placement says where the servers ran and why (in-process).
	Placement string `json:"placement"`
	// Rates are the offered rates in requests per second, ascending.
	Rates []float64 `json:"rates"`
	// StepSeconds is the duration of one measured slice at one rate.
	StepSeconds float64 `json:"stepSeconds"`
	// Rounds is how many A/B pairs ran at every rate.
	Rounds int `json:"rounds"`
	// P99BoundUs is the p99 a rate must stay under to count as sustained.
	P99BoundUs float64 `json:"p99BoundUs"`
	// MinAchieved is the achieved/offered ratio a rate must reach to count
	// as sustained (0.95).
	MinAchieved float64 `json:"minAchieved"`
	// Mix is the request mix sent to both servers (name → weight).
	Mix map[string]int `json:"mix"`
	// Floor is a bare gRPC bidi round trip on loopback (one open stream,
	// sequential messages, no ext_proc logic).
	Floor Latency `json:"floor"`
	// Steps are the merged measurements per server and rate.
	Steps []OverheadStep `json:"steps"`
	// Saturation is the highest sustained rate per server (0: none).
	Saturation map[string]float64 `json:"saturation"`
	// ReferenceRate is the rate the scenario declares for the headline
	// comparison (0: none declared).
	ReferenceRate float64 `json:"referenceRate"`
	// Headline compares the servers at ReferenceRate when both sustained
	// it, else at the highest rate both sustained.
	Headline OverheadRatios `json:"headline"`
	// AtHighest compares them at the highest rate both sustained.
	AtHighest OverheadRatios `json:"atHighest"`
}

// OverheadStep is one server at one offered rate, all rounds merged.
type OverheadStep struct {
	// Server is hopguard or noop.
	Server string `json:"server"`
	// Rate is the offered rate (requests per second).
	Rate float64 `json:"rate"`
	// Scheduled is the number of requests the schedule called for.
	Scheduled int64 `json:"scheduled"`
	// Completed requests got every answer they expected.
	Completed int64 `json:"completed"`
	// Errors are requests whose stream failed.
	Errors int64 `json:"errors"`
	// Dropped are requests not sent because the in-flight cap was reached
	// (the generator stays open-loop rather than slowing down).
	Dropped int64 `json:"dropped"`
	// Unexpected are completed requests whose answer was not the one the
	// mix expects (e.g. CONTINUE where a rejection was due).
	Unexpected int64 `json:"unexpected"`
	// Seconds is the measured wall time, all rounds summed.
	Seconds float64 `json:"seconds"`
	// Achieved is Completed / Seconds.
	Achieved float64 `json:"achieved"`
	// Outcomes counts answers by kind (continue, reject:<reason>).
	Outcomes map[string]int64 `json:"outcomes"`
	// Latency is measured from each request's intended send time.
	Latency Latency `json:"latency"`
	// Service is measured from each request's actual send time: Latency
	// without the generator's own lateness.
	Service Latency `json:"service"`
	// Lag is how late the generator sent requests (actual − intended).
	Lag Latency `json:"lag"`
	// CPUPerRequestUs is the process's CPU time (user + system) during the
	// step divided by the requests sent, in microseconds: generator and
	// server together, so only differences between servers mean anything
	// (0 where not measured).
	CPUPerRequestUs float64 `json:"cpuPerRequestUs"`
}

// Sustained reports whether the step kept up with its offered rate: achieved
// at least minAchieved of it, and p99 under p99Bound.
func (s OverheadStep) Sustained(minAchieved, p99Bound float64) bool {
	return s.Achieved >= minAchieved*s.Rate && s.Latency.Count > 0 && s.Latency.P99 < p99Bound
}

// OverheadRatios compares hopguard with the no-op processor at one rate.
type OverheadRatios struct {
	// Rate is the offered rate compared (0: no rate was sustained by both).
	Rate float64 `json:"rate"`
	// P50, P99, P999 are hopguard's percentile ÷ the no-op's.
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	// Saturation is hopguard's sustained rate ÷ the no-op's.
	Saturation float64 `json:"saturation"`
	// CPUPerRequest is hopguard's CPU time per request ÷ the no-op's, over
	// every rate both sustained (requests-weighted); 0 when not measured.
	CPUPerRequest float64 `json:"cpuPerRequest"`
}

// Step returns the step of server at rate.
func (o *Overhead) Step(server string, rate float64) (OverheadStep, bool) {
	for _, s := range o.Steps {
		if s.Server == server && s.Rate == rate {
			return s, true
		}
	}
	return OverheadStep{}, false
}

// Derive computes Saturation and Headline from Steps; Check verifies that
// the stored values are what Derive computes.
func (o *Overhead) Derive() {
	o.Saturation = map[string]float64{}
	for _, srv := range []string{ServerHopguard, ServerNoop} {
		o.Saturation[srv] = 0
		for _, r := range o.Rates {
			if s, ok := o.Step(srv, r); ok && s.Sustained(o.MinAchieved, o.P99BoundUs) {
				o.Saturation[srv] = r
			}
		}
	}
	sat := Ratio(o.Saturation[ServerHopguard], o.Saturation[ServerNoop])
	var hCPU, hReq, nCPU, nReq float64
	o.AtHighest = OverheadRatios{Saturation: sat}
	o.Headline = OverheadRatios{Saturation: sat}
	referenceSustained := false
	for _, r := range o.Rates {
		h, ok1 := o.Step(ServerHopguard, r)
		n, ok2 := o.Step(ServerNoop, r)
		if !ok1 || !ok2 || !h.Sustained(o.MinAchieved, o.P99BoundUs) || !n.Sustained(o.MinAchieved, o.P99BoundUs) {
			continue
		}
		hCPU += h.CPUPerRequestUs * float64(h.Completed+h.Errors)
		hReq += float64(h.Completed + h.Errors)
		nCPU += n.CPUPerRequestUs * float64(n.Completed+n.Errors)
		nReq += float64(n.Completed + n.Errors)
		o.AtHighest = compareAt(r, h, n, sat)
		if r == o.ReferenceRate {
			o.Headline = o.AtHighest
			referenceSustained = true
		}
	}
	if !referenceSustained {
		o.Headline = o.AtHighest
	}
	if hReq > 0 && nReq > 0 {
		cpu := Ratio(hCPU/hReq, nCPU/nReq)
		o.Headline.CPUPerRequest, o.AtHighest.CPUPerRequest = cpu, cpu
	}
}

// compareAt is hopguard's step h against the no-op's step n at rate.
func compareAt(rate float64, h, n OverheadStep, saturation float64) OverheadRatios {
	return OverheadRatios{
		Rate:       rate,
		P50:        Ratio(h.Latency.P50, n.Latency.P50),
		P99:        Ratio(h.Latency.P99, n.Latency.P99),
		P999:       Ratio(h.Latency.P999, n.Latency.P999),
		Saturation: saturation,
	}
}

// Check verifies counts, percentiles and the derived numbers.
func (o *Overhead) Check() error {
	if len(o.Rates) == 0 || !slices.IsSorted(o.Rates) {
		return fmt.Errorf("%w: rates %v empty or unsorted", ErrInconsistent, o.Rates)
	}
	if o.Floor.Count == 0 {
		return fmt.Errorf("%w: no floor measurement", ErrInconsistent)
	}
	if err := o.Floor.Check(); err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	for _, srv := range []string{ServerHopguard, ServerNoop} {
		for _, r := range o.Rates {
			s, ok := o.Step(srv, r)
			if !ok {
				return fmt.Errorf("%w: no %s step at %g/s", ErrInconsistent, srv, r)
			}
			if err := s.check(); err != nil {
				return fmt.Errorf("%s at %g/s: %w", srv, r, err)
			}
		}
	}
	if len(o.Steps) != 2*len(o.Rates) {
		return fmt.Errorf("%w: %d steps for %d rates", ErrInconsistent, len(o.Steps), len(o.Rates))
	}
	want := *o
	want.Derive()
	for _, srv := range []string{ServerHopguard, ServerNoop} {
		if o.Saturation[srv] != want.Saturation[srv] {
			return fmt.Errorf("%w: saturation of %s is %g, the steps say %g", ErrInconsistent, srv, o.Saturation[srv], want.Saturation[srv])
		}
	}
	if o.Headline != want.Headline || o.AtHighest != want.AtHighest {
		return fmt.Errorf("%w: headline %+v and highest %+v, the steps say %+v and %+v", ErrInconsistent, o.Headline, o.AtHighest, want.Headline, want.AtHighest)
	}
	return nil
}

func (s OverheadStep) check() error {
	if s.Scheduled <= 0 {
		return fmt.Errorf("%w: nothing scheduled", ErrInconsistent)
	}
	if s.Completed < 0 || s.Errors < 0 || s.Dropped < 0 || s.Completed+s.Errors+s.Dropped != s.Scheduled {
		return fmt.Errorf("%w: completed %d + errors %d + dropped %d != scheduled %d", ErrInconsistent, s.Completed, s.Errors, s.Dropped, s.Scheduled)
	}
	if s.Latency.Count != s.Completed || s.Service.Count != s.Completed || s.Lag.Count != s.Completed {
		return fmt.Errorf("%w: %d/%d/%d latencies (intended/service/lag) for %d completed requests", ErrInconsistent, s.Latency.Count, s.Service.Count, s.Lag.Count, s.Completed)
	}
	if err := s.Service.Check(); err != nil {
		return fmt.Errorf("service time: %w", err)
	}
	if err := s.Lag.Check(); err != nil {
		return fmt.Errorf("lag: %w", err)
	}
	var out int64
	for _, n := range s.Outcomes {
		out += n
	}
	if out != s.Completed {
		return fmt.Errorf("%w: outcomes add up to %d, completed %d", ErrInconsistent, out, s.Completed)
	}
	if s.Unexpected != 0 {
		return fmt.Errorf("%w: %d answers differ from what the mix expects", ErrInconsistent, s.Unexpected)
	}
	if s.Seconds <= 0 || !sameRatio(s.Achieved, float64(s.Completed), s.Seconds) {
		return fmt.Errorf("%w: achieved %g is not completed %d / %g s", ErrInconsistent, s.Achieved, s.Completed, s.Seconds)
	}
	return s.Latency.Check()
}
