// Package metrics defines the control plane's Prometheus metrics (DESIGN.md
// §5): xDS node states, pushes and NACKs per resource type, configuration
// reloads and changes, and the policy and build info gauges.
//
// Metrics are registered on a caller-supplied Registerer, never on the global
// default registry, so tests and embedding programs each get their own set.
package metrics

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Node states, the values of hopguard_xds_nodes{state}.
const (
	StateAcked   = "acked"
	StateNacked  = "nacked"
	StatePending = "pending"
	StateDrifted = "drifted"
)

// Reload results, the values of hopguard_config_reloads_total{result}.
const (
	ReloadOK      = "ok"
	ReloadInvalid = "invalid"
)

// Manual override kinds, the values of hopguard_manual_overrides_total{kind}.
const (
	OverridePin      = "pin"
	OverrideUnpin    = "unpin"
	OverrideFreeze   = "freeze"
	OverrideUnfreeze = "unfreeze"
)

// Resource type label values of the xDS counters. Types outside the four
// served ones are counted as TypeOther so a client cannot grow the label set.
const (
	TypeListener = "listener"
	TypeRoute    = "route"
	TypeCluster  = "cluster"
	TypeEndpoint = "endpoint"
	TypeOther    = "other"
)

// BuildInfo describes the running binary; it becomes hopguard_build_info.
type BuildInfo struct {
	// Version is the release version (e.g. "v0.1.0" or "dev").
	Version string
	// Revision is the source revision the binary was built from.
	Revision string
	// GoVersion is the Go toolchain version (runtime.Version()).
	GoVersion string
}

// ControlPlane holds the control plane's metrics. The vectors are safe for
// concurrent use; label values are the constants of this package.
type ControlPlane struct {
	// XDSNodes is hopguard_xds_nodes{state}: connected nodes per state. A
	// drifted node is counted as drifted only, not also as nacked or
	// pending. Registered behind the SetNodesRefresh hook: read it through
	// a Gather to see scrape-time values.
	XDSNodes *prometheus.GaugeVec
	// XDSNacks is hopguard_xds_nacks_total{type}: NACKs received per resource type.
	XDSNacks *prometheus.CounterVec
	// XDSPushes is hopguard_xds_pushes_total{type}: responses sent per resource type.
	XDSPushes *prometheus.CounterVec
	// ConfigReloads is hopguard_config_reloads_total{result}: reload attempts by outcome.
	ConfigReloads *prometheus.CounterVec
	// ConfigChanges is hopguard_config_changes_total{in_window}: accepted
	// configuration changes, inside or outside a declared change window.
	ConfigChanges *prometheus.CounterVec
	// PolicyInfo is hopguard_policy_info{policy_hash,schema_rev,environment}:
	// 1 for the policy being served; set it with SetPolicy.
	PolicyInfo *prometheus.GaugeVec
	// BuildInfo is hopguard_build_info{version,revision,go_version}, always 1.
	BuildInfo *prometheus.GaugeVec
	// SigningEnabled is hopguard_signing_enabled: 1 when what is
	// distributed is signed, 0 when it is not (the case until a signing key
	// is configured).
	SigningEnabled prometheus.Gauge
	// Quarantined is hopguard_quarantined_endpoints{service}: endpoints of
	// drifted nodes marked draining in the EDS other nodes receive.
	Quarantined *prometheus.GaugeVec
	// QuarantineCapped is hopguard_quarantine_capped_endpoints{service}:
	// endpoints of drifted nodes left in rotation because draining them
	// would exceed drift.maxQuarantinePercent.
	QuarantineCapped *prometheus.GaugeVec
	// ManualOverrides is hopguard_manual_overrides_total{kind}: pin, unpin,
	// freeze and unfreeze operations.
	ManualOverrides *prometheus.CounterVec
	// BundleGeneration is hopguard_bundle_generation: the generation of the
	// policy bundle being distributed.
	BundleGeneration prometheus.Gauge

	// nodes wraps XDSNodes so that a scrape first brings the node states
	// up to date: a node drifts when time passes, without any event.
	nodes *refreshingCollector
	// drift is hopguard_manifest_drift{node,service,region}, computed from
	// its source at every scrape (drift depends on time as well as events).
	drift *driftCollector
}

// NodeDrift is one node's drift state as hopguard_manifest_drift reports it.
type NodeDrift struct {
	// Node, Service and Region label the series (xDS node id, cluster and
	// locality region): bounded by the fleet, never by request data.
	Node, Service, Region string
	// Drifted is true when the node does not run what it was sent.
	Drifted bool
}

// SetDriftSource sets the function hopguard_manifest_drift reads at each
// scrape. It must be safe for concurrent use and fast.
func (m *ControlPlane) SetDriftSource(f func() []NodeDrift) {
	m.drift.mu.Lock()
	m.drift.source = f
	m.drift.mu.Unlock()
}

// SetNodesRefresh sets the function called at the start of every collection
// of hopguard_xds_nodes, before its series are read: the owner of the node
// states re-evaluates the time-dependent ones (drifted after a grace period)
// there, so a scrape never reports a node as pending once its grace period is
// over. f must be safe for concurrent use and fast; nil removes it.
func (m *ControlPlane) SetNodesRefresh(f func()) {
	m.nodes.mu.Lock()
	m.nodes.refresh = f
	m.nodes.mu.Unlock()
}

// refreshingCollector collects inner after calling refresh.
type refreshingCollector struct {
	inner   prometheus.Collector
	mu      sync.Mutex
	refresh func()
}

