package xds

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/hopguard/hopguard/controlplane/translate"
)

// EndpointMetadataKey is the node metadata field naming the endpoint
// (host:port, as declared in the Service's endpoints) that the node serves:
// it ties a drifted node to the endpoint quarantine drains. Nodes without
// it are reported as drifted but cannot be quarantined.
const EndpointMetadataKey = "hopguard.dev/endpoint"

// DefaultQuarantineInterval is how often RunQuarantine re-evaluates drift.
const DefaultQuarantineInterval = time.Second

// ServiceQuarantine is the quarantine state of one service.
type ServiceQuarantine struct {
	// Service is the service name.
	Service string `json:"service"`
	// Endpoints is how many endpoints the service declares.
	Endpoints int `json:"endpoints"`
	// MaxQuarantined is the cap: maxQuarantinePercent of Endpoints, rounded down.
	MaxQuarantined int `json:"maxQuarantined"`
	// Drifted are the endpoints of the service's drifted nodes.
	Drifted []string `json:"drifted"`
	// Quarantined are the endpoints marked draining.
	Quarantined []string `json:"quarantined"`
	// Capped are drifted endpoints left in rotation because of the cap.
	Capped []string `json:"capped"`
}

// quarantineState is the served quarantine: the drained endpoints and the
// per-service report. Replaced whole; never modified once published.
type quarantineState struct {
	drained  map[string]bool
	services []ServiceQuarantine
}

// Quarantine returns the per-service quarantine report, sorted by service.
// Empty when drift.action is not quarantine or no node drifted.
func (s *Server) Quarantine() []ServiceQuarantine {
	q := s.quarantine.Load()
	if q == nil {
		return nil
	}
	return slices.Clone(q.services)
}

// RunQuarantine re-evaluates drift every interval (default
// DefaultQuarantineInterval) until ctx ends and, when the set of endpoints
// to drain changes, re-renders every snapshot: under drift.action:
// quarantine, the endpoints of drifted nodes are marked DRAINING in the EDS
// every node receives, at most maxQuarantinePercent of each service's
// endpoints; leaving drift lifts it. It returns when ctx ends.
func (s *Server) RunQuarantine(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultQuarantineInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.EvaluateQuarantine(); err != nil {
				s.log.Error("xds: quarantine update failed", zap.Error(err))
			}
		}
	}
}

// EvaluateQuarantine recomputes the quarantine from the nodes' drift now
// and serves it when it changed.
func (s *Server) EvaluateQuarantine() error {
	// updateMu first: a configuration Update cannot slip in between reading
	// the mesh and re-rendering it, or an older mesh would be served again.
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	s.mu.Lock()
	m := s.mesh
	next := s.planQuarantineLocked(s.now())
	s.mu.Unlock()
	cur := s.quarantine.Load()
	if cur != nil && maps.Equal(cur.drained, next.drained) {
		s.quarantine.Store(next) // the report may still differ (capped nodes)
		s.publishQuarantineMetrics(cur, next)
		return nil
	}
	s.quarantine.Store(next)
	s.publishQuarantineMetrics(cur, next)
	for _, sq := range next.services {
		if len(sq.Quarantined) > 0 || len(sq.Capped) > 0 {
			s.log.Warn("xds: quarantine", zap.String("service", sq.Service), zap.Strings("draining", sq.Quarantined),
				zap.Strings("capped", sq.Capped), zap.Int("max", sq.MaxQuarantined))
		}
	}
	if m == nil {
		return nil
	}
	if err := s.updateLocked(m); err != nil {
		return fmt.Errorf("xds: re-render for quarantine: %w", err)
	}
	return nil
}

func (s *Server) publishQuarantineMetrics(prev, next *quarantineState) {
	if prev != nil {
		for _, sq := range prev.services {
			s.metrics.Quarantined.DeleteLabelValues(sq.Service)
			s.metrics.QuarantineCapped.DeleteLabelValues(sq.Service)
		}
	}
	for _, sq := range next.services {
		s.metrics.Quarantined.WithLabelValues(sq.Service).Set(float64(len(sq.Quarantined)))
		s.metrics.QuarantineCapped.WithLabelValues(sq.Service).Set(float64(len(sq.Capped)))
	}
}

