package xds

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hopguard/hopguard/controlplane/metrics"
	"github.com/hopguard/hopguard/controlplane/xds/xdstest"
)

// fakeClock is a settable clock for drift grace periods.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// scrape gathers reg as a scrape would and returns the series of the named
// metric as sorted "label=value,... value" lines.
func scrape(t *testing.T, reg *prometheus.Registry, name string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			lines = append(lines, fmt.Sprintf("%s %g", strings.Join(labels, ","), m.GetGauge().GetValue()))
		}
	}
	slices.Sort(lines)
	return lines
}

// nodeGauges is what one scrape says about nodes.
type nodeGauges struct {
	Drift []string // hopguard_manifest_drift
	Nodes []string // hopguard_xds_nodes
}

func scrapeNodes(t *testing.T, reg *prometheus.Registry) nodeGauges {
	t.Helper()
	return nodeGauges{Drift: scrape(t, reg, "hopguard_manifest_drift"), Nodes: scrape(t, reg, "hopguard_xds_nodes")}
}

func nodeCounts(acked, drifted, nacked, pending int) []string {
	return []string{
		fmt.Sprintf("state=acked %d", acked), fmt.Sprintf("state=drifted %d", drifted),
		fmt.Sprintf("state=nacked %d", nacked), fmt.Sprintf("state=pending %d", pending),
	}
}

// silentNode is a raw ADS stream that subscribes to listeners and answers
// only when told to.
type silentNode struct {
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	last   *discoveryv3.DiscoveryResponse
}

func dialSilent(t *testing.T, addr, id, service, region string) *silentNode {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); _ = conn.Close() })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := envoyNode(id, service)
	node.Locality.Region = region
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ListenerType}); err != nil {
		t.Fatal(err)
	}
	last, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return &silentNode{stream: stream, last: last}
}

// ack acknowledges the last response received.
func (n *silentNode) ack(t *testing.T) {
	t.Helper()
	if err := n.stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: n.last.GetTypeUrl(),
		VersionInfo: n.last.GetVersionInfo(), ResponseNonce: n.last.GetNonce()}); err != nil {
		t.Fatal(err)
	}
}

// TestManifestDrift follows three nodes through the drift definition: an
// acking node never drifts, a NACKing one drifts at once, a silent one
// drifts when the grace period is over and recovers when it acknowledges;
// a node's series goes with its last stream.
func TestManifestDrift(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.BuildInfo{})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)}
	s, addr := startServer(t, Options{Metrics: m, Now: clock.Now, DriftGrace: 10 * time.Second})
	mesh := xdstest.Mesh(time.Second, "payments", "ledger")
	if err := s.Update(mesh); err != nil {
		t.Fatal(err)
	}

	good := dial(t, addr, envoyNode("payments-1", "payments"), false)
	v := renderVersion(t, mesh, "payments")
	waitFor(t, good, resourcev3.ListenerType, v)
	waitFor(t, good, resourcev3.ClusterType, v)
	eventually(t, "payments-1 acked", func() bool { return stateOf(s, "payments-1") == metrics.StateAcked })

	bad := dial(t, addr, envoyNode("ledger-1", "ledger"), true)
	eventually(t, "ledger-1 nacked", func() bool { return stateOf(s, "ledger-1") == metrics.StateNacked })

	silent := dialSilent(t, addr, "payments-2", "payments", "us-east-1")

	check := func(step string, want nodeGauges) {
		t.Helper()
		if diff := cmp.Diff(scrapeNodes(t, reg), want); diff != "" {
			t.Errorf("%s: scrape (-got +want):\n%s", step, diff)
		}
		var drifted []string
		for _, n := range s.Nodes() {
			if n.Drifted {
				drifted = append(drifted, n.ID)
			}
		}
		var wantDrifted []string
		for _, l := range want.Drift {
			if strings.HasSuffix(l, " 1") {
				id, _, _ := strings.Cut(strings.TrimPrefix(l, "node="), ",")
				wantDrifted = append(wantDrifted, id)
			}
		}
		if diff := cmp.Diff(drifted, wantDrifted); diff != "" {
			t.Errorf("%s: NodeStatus.Drifted disagrees with the metric (-got +want):\n%s", step, diff)
		}
	}

	clock.Add(9 * time.Second)
	check("within the grace period", nodeGauges{
		Drift: []string{
			"node=ledger-1,region=eu-west-1,service=ledger 1",
			"node=payments-1,region=eu-west-1,service=payments 0",
			"node=payments-2,region=us-east-1,service=payments 0",
		},
		Nodes: nodeCounts(1, 1, 0, 1),
	})

	// No event happens: only the scrape notices the grace period is over.
	clock.Add(2 * time.Second)
	check("after the grace period", nodeGauges{
		Drift: []string{
			"node=ledger-1,region=eu-west-1,service=ledger 1",
			"node=payments-1,region=eu-west-1,service=payments 0",
			"node=payments-2,region=us-east-1,service=payments 1",
		},
		Nodes: nodeCounts(1, 2, 0, 0),
	})

	silent.ack(t)
	eventually(t, "payments-2 acked", func() bool { return stateOf(s, "payments-2") == metrics.StateAcked })
	check("after the silent node acknowledged", nodeGauges{
		Drift: []string{
			"node=ledger-1,region=eu-west-1,service=ledger 1",
			"node=payments-1,region=eu-west-1,service=payments 0",
			"node=payments-2,region=us-east-1,service=payments 0",
		},
		Nodes: nodeCounts(2, 1, 0, 0),
	})

	if err := bad.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ledger-1 disconnected", func() bool { return !nodeStatus(t, s, "ledger-1").Connected })
	if diff := cmp.Diff(scrapeNodes(t, reg), nodeGauges{
		Drift: []string{
			"node=payments-1,region=eu-west-1,service=payments 0",
			"node=payments-2,region=us-east-1,service=payments 0",
		},
		Nodes: nodeCounts(2, 0, 0, 0),
	}); diff != "" {
		t.Errorf("after ledger-1 disconnected: scrape (-got +want):\n%s", diff)
	}

	if got := testutil.ToFloat64(m.SigningEnabled); got != 0 {
		t.Errorf("hopguard_signing_enabled = %v, want 0 (nothing is signed yet)", got)
	}
}

