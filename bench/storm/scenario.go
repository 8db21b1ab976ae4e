// Package storm measures retry storms: a chain edge → b → c → leaf of
// proxyless gRPC services on loopback, configured by hopguard's control
// plane from hopguard YAML, with hopguard at every hop (the ext_proc filter
// on the caller side, the interceptor on the callee side), an open-loop
// client at the edge and faults injected at the leaf. For each retry
// configuration and fault it reports amplification at the leaf, goodput,
// wasted work, latency of successes and recovery time.
//
// grpc-go registers its client-side ext_proc filter only when
// GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT=true is in the environment
// before its xds package initialises: the caller of Run sets it (make bench
// does); Run fails with ErrExtProcDisabled otherwise.
package storm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrInvalid is wrapped by LoadScenario's validation errors.
var ErrInvalid = errors.New("storm: invalid scenario")

// defaultChain is the chain when a scenario names none, caller first.
func defaultChain() []string { return []string{"edge", "b", "c", "leaf"} }

// Scenario is a storm scenario file (kind: storm).
type Scenario struct {
	Kind        string `yaml:"kind"`
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Chain names the services, the load generator's callee first and the
	// leaf last (default edge, b, c, leaf).
	Chain []string `yaml:"chain"`
	// Full and Quick size the run (make bench, make bench-quick).
	Full  Size `yaml:"full"`
	Quick Size `yaml:"quick"`
	// Leaf is the leaf's fixed capacity.
	Leaf Leaf `yaml:"leaf"`
	// Faults are injected at the leaf during the fault phase.
	Faults []Fault `yaml:"faults"`
	// Configs are the retry configurations compared.
	Configs []Config `yaml:"configs"`
}

// Size is how big a run is.
type Size struct {
	// Rate is the offered request rate (open loop), requests/s.
	Rate float64 `yaml:"rate"`
	// Deadline is the caller's deadline per request.
	Deadline Duration `yaml:"deadline"`
	// Warmup, Fault and Recovery are the phase lengths.
	Warmup   Duration `yaml:"warmup"`
	Fault    Duration `yaml:"fault"`
	Recovery Duration `yaml:"recovery"`
	// Faults and Configs, when set, restrict the matrix to these names.
	Faults  []string `yaml:"faults"`
	Configs []string `yaml:"configs"`
}

// Leaf is the leaf service: Concurrency requests at a time, each taking
// ServiceTime, so its capacity is Concurrency/ServiceTime requests/s.
// Requests beyond QueueLimit waiting are shed with UNAVAILABLE.
type Leaf struct {
	Concurrency int      `yaml:"concurrency"`
	ServiceTime Duration `yaml:"serviceTime"`
	QueueLimit  int      `yaml:"queueLimit"`
}

// Capacity is the leaf's throughput limit, requests/s.
func (l Leaf) Capacity() float64 {
	return float64(l.Concurrency) / time.Duration(l.ServiceTime).Seconds()
}

// Fault is what goes wrong at the leaf during the fault phase.
type Fault struct {
	Name string `yaml:"name"`
	// Unavailable is the share (0–1) of leaf attempts answered UNAVAILABLE.
	Unavailable float64 `yaml:"unavailable"`
	// Latency is added to every leaf attempt (the work continues whether or
	// not the caller still waits, as real handlers do).
	Latency Duration `yaml:"latency"`
	// Overload multiplies the offered rate to this many times the leaf's
	// capacity (2 = twice what it can serve).
	Overload float64 `yaml:"overload"`
}

// Hop is a route budget at one hop: the retry policy of calls into that
// service.
type Hop struct {
	Authority string  `yaml:"authority"`
	Attempts  int     `yaml:"attempts"`
	Budget    float64 `yaml:"budget"`
	// MinPerSecond is the budget's floor (default 1).
	MinPerSecond *int `yaml:"minPerSecond"`
	// MinRemaining is retry.minRemaining ("auto" or a duration; default 1ms:
	// no deadline-aware drops).
	MinRemaining string `yaml:"minRemaining"`
}

