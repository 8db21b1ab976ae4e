package xds

import (
	"errors"
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/hopguard/hopguard/controlplane/metrics"
	"github.com/hopguard/hopguard/controlplane/translate"
)

// FlavorMetadataKey is the node metadata field that overrides the flavor
// guessed from the user agent: "envoy" or "proxyless".
const FlavorMetadataKey = "hopguard.dev/flavor"

// Flavor names as they appear in node metadata and in NodeStatus.
const (
	FlavorEnvoy     = "envoy"
	FlavorProxyless = "proxyless"
)

// ErrBadNode is wrapped by the errors returned for xDS nodes that cannot be
// served (no id, no cluster, unknown flavor override).
var ErrBadNode = errors.New("xds: bad node")

// Locality is where a node runs, as the node reports it.
type Locality struct {
	Region  string `json:"region,omitempty"`
	Zone    string `json:"zone,omitempty"`
	SubZone string `json:"subZone,omitempty"`
}

// Nack is a rejected response.
type Nack struct {
	// Type is the resource type's short name (listener, route, cluster, endpoint).
	Type string `json:"type"`
	// Version is the rejected snapshot version.
	Version string `json:"version"`
	// Message is the client's error detail.
	Message string `json:"message"`
	// Time is when the NACK arrived.
	Time time.Time `json:"time"`
}

// NodeStatus is what the control plane knows about one xDS node. Values
// returned by Server.Nodes are copies owned by the caller.
type NodeStatus struct {
	// ID is the node's unique id (Node.id).
	ID string `json:"id"`
	// Service is the node's service (Node.cluster).
	Service string `json:"service"`
	// Flavor is "envoy" or "proxyless".
	Flavor string `json:"flavor"`
	// Locality is the node's reported locality.
	Locality Locality `json:"locality"`
	// Endpoint is the endpoint the node serves (metadata
	// hopguard.dev/endpoint); empty when the node did not say.
	Endpoint string `json:"endpoint,omitempty"`
	// Quarantined is true while the node's endpoint is marked draining.
	Quarantined bool `json:"quarantined,omitempty"`
	// Connected is true while the node has an open xDS stream.
	Connected bool `json:"connected"`
	// State is acked, nacked or pending (see Server.Nodes).
	State string `json:"state"`
	// Drifted is true when the node does not run what it was sent: it
	// NACKed its expected version, or it is connected and has not
	// acknowledged it within the server's drift grace period (counted from
	// when it fell behind, or from when it reconnected if that is later).
	Drifted bool `json:"drifted"`
	// Expected is the version of the snapshot the node should run; empty
	// until a configuration has been loaded.
	Expected string `json:"expected"`
	// Acked maps a resource type's short name to the last version the node acknowledged.
	Acked map[string]string `json:"acked"`
	// LastNack is the last rejected response, nil when none was rejected.
	LastNack *Nack `json:"lastNack,omitempty"`
	// FirstSeen is when the node's first request arrived.
	FirstSeen time.Time `json:"firstSeen"`
	// LastSeen is when the node's latest request arrived.
	LastSeen time.Time `json:"lastSeen"`
}

// identity is what the control plane derives from an xDS Node.
type identity struct {
	id       string
	key      renderKey
	locality Locality
	endpoint string
}

// renderKey names one rendering: nodes with equal keys share a snapshot.
type renderKey struct {
	service string
	flavor  translate.Flavor
}

func identify(n *corev3.Node) (identity, error) {
	if n.GetId() == "" {
		return identity{}, fmt.Errorf("%w: node.id is empty", ErrBadNode)
	}
	if n.GetCluster() == "" {
		return identity{}, fmt.Errorf("%w: node %q: node.cluster must name the service", ErrBadNode, n.GetId())
	}
	flavor, err := flavorOf(n)
	if err != nil {
		return identity{}, err
	}
	loc := n.GetLocality()
	return identity{
		id:       n.GetId(),
		key:      renderKey{service: n.GetCluster(), flavor: flavor},
		locality: Locality{Region: loc.GetRegion(), Zone: loc.GetZone(), SubZone: loc.GetSubZone()},
		endpoint: n.GetMetadata().GetFields()[EndpointMetadataKey].GetStringValue(),
	}, nil
}