// TestDriftedDefinition_Success pins NodeStatus.Drifted case by case.
func TestDriftedDefinition_Success(t *testing.T) {
	const exp, grace = "v2", 30 * time.Second
	since := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		streams  int
		acked    map[string]string
		rejected map[string]string
		expected string
		after    time.Duration
		want     bool
		counted  string
	}{
		{"acked long ago", 1, map[string]string{"L": exp, "C": exp}, nil, exp, time.Hour, false, metrics.StateAcked},
		{"pending within grace", 1, map[string]string{"L": exp, "C": "v1"}, nil, exp, grace, false, metrics.StatePending},
		{"pending past grace", 1, map[string]string{"L": exp, "C": "v1"}, nil, exp, grace + time.Nanosecond, true, metrics.StateDrifted},
		{"pending past grace, disconnected", 0, map[string]string{"L": exp}, nil, exp, time.Hour, false, metrics.StatePending},
		{"no configuration yet", 1, nil, nil, "", time.Hour, false, metrics.StatePending},
		{"nacked at once", 1, map[string]string{"L": exp}, map[string]string{"C": exp}, exp, 0, true, metrics.StateDrifted},
		{"nack of an older version", 1, map[string]string{"L": exp, "C": exp}, map[string]string{"C": "v1"}, exp, 0, false, metrics.StateAcked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(identity{id: "n"}, since)
			n.streams = tt.streams
			n.status.Expected = tt.expected
			n.expectedSince = since
			for _, typ := range []string{"L", "C"} {
				n.requested[typ] = true
			}
			for k, v := range tt.acked {
				n.acked[k] = v
			}
			for k, v := range tt.rejected {
				n.rejected[k] = v
			}
			now := since.Add(tt.after)
			if got := n.drifted(now, grace); got != tt.want {
				t.Errorf("drifted = %v, want %v", got, tt.want)
			}
			if got := n.countedState(now, grace); got != tt.counted {
				t.Errorf("countedState = %q, want %q", got, tt.counted)
			}
		})
	}
}

// stateOf returns a node's state, "" while the server does not know it.
func stateOf(s *Server, id string) string {
	for _, n := range s.Nodes() {
		if n.ID == id {
			return n.State
		}
	}
	return ""
}
