package result

import (
	"fmt"
	"slices"
)

// Servers of the control-plane scale scenario.
const (
	ServerBare = "bare"
	// ServerHopguardPrerendered is hopguard's xDS server handed the bare
	// server's pre-rendered resources (its own rendering bypassed).
	ServerHopguardPrerendered = "hopguard-prerendered"
)

// CPScale is the control-plane scale scenario's result.
type CPScale struct {
	// Services and RoutesPerService size the generated mesh.
	Services         int `json:"services"`
	RoutesPerService int `json:"routesPerService"`
	// CompileSeconds is reading, validating and compiling the YAML to the IR.
	CompileSeconds float64 `json:"compileSeconds"`
	// SnapshotsSeconds is rendering (Envoy flavor), versioning and wrapping
	// every service's resources as a snapshot.
	SnapshotsSeconds float64 `json:"snapshotsSeconds"`
	// Resources is the number of xDS resources in all snapshots.
	Resources int `json:"resources"`
	// HeapInUseBefore and HeapInUseAfter are runtime.MemStats.HeapInuse
	// (bytes, after a GC) before compiling and with the IR and every
	// snapshot alive.
	HeapInUseBefore uint64 `json:"heapInUseBefore"`
	HeapInUseAfter  uint64 `json:"heapInUseAfter"`
	// AllocBytes is the bytes allocated while compiling and building.
	AllocBytes uint64 `json:"allocBytes"`
	// Runs are the ADS client runs, per client count and server.
	Runs []CPScaleRun `json:"runs"`
	// Ratios compare hopguard with the bare server per client count.
	Ratios []CPScaleRatio `json:"ratios"`
}

// CPScaleRun is one server with a number of connected ADS clients.
type CPScaleRun struct {
	// Server is hopguard or bare.
	Server string `json:"server"`
	// Clients is the number of ADS clients (distinct nodes).
	Clients int `json:"clients"`
	// ConnectSeconds is from the first dial until every client ACKed its
	// first version.
	ConnectSeconds float64 `json:"connectSeconds"`
	// Acked is the number of clients that ACKed the changed version.
	Acked int `json:"acked"`
	// ChangeToAck is, per client, the time from the configuration change
	// to its ACK of the new version, in microseconds.
	ChangeToAck Latency `json:"changeToAck"`
	// AllAckedSeconds is from the change until the last client ACKed.
	AllAckedSeconds float64 `json:"allAckedSeconds"`
	// OneServiceClients is the number of clients whose configuration a
	// change to one service's route budgets changed (that service's nodes
	// and its callers'); OneServiceToAck is, per such client, the time
	// from that change to its ACK, in microseconds. Zero in results made
	// before this was measured.
	OneServiceClients int     `json:"oneServiceClients,omitempty"`
	OneServiceToAck   Latency `json:"oneServiceToAck,omitzero"`
}

// CPScaleRatio is hopguard ÷ bare for one client count.
type CPScaleRatio struct {
	Clients int     `json:"clients"`
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
	// PrerenderedP99 is hopguard-prerendered's p99 ÷ bare's (0 when that
	// run is absent).
	PrerenderedP99 float64 `json:"prerenderedP99"`
	// OneServiceP99 is hopguard's p99 ÷ bare's for the one-service change
	// (0 when not measured).
	OneServiceP99 float64 `json:"oneServiceP99,omitempty"`
}

// Run returns the run of server with clients.
func (c *CPScale) Run(server string, clients int) (CPScaleRun, bool) {
	for _, r := range c.Runs {
		if r.Server == server && r.Clients == clients {
			return r, true
		}
	}
	return CPScaleRun{}, false
}

// ClientCounts returns the distinct client counts, ascending.
func (c *CPScale) ClientCounts() []int {
	var n []int
	for _, r := range c.Runs {
		if !slices.Contains(n, r.Clients) {
			n = append(n, r.Clients)
		}
	}
	slices.Sort(n)
	return n
}

// Derive computes Ratios from Runs.
func (c *CPScale) Derive() {
	c.Ratios = nil
	for _, n := range c.ClientCounts() {
		h, ok1 := c.Run(ServerHopguard, n)
		b, ok2 := c.Run(ServerBare, n)
		if !ok1 || !ok2 {
			continue
		}
		r := CPScaleRatio{
			Clients: n,
			P50:     Ratio(h.ChangeToAck.P50, b.ChangeToAck.P50),
			P99:     Ratio(h.ChangeToAck.P99, b.ChangeToAck.P99),
			Max:     Ratio(h.ChangeToAck.Max, b.ChangeToAck.Max),
		}
		if p, ok := c.Run(ServerHopguardPrerendered, n); ok {
			r.PrerenderedP99 = Ratio(p.ChangeToAck.P99, b.ChangeToAck.P99)
		}
		if h.OneServiceClients > 0 && b.OneServiceClients > 0 {
			r.OneServiceP99 = Ratio(h.OneServiceToAck.P99, b.OneServiceToAck.P99)
		}
		c.Ratios = append(c.Ratios, r)
	}
}

// Check verifies that every client ACKed, percentiles are ordered and the
// ratios are those of the runs.
func (c *CPScale) Check() error {
	if c.Services <= 0 || c.RoutesPerService <= 0 || c.Resources <= 0 {
		return fmt.Errorf("%w: empty mesh (%d services, %d routes, %d resources)", ErrInconsistent, c.Services, c.RoutesPerService, c.Resources)
	}
	if c.CompileSeconds <= 0 || c.SnapshotsSeconds <= 0 {
		return fmt.Errorf("%w: compile %g s, snapshots %g s", ErrInconsistent, c.CompileSeconds, c.SnapshotsSeconds)
	}
	if len(c.Runs) == 0 {
		return fmt.Errorf("%w: no client runs", ErrInconsistent)
	}
	for _, r := range c.Runs {
		if r.Acked != r.Clients || r.ChangeToAck.Count != int64(r.Clients) {
			return fmt.Errorf("%w: %s with %d clients: %d acked, %d latencies", ErrInconsistent, r.Server, r.Clients, r.Acked, r.ChangeToAck.Count)
		}
		if err := r.ChangeToAck.Check(); err != nil {
			return fmt.Errorf("%s with %d clients: %w", r.Server, r.Clients, err)
		}
		if r.OneServiceClients > r.Clients || r.OneServiceToAck.Count != int64(r.OneServiceClients) {
			return fmt.Errorf("%w: %s with %d clients: one-service change reached %d clients, %d latencies",
				ErrInconsistent, r.Server, r.Clients, r.OneServiceClients, r.OneServiceToAck.Count)
		}
		if r.OneServiceClients > 0 {
			if err := r.OneServiceToAck.Check(); err != nil {
				return fmt.Errorf("%s with %d clients, one-service change: %w", r.Server, r.Clients, err)
			}
		}
	}
	for _, n := range c.ClientCounts() {
		for _, srv := range []string{ServerHopguard, ServerBare} {
			if _, ok := c.Run(srv, n); !ok {
				return fmt.Errorf("%w: no %s run with %d clients", ErrInconsistent, srv, n)
			}
		}
	}
	want := *c
	want.Derive()
	if !slices.Equal(c.Ratios, want.Ratios) {
		return fmt.Errorf("%w: ratios %+v, the runs say %+v", ErrInconsistent, c.Ratios, want.Ratios)
	}
	return nil
}
