package scenario

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"
)

// Expected answers of a request kind.
const (
	ExpectContinue = "continue"
	ExpectReject   = "reject"
)

// Overhead declares the ext_proc overhead scenario.
type Overhead struct {
	// Kind and Name: see Scenario.
	Kind string `yaml:"kind"`
	Name string `yaml:"name"`
	// Description is shown in the report.
	Description string `yaml:"description"`
	// Policy is the directory of hopguard budget YAML the server enforces,
	// relative to the scenario file (made absolute by Load).
	Policy string `yaml:"policy"`
	// Sizes: the full run, and the reduced one of -quick.
	Full  OverheadSize `yaml:"full"`
	Quick OverheadSize `yaml:"quick"`
	// ReferenceRate is the offered rate the headline compares at, declared
	// before measuring (a moderate load); when either server does not
	// sustain it, the highest rate both sustained is used. 0: always the
	// highest rate both sustained.
	ReferenceRate float64 `yaml:"referenceRate"`
	// P99Bound is the p99 a rate must stay under to count as sustained.
	P99Bound Duration `yaml:"p99Bound"`
	// MaxInFlight caps concurrent requests of the generator.
	MaxInFlight int `yaml:"maxInFlight"`
	// FloorRoundTrips is how many sequential round trips measure the floor.
	FloorRoundTrips int `yaml:"floorRoundTrips"`
	// Mix is the request mix, chosen by weighted round robin.
	Mix []RequestKind `yaml:"mix"`
}

// OverheadSize is how much load one run offers.
type OverheadSize struct {
	// Rates are the offered rates (requests per second), ascending.
	Rates []float64 `yaml:"rates"`
	// Step is one measured slice (one server, one rate, one round).
	Step Duration `yaml:"step"`
	// Rounds is how many A/B pairs run at each rate.
	Rounds int `yaml:"rounds"`
}

// RequestKind is one kind of request in the mix, shaped as Envoy sends it.
type RequestKind struct {
	// Name labels the kind in the report.
	Name string `yaml:"name"`
	// Weight is its share of the mix.
	Weight int `yaml:"weight"`
	// Route is the x-hopguard-route stream metadata (the route id,
	// namespace/name), as the control plane renders per route.
	Route string `yaml:"route"`
	// Side is x-hopguard-side: inbound (default) or outbound.
	Side string `yaml:"side"`
	// Method and Path are :method and :path (default POST, gRPC).
	Method string `yaml:"method"`
	Path   string `yaml:"path"`
	// Headers are further request headers (e.g. grpc-timeout).
	Headers map[string]string `yaml:"headers"`
	// UniqueIdempotencyKey sends a fresh Idempotency-Key on every request.
	UniqueIdempotencyKey bool `yaml:"uniqueIdempotencyKey"`
	// Expect is the answer hopguard must give: continue or reject.
	Expect string `yaml:"expect"`
	// ExpectReason is the x-hopguard-reason of a rejection ("" = any).
	ExpectReason string `yaml:"expectReason"`
}

// Size returns the quick or the full size.
func (o *Overhead) Size(quick bool) OverheadSize {
	if quick {
		return o.Quick
	}
	return o.Full
}

func (o *Overhead) validate(dir string) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if o.Policy == "" {
		bad("policy: required")
	} else {
		if !filepath.IsAbs(o.Policy) {
			o.Policy = filepath.Join(dir, o.Policy)
		}
		if abs, err := filepath.Abs(o.Policy); err == nil {
			o.Policy = abs
		}
	}
	for name, s := range map[string]OverheadSize{"full": o.Full, "quick": o.Quick} {
		if len(s.Rates) == 0 || !slices.IsSorted(s.Rates) || s.Rates[0] <= 0 {
			bad("%s.rates: want positive rates in ascending order, got %v", name, s.Rates)
		}
		if s.Step.D() < 100*time.Millisecond {
			bad("%s.step: want at least 100ms, got %v", name, s.Step.D())
		}
		if s.Rounds < 1 {
			bad("%s.rounds: want at least 1, got %d", name, s.Rounds)
		}
	}
	if o.ReferenceRate < 0 {
		bad("referenceRate: negative")
	}
	if o.P99Bound <= 0 {
		bad("p99Bound: required")
	}
	if o.MaxInFlight <= 0 {
		bad("maxInFlight: required")
	}
	if o.FloorRoundTrips <= 0 {
		bad("floorRoundTrips: required")
	}
	if len(o.Mix) == 0 {
		bad("mix: required")
	}
	for i := range o.Mix {
		k := &o.Mix[i]
		if k.Name == "" || k.Weight <= 0 || k.Route == "" || k.Path == "" {
			bad("mix[%d]: name, weight > 0, route and path are required", i)
		}
		if k.Method == "" {
			k.Method = "POST"
		}
		if k.Expect != ExpectContinue && k.Expect != ExpectReject {
			bad("mix[%d].expect: want %s or %s, got %q", i, ExpectContinue, ExpectReject, k.Expect)
		}
		if k.Side != "" && k.Side != "inbound" && k.Side != "outbound" {
			bad("mix[%d].side: want inbound or outbound, got %q", i, k.Side)
		}
	}
	return errors.Join(errs...)
}