// flavorOf reads the metadata override, else guesses from the user agent:
// Envoy reports "envoy", grpc-go "gRPC Go" (other gRPC languages similar).
func flavorOf(n *corev3.Node) (translate.Flavor, error) {
	if v, ok := n.GetMetadata().GetFields()[FlavorMetadataKey]; ok {
		switch v.GetStringValue() {
		case FlavorEnvoy:
			return translate.Envoy, nil
		case FlavorProxyless:
			return translate.Proxyless, nil
		default:
			return 0, fmt.Errorf("%w: node %q: metadata %s must be %q or %q, got %q",
				ErrBadNode, n.GetId(), FlavorMetadataKey, FlavorEnvoy, FlavorProxyless, v.GetStringValue())
		}
	}
	if strings.Contains(strings.ToLower(n.GetUserAgentName()), "grpc") {
		return translate.Proxyless, nil
	}
	return translate.Envoy, nil
}

func flavorName(f translate.Flavor) string {
	if f == translate.Proxyless {
		return FlavorProxyless
	}
	return FlavorEnvoy
}

// typeName is the short name of a served resource type, or the type URL
// itself for any other type.
func typeName(typeURL string) string {
	switch typeURL {
	case resourcev3.ListenerType:
		return metrics.TypeListener
	case resourcev3.RouteType:
		return metrics.TypeRoute
	case resourcev3.ClusterType:
		return metrics.TypeCluster
	case resourcev3.EndpointType:
		return metrics.TypeEndpoint
	default:
		return typeURL
	}
}

// metricType is typeName bounded to the metrics' label values.
func metricType(typeURL string) string {
	switch name := typeName(typeURL); name {
	case metrics.TypeListener, metrics.TypeRoute, metrics.TypeCluster, metrics.TypeEndpoint:
		return name
	default:
		return metrics.TypeOther
	}
}

// node is the server's mutable record of one node; guarded by Server.mu.
type node struct {
	status   NodeStatus
	key      renderKey
	endpoint string
	streams  int
	// requested, acked and rejected are keyed by type URL. rejected holds
	// the version of the last NACKed response of the type.
	requested map[string]bool
	acked     map[string]string
	rejected  map[string]string
	// disconnectedAt is when the node's last stream closed.
	disconnectedAt time.Time
	// expectedSince is when the drift grace started: when status.Expected
	// last changed while the node was in sync, or when the node reconnected
	// (a version set while it was away is sent to it only then).
	expectedSince time.Time
	// counted is the state under which the node is counted in
	// hopguard_xds_nodes; empty when it is not counted (disconnected).
	counted string
}

func newNode(id identity, now time.Time) *node {
	return &node{
		status: NodeStatus{
			ID:        id.id,
			FirstSeen: now,
		},
		requested: map[string]bool{},
		acked:     map[string]string{},
		rejected:  map[string]string{},
	}
}

// state is acked when every requested type is acknowledged at the expected
// version, nacked when a type's response at the expected version was
// rejected and not since acknowledged, pending otherwise.
func (n *node) state() string {
	exp := n.status.Expected
	if exp == "" || len(n.requested) == 0 {
		return metrics.StatePending
	}
	for t := range n.requested {
		if n.rejected[t] == exp && n.acked[t] != exp {
			return metrics.StateNacked
		}
	}
	for t := range n.requested {
		if n.acked[t] != exp {
			return metrics.StatePending
		}
	}
	return metrics.StateAcked
}

// drifted applies the definition of NodeStatus.Drifted at now.
func (n *node) drifted(now time.Time, grace time.Duration) bool {
	switch n.state() {
	case metrics.StateNacked:
		return true
	case metrics.StatePending:
		return n.streams > 0 && n.status.Expected != "" && now.Sub(n.expectedSince) > grace
	default:
		return false
	}
}

// countedState is the state n is counted under in hopguard_xds_nodes at
// now: drifted takes precedence over nacked and pending.
func (n *node) countedState(now time.Time, grace time.Duration) string {
	if n.drifted(now, grace) {
		return metrics.StateDrifted
	}
	return n.state()
}

func (n *node) snapshot(now time.Time, grace time.Duration) NodeStatus {
	st := n.status
	st.State = n.state()
	st.Drifted = n.drifted(now, grace)
	st.Acked = make(map[string]string, len(n.acked))
	for t, v := range n.acked {
		st.Acked[typeName(t)] = v
	}
	if n.status.LastNack != nil {
		nack := *n.status.LastNack
		st.LastNack = &nack
	}
	return st
}