func (c *refreshingCollector) Describe(ch chan<- *prometheus.Desc) { c.inner.Describe(ch) }

func (c *refreshingCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	refresh := c.refresh
	c.mu.Unlock()
	if refresh != nil {
		refresh()
	}
	c.inner.Collect(ch)
}

// driftCollector emits one hopguard_manifest_drift series per node the
// source reports.
type driftCollector struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	source func() []NodeDrift
}

func (c *driftCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *driftCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	source := c.source
	c.mu.Unlock()
	if source == nil {
		return
	}
	for _, d := range source() {
		v := 0.0
		if d.Drifted {
			v = 1
		}
		m, err := prometheus.NewConstMetric(c.desc, prometheus.GaugeValue, v, d.Node, d.Service, d.Region)
		if err != nil { // cannot happen: the label count is fixed
			continue
		}
		ch <- m
	}
}

// New creates the control-plane metrics and registers them on reg. Every
// known label value is initialised to zero so dashboards see complete series
// from the start. It fails when a metric is already registered on reg.
func New(reg prometheus.Registerer, build BuildInfo) (*ControlPlane, error) {
	if reg == nil {
		return nil, errors.New("metrics: nil registerer")
	}
	m := &ControlPlane{
		XDSNodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hopguard_xds_nodes",
			Help: "Connected xDS nodes by state (acked, nacked, pending, drifted).",
		}, []string{"state"}),
		XDSNacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_xds_nacks_total",
			Help: "xDS responses rejected (NACKed) by nodes, by resource type.",
		}, []string{"type"}),
		XDSPushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_xds_pushes_total",
			Help: "xDS responses sent to nodes, by resource type.",
		}, []string{"type"}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_config_reloads_total",
			Help: "Configuration reloads by result (ok, invalid).",
		}, []string{"result"}),
		ConfigChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_config_changes_total",
			Help: "Accepted configuration changes, inside a declared change window or not.",
		}, []string{"in_window"}),
		PolicyInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hopguard_policy_info",
			Help: "The policy being served (always 1).",
		}, []string{"policy_hash", "schema_rev", "environment"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hopguard_build_info",
			Help: "Build information of the running binary (always 1).",
		}, []string{"version", "revision", "go_version"}),
		SigningEnabled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hopguard_signing_enabled",
			Help: "1 when distributed policy is signed, 0 when it is not.",
		}),
		Quarantined: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hopguard_quarantined_endpoints",
			Help: "Endpoints of drifted nodes marked draining for other nodes' traffic, by service.",
		}, []string{"service"}),
		QuarantineCapped: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hopguard_quarantine_capped_endpoints",
			Help: "Endpoints of drifted nodes left in rotation because of drift.maxQuarantinePercent, by service.",
		}, []string{"service"}),
		ManualOverrides: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hopguard_manual_overrides_total",
			Help: "Manual overrides by kind (pin, unpin, freeze, unfreeze).",
		}, []string{"kind"}),
		BundleGeneration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hopguard_bundle_generation",
			Help: "Generation of the policy bundle being distributed.",
		}),
		nodes: &refreshingCollector{},
		drift: &driftCollector{desc: prometheus.NewDesc("hopguard_manifest_drift",
			"1 for a node that does not run the configuration it was sent (it NACKed it, or has not acknowledged it within the drift grace period), else 0.",
			[]string{"node", "service", "region"}, nil)},
	}
	m.nodes.inner = m.XDSNodes
	var errs []error
	for _, c := range []prometheus.Collector{m.nodes, m.XDSNacks, m.XDSPushes, m.ConfigReloads, m.ConfigChanges, m.PolicyInfo, m.BuildInfo, m.SigningEnabled, m.drift,
		m.Quarantined, m.QuarantineCapped, m.ManualOverrides, m.BundleGeneration} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("metrics: register: %w", err)
	}
	for _, s := range []string{StateAcked, StateNacked, StatePending, StateDrifted} {
		m.XDSNodes.WithLabelValues(s)
	}
	for _, t := range []string{TypeListener, TypeRoute, TypeCluster, TypeEndpoint} {
		m.XDSNacks.WithLabelValues(t)
		m.XDSPushes.WithLabelValues(t)
	}
	m.ConfigReloads.WithLabelValues(ReloadOK)
	m.ConfigReloads.WithLabelValues(ReloadInvalid)
	m.ConfigChanges.WithLabelValues("true")
	m.ConfigChanges.WithLabelValues("false")
	for _, k := range []string{OverridePin, OverrideUnpin, OverrideFreeze, OverrideUnfreeze} {
		m.ManualOverrides.WithLabelValues(k)
	}
	m.BuildInfo.WithLabelValues(build.Version, build.Revision, build.GoVersion).Set(1)
	return m, nil
}

// SetPolicy makes the given policy the only series of hopguard_policy_info.
func (m *ControlPlane) SetPolicy(policyHash, schemaRev, environment string) {
	m.PolicyInfo.Reset()
	m.PolicyInfo.WithLabelValues(policyHash, schemaRev, environment).Set(1)
}

// Discard returns metrics registered on a private registry: for callers
// that do not export metrics but use code that records them.
func Discard() *ControlPlane {
	// A fresh registry cannot hold a conflicting collector.
	m, err := New(prometheus.NewRegistry(), BuildInfo{})
	if err != nil {
		return nil
	}
	return m
}