// planQuarantineLocked decides which endpoints to drain. Candidates are the
// declared endpoints of connected drifted nodes; per service at most
// floor(endpoints × maxQuarantinePercent / 100) are drained, endpoints
// already drained first (so the choice is stable), then the longest drifted.
func (s *Server) planQuarantineLocked(now time.Time) *quarantineState {
	q := &quarantineState{drained: map[string]bool{}}
	m := s.mesh
	if m == nil || !m.Drift.Quarantine {
		return q
	}
	prev := s.quarantine.Load()
	type candidate struct {
		endpoint string
		since    time.Time
		was      bool
	}
	byService := map[string][]candidate{}
	for _, n := range s.nodes {
		if n.endpoint == "" || n.streams == 0 || !n.drifted(now, s.driftGrace) {
			continue
		}
		was := prev != nil && prev.drained[n.endpoint]
		byService[n.status.Service] = append(byService[n.status.Service], candidate{n.endpoint, n.expectedSince, was})
	}
	for _, svc := range m.Services {
		cands := byService[svc.Name]
		if len(cands) == 0 {
			continue
		}
		declared := map[string]bool{}
		for _, e := range svc.Endpoints {
			declared[endpointAddr(e.Host, e.Port)] = true
		}
		cands = slices.DeleteFunc(cands, func(c candidate) bool { return !declared[c.endpoint] })
		slices.SortFunc(cands, func(a, b candidate) int {
			if a.was != b.was {
				if a.was {
					return -1
				}
				return 1
			}
			return cmp.Or(a.since.Compare(b.since), cmp.Compare(a.endpoint, b.endpoint))
		})
		cands = slices.CompactFunc(cands, func(a, b candidate) bool { return a.endpoint == b.endpoint })
		if len(cands) == 0 {
			continue
		}
		sq := ServiceQuarantine{Service: svc.Name, Endpoints: len(svc.Endpoints),
			MaxQuarantined: len(svc.Endpoints) * m.Drift.MaxQuarantinePercent / 100,
			Drifted:        []string{}, Quarantined: []string{}, Capped: []string{}}
		for i, c := range cands {
			sq.Drifted = append(sq.Drifted, c.endpoint)
			if i < sq.MaxQuarantined {
				sq.Quarantined = append(sq.Quarantined, c.endpoint)
				q.drained[c.endpoint] = true
			} else {
				sq.Capped = append(sq.Capped, c.endpoint)
			}
		}
		slices.Sort(sq.Drifted)
		slices.Sort(sq.Quarantined)
		slices.Sort(sq.Capped)
		q.services = append(q.services, sq)
	}
	return q
}

func endpointAddr(host string, port uint32) string {
	return net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

// applyQuarantine returns res with the drained endpoints marked DRAINING in
// copies of its load assignments; res itself is not modified.
func applyQuarantine(res *translate.Resources, drained map[string]bool) *translate.Resources {
	if len(drained) == 0 {
		return res
	}
	out := *res
	out.Endpoints = make([]types.Resource, len(res.Endpoints))
	for i, r := range res.Endpoints {
		out.Endpoints[i] = r
		cla, ok := r.(*endpointv3.ClusterLoadAssignment)
		if !ok || !mentions(cla, drained) {
			continue
		}
		cla = proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
		for _, loc := range cla.GetEndpoints() {
			for _, lb := range loc.GetLbEndpoints() {
				if drained[lbAddr(lb)] {
					lb.HealthStatus = corev3.HealthStatus_DRAINING
				}
			}
		}
		out.Endpoints[i] = cla
	}
	return &out
}

func mentions(cla *endpointv3.ClusterLoadAssignment, drained map[string]bool) bool {
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			if drained[lbAddr(lb)] {
				return true
			}
		}
	}
	return false
}

func lbAddr(lb *endpointv3.LbEndpoint) string {
	sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
	return endpointAddr(sa.GetAddress(), sa.GetPortValue())
}
