package xds

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
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

func driftSeries(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		if mf.GetName() != "hopguard_manifest_drift" {
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
	return strings.Join(lines, "\n")
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

func TestManifestDrift(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.BuildInfo{})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)}
	s, addr := startServer(t, Options{Metrics: m, Now: clock.Now, DriftGrace: 10 * time.Second})
	if err := s.Update(xdstest.Mesh(time.Second, "payments", "ledger")); err != nil {
		t.Fatal(err)
	}

	// An acking node is not drifted, however much time passes.
	good := dial(t, addr, envoyNode("payments-1", "payments"), false)
	v := renderVersion(t, xdstest.Mesh(time.Second, "payments", "ledger"), "payments")
	waitFor(t, good, resourcev3.ListenerType, v)
	waitFor(t, good, resourcev3.ClusterType, v)
	eventually(t, "payments-1 acked", func() bool { return stateOf(s, "payments-1") == metrics.StateAcked })

	// A node that NACKs is drifted at once.
	bad := dial(t, addr, envoyNode("ledger-1", "ledger"), true)
	_ = bad
	eventually(t, "ledger-1 nacked", func() bool { return stateOf(s, "ledger-1") == metrics.StateNacked })

	// A node that takes its config and never answers is drifted once the
	// grace period is over.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	silent := envoyNode("payments-2", "payments")
	silent.Locality.Region = "us-east-1"
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: silent, TypeUrl: resourcev3.ListenerType}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}

	const before = "node=ledger-1,region=eu-west-1,service=ledger 1\n" +
		"node=payments-1,region=eu-west-1,service=payments 0\n" +
		"node=payments-2,region=us-east-1,service=payments 0"
	if got := driftSeries(t, reg); got != before {
		t.Errorf("within the grace period hopguard_manifest_drift =\n%s\nwant\n%s", got, before)
	}
	clock.Add(11 * time.Second)
	const after = "node=ledger-1,region=eu-west-1,service=ledger 1\n" +
		"node=payments-1,region=eu-west-1,service=payments 0\n" +
		"node=payments-2,region=us-east-1,service=payments 1"
	if got := driftSeries(t, reg); got != after {
		t.Errorf("after the grace period hopguard_manifest_drift =\n%s\nwant\n%s", got, after)
	}
	if !nodeStatus(t, s, "payments-2").Drifted || nodeStatus(t, s, "payments-1").Drifted {
		t.Error("/nodes drifted flags disagree with the metric")
	}
	if got := testutil.ToFloat64(m.SigningEnabled); got != 0 {
		t.Errorf("hopguard_signing_enabled = %v, want 0 (nothing is signed yet)", got)
	}
}
