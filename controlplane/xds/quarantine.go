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

	"github.com/hopguard/hopguard/controlplane/ir"
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
	drained  map[drainKey]bool
	services []ServiceQuarantine
}

// drainKey is one drained endpoint: an address in one service's load
// assignment. Services may share an address (one process serving both);
// each drains it only for its own drifted nodes, within its own cap.
type drainKey struct {
	service  string
	endpoint string
}

// drains reports whether q drains endpoint in service's load assignment
// (false for a nil q).
func (q *quarantineState) drains(service, endpoint string) bool {
	return q != nil && q.drained[drainKey{service: service, endpoint: endpoint}]
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
// quarantine, the endpoints of drifted nodes are marked DRAINING in their
// service's load assignment in the EDS every node receives, at most
// maxQuarantinePercent of each service's endpoints; leaving drift lifts it.
// It returns when ctx ends.
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

// candidate is a drifted endpoint of a service: since is when the longest
// drifted of its nodes fell behind, was whether it is drained now.
type candidate struct {
	endpoint string
	since    time.Time
	was      bool
}

// planQuarantineLocked decides which endpoints to drain. Candidates are the
// declared endpoints of connected drifted nodes, each drained only in its
// own service; per service at most floor(endpoints × maxQuarantinePercent /
// 100) are drained, endpoints already drained first (so the choice is
// stable), then the longest drifted.
func (s *Server) planQuarantineLocked(now time.Time) *quarantineState {
	q := &quarantineState{drained: map[drainKey]bool{}}
	m := s.mesh
	if m == nil || !m.Drift.Quarantine {
		return q
	}
	prev := s.quarantine.Load()
	drifted := s.driftedEndpointsLocked(now)
	for _, svc := range m.Services {
		cands := candidates(svc, drifted[svc.Name], prev)
		if len(cands) == 0 {
			continue
		}
		q.services = append(q.services, planService(svc, m.Drift.MaxQuarantinePercent, cands, q.drained))
	}
	return q
}

// driftedEndpointsLocked maps each service to the endpoints of its
// connected drifted nodes, each with the earliest time one of its nodes fell
// behind: several nodes may serve one endpoint (an old and a new pod of one
// address, an Envoy and a proxyless client in one pod), and it is drained
// or capped once.
func (s *Server) driftedEndpointsLocked(now time.Time) map[string]map[string]time.Time {
	out := map[string]map[string]time.Time{}
	for _, n := range s.nodes {
		if n.endpoint == "" || n.streams == 0 || !n.drifted(now, s.driftGrace) {
			continue
		}
		eps := out[n.status.Service]
		if eps == nil {
			eps = map[string]time.Time{}
			out[n.status.Service] = eps
		}
		if since, ok := eps[n.endpoint]; !ok || n.expectedSince.Before(since) {
			eps[n.endpoint] = n.expectedSince
		}
	}
	return out
}

// candidates returns the drifted endpoints that svc declares, in drain
// order: those prev drains first, then the longest drifted, then by
// address.
func candidates(svc *ir.Service, drifted map[string]time.Time, prev *quarantineState) []candidate {
	if len(drifted) == 0 {
		return nil
	}
	declared := map[string]bool{}
	for _, e := range svc.Endpoints {
		declared[endpointAddr(e.Host, e.Port)] = true
	}
	cands := make([]candidate, 0, len(drifted))
	for ep, since := range drifted {
		if declared[ep] {
			cands = append(cands, candidate{endpoint: ep, since: since, was: prev.drains(svc.Name, ep)})
		}
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		if a.was != b.was {
			if a.was {
				return -1
			}
			return 1
		}
		return cmp.Or(a.since.Compare(b.since), cmp.Compare(a.endpoint, b.endpoint))
	})
	return cands
}

// planService drains svc's candidates, in order, up to its cap of percent
// of its endpoints, adds them to drained, and returns svc's report.
func planService(svc *ir.Service, percent int, cands []candidate, drained map[drainKey]bool) ServiceQuarantine {
	sq := ServiceQuarantine{Service: svc.Name, Endpoints: len(svc.Endpoints),
		MaxQuarantined: len(svc.Endpoints) * percent / 100,
		Drifted:        []string{}, Quarantined: []string{}, Capped: []string{}}
	for i, c := range cands {
		sq.Drifted = append(sq.Drifted, c.endpoint)
		if i < sq.MaxQuarantined {
			sq.Quarantined = append(sq.Quarantined, c.endpoint)
			drained[drainKey{service: svc.Name, endpoint: c.endpoint}] = true
		} else {
			sq.Capped = append(sq.Capped, c.endpoint)
		}
	}
	slices.Sort(sq.Drifted)
	slices.Sort(sq.Quarantined)
	slices.Sort(sq.Capped)
	return sq
}

func endpointAddr(host string, port uint32) string {
	return net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

// applyQuarantine returns res with the drained endpoints marked DRAINING in
// copies of their services' load assignments; res itself is not modified.
func applyQuarantine(res *translate.Resources, drained map[drainKey]bool) *translate.Resources {
	if len(drained) == 0 {
		return res
	}
	byCluster := drainedByCluster(drained)
	out := *res
	out.Endpoints = make([]types.Resource, len(res.Endpoints))
	for i, r := range res.Endpoints {
		out.Endpoints[i] = r
		cla, ok := r.(*endpointv3.ClusterLoadAssignment)
		if !ok {
			continue
		}
		addrs := byCluster[cla.GetClusterName()]
		if !mentions(cla, addrs) {
			continue
		}
		cla = proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
		for _, loc := range cla.GetEndpoints() {
			for _, lb := range loc.GetLbEndpoints() {
				if addrs[lbAddr(lb)] {
					lb.HealthStatus = corev3.HealthStatus_DRAINING
				}
			}
		}
		out.Endpoints[i] = cla
	}
	return &out
}

// drainedByCluster indexes the drained addresses by the name of the cluster
// whose load assignment lists their service's endpoints: translate names it
// translate.ClusterOutbound(service); other renderers (the tests' fixtures)
// name it after the service itself.
func drainedByCluster(drained map[drainKey]bool) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for k := range drained {
		for _, cluster := range []string{translate.ClusterOutbound(k.service), k.service} {
			if out[cluster] == nil {
				out[cluster] = map[string]bool{}
			}
			out[cluster][k.endpoint] = true
		}
	}
	return out
}

// mentions reports whether cla lists any of addrs.
func mentions(cla *endpointv3.ClusterLoadAssignment, addrs map[string]bool) bool {
	if len(addrs) == 0 {
		return false
	}
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			if addrs[lbAddr(lb)] {
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