// Config is one retry configuration: a Hop for the calls into each
// service of the chain but the first (called by the load generator,
// without retries). A service without one gets authority none, 1 attempt.
type Config struct {
	Name  string         `yaml:"name"`
	About string         `yaml:"about"`
	Hops  map[string]Hop `yaml:"hops"`
	// Note says what of the configuration hopguard's YAML cannot express.
	Note string `yaml:"note"`
}

func (c Config) hop(name string) Hop {
	if h, ok := c.Hops[name]; ok {
		return h
	}
	return Hop{Authority: "none", Attempts: 1}
}

// Duration is a time.Duration written as "300ms".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// LoadScenario reads and validates a storm scenario; unknown fields are errors.
func LoadScenario(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("storm: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, path, err)
	}
	if err := sc.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &sc, nil
}

func (sc *Scenario) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if sc.Kind != "storm" {
		bad("kind %q, want storm", sc.Kind)
	}
	if sc.Name == "" {
		bad("name is required")
	}
	if len(sc.Chain) == 0 {
		sc.Chain = defaultChain()
	}
	labelRE := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	inChain := map[string]bool{}
	for _, n := range sc.Chain {
		if !labelRE.MatchString(n) || inChain[n] {
			bad("chain: %q must be a unique lower-case name (letters, digits, '-')", n)
		}
		inChain[n] = true
	}
	if len(sc.Chain) < 2 {
		bad("chain: at least two services are needed")
	}
	faults, configs := map[string]bool{}, map[string]bool{}
	for i, f := range sc.Faults {
		switch {
		case f.Name == "" || faults[f.Name]:
			bad("faults[%d]: a unique name is required", i)
		case f.Unavailable < 0 || f.Unavailable > 1:
			bad("fault %s: unavailable must be within 0–1", f.Name)
		case f.Overload != 0 && f.Overload < 1:
			bad("fault %s: overload must be ≥ 1", f.Name)
		case f.Unavailable == 0 && f.Latency <= 0 && f.Overload == 0:
			bad("fault %s: set unavailable, latency or overload", f.Name)
		}
		faults[f.Name] = true
	}
	for i, c := range sc.Configs {
		if c.Name == "" || configs[c.Name] {
			bad("configs[%d]: a unique name is required", i)
		}
		configs[c.Name] = true
		for h := range c.Hops {
			if !inChain[h] || h == sc.Chain[0] {
				bad("config %s: hop %q is not a callee in the chain %v", c.Name, h, sc.Chain)
			}
		}
		for _, h := range sc.Chain {
			hp := c.hop(h)
			switch {
			case hp.Authority != "mesh" && hp.Authority != "app" && hp.Authority != "none":
				bad("config %s, %s: authority must be mesh, app or none", c.Name, h)
			case hp.Attempts < 1:
				bad("config %s, %s: attempts must be ≥ 1", c.Name, h)
			case hp.Budget < 0 || hp.Budget > 1:
				bad("config %s, %s: budget must be within 0–1", c.Name, h)
			}
		}
	}
	if len(sc.Faults) == 0 || len(sc.Configs) == 0 {
		bad("at least one fault and one config are required")
	}
	if sc.Leaf.Concurrency < 1 || sc.Leaf.ServiceTime <= 0 {
		bad("leaf: concurrency ≥ 1 and serviceTime > 0 are required")
	}
	for name, s := range map[string]Size{"full": sc.Full, "quick": sc.Quick} {
		if s.Rate <= 0 || s.Deadline <= 0 || s.Warmup <= 0 || s.Fault <= 0 || s.Recovery <= 0 {
			bad("%s: rate, deadline, warmup, fault and recovery must be positive", name)
		}
		for _, f := range s.Faults {
			if !faults[f] {
				bad("%s: unknown fault %q", name, f)
			}
		}
		for _, c := range s.Configs {
			if !configs[c] {
				bad("%s: unknown config %q", name, c)
			}
		}
	}
	return errors.Join(errs...)
}
