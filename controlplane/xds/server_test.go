package xds

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/metrics"
	"github.com/hopguard/hopguard/controlplane/translate"
	"github.com/hopguard/hopguard/controlplane/xds/xdstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer serves a new Server on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	if opts.Render == nil {
		opts.Render = xdstest.Render
	}
	s := New(opts)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	g := grpc.NewServer()
	s.Register(g)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.Serve(lis)
	}()
	t.Cleanup(func() {
		g.Stop()
		<-done
	})
	return s, lis.Addr().String()
}

func envoyNode(id, service string) *corev3.Node {
	return &corev3.Node{Id: id, Cluster: service, UserAgentName: "envoy",
		Locality: &corev3.Locality{Region: "eu-west-1", Zone: "a"}}
}

// dial opens a raw ADS client and subscribes it to listeners and clusters.
func dial(t *testing.T, addr string, node *corev3.Node, nack bool) *xdstest.Client {
	t.Helper()
	c, err := xdstest.Dial(context.Background(), addr, node, nack)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	for _, typ := range []string{resourcev3.ListenerType, resourcev3.ClusterType} {
		if err := c.Subscribe(typ); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	return c
}

func waitFor(t *testing.T, c *xdstest.Client, typeURL, version string) xdstest.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.WaitFor(ctx, typeURL, version)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func renderVersion(t *testing.T, m *ir.Mesh, service string) string {
	t.Helper()
	res, err := xdstest.Render(m, service, translate.Envoy)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	v, err := Version(res)
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	return v
}

func nodeStatus(t *testing.T, s *Server, id string) NodeStatus {
	t.Helper()
	for _, n := range s.Nodes() {
		if n.ID == id {
			return n
		}
	}
	t.Fatalf("node %q unknown", id)
	return NodeStatus{}
}

func TestNackedVersionIsNotResent(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.BuildInfo{})
	if err != nil {
		t.Fatal(err)
	}
	s, addr := startServer(t, Options{Metrics: m})
	mesh1 := xdstest.Mesh(time.Second, "payments", "ledger")
	if err := s.Update(mesh1); err != nil {
		t.Fatalf("update: %v", err)
	}
	v1 := renderVersion(t, mesh1, "payments")

	c := dial(t, addr, envoyNode("nacker", "payments"), true)
	waitFor(t, c, resourcev3.ListenerType, v1)
	waitFor(t, c, resourcev3.ClusterType, v1)
	eventually(t, "NACKs of both types", func() bool {
		return testutil.ToFloat64(m.XDSNacks.WithLabelValues("listener")) >= 1 &&
			testutil.ToFloat64(m.XDSNacks.WithLabelValues("cluster")) >= 1
	})

	time.Sleep(5 * time.Second)
	for _, typ := range []string{resourcev3.ListenerType, resourcev3.ClusterType} {
		if n := c.Count(typ); n > 3 {
			t.Errorf("%s: %d responses in 5 s after NACKing, want ≤ 3", typeName(typ), n)
		}
	}
	st := nodeStatus(t, s, "nacker")
	if st.State != metrics.StateNacked {
		t.Errorf("state = %q, want %q", st.State, metrics.StateNacked)
	}
	if st.LastNack == nil || st.LastNack.Version != v1 || st.LastNack.Message != "xdstest: rejected version "+v1 {
		t.Errorf("LastNack = %+v, want version %s and the client's message", st.LastNack, v1)
	}
	// A node that NACKed its expected version is counted as drifted, not
	// as nacked (its NodeStatus.State stays nacked).
	if got := testutil.ToFloat64(m.XDSNodes.WithLabelValues(metrics.StateDrifted)); got != 1 {
		t.Errorf("hopguard_xds_nodes{state=drifted} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.XDSNodes.WithLabelValues(metrics.StateNacked)); got != 0 {
		t.Errorf("hopguard_xds_nodes{state=nacked} = %v, want 0", got)
	}

	mesh2 := xdstest.Mesh(2*time.Second, "payments", "ledger")
	if err := s.Update(mesh2); err != nil {
		t.Fatalf("update: %v", err)
	}
	v2 := renderVersion(t, mesh2, "payments")
	if v2 == v1 {
		t.Fatalf("changed mesh kept version %s", v1)
	}
	waitFor(t, c, resourcev3.ListenerType, v2)
	waitFor(t, c, resourcev3.ClusterType, v2)
}

func TestAckTracking(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.BuildInfo{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	s, addr := startServer(t, Options{Metrics: m, Now: func() time.Time { return now }})
	mesh := xdstest.Mesh(time.Second, "payments", "ledger")
	if err := s.Update(mesh); err != nil {
		t.Fatalf("update: %v", err)
	}
	v := renderVersion(t, mesh, "payments")

	c := dial(t, addr, envoyNode("payments-1", "payments"), false)
	waitFor(t, c, resourcev3.ListenerType, v)
	waitFor(t, c, resourcev3.ClusterType, v)
	eventually(t, "node acked", func() bool { return nodeStatus(t, s, "payments-1").State == metrics.StateAcked })

	want := NodeStatus{
		ID: "payments-1", Service: "payments", Flavor: FlavorEnvoy,
		Locality:  Locality{Region: "eu-west-1", Zone: "a"},
		Connected: true, State: metrics.StateAcked, Expected: v,
		Acked:     map[string]string{"listener": v, "cluster": v},
		FirstSeen: now, LastSeen: now,
	}
	if diff := cmp.Diff(nodeStatus(t, s, "payments-1"), want); diff != "" {
		t.Errorf("node status (-got +want):\n%s", diff)
	}
	if got := testutil.ToFloat64(m.XDSNodes.WithLabelValues(metrics.StateAcked)); got != 1 {
		t.Errorf("hopguard_xds_nodes{state=acked} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.XDSPushes.WithLabelValues("listener")); got != 1 {
		t.Errorf("hopguard_xds_pushes_total{type=listener} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.XDSNacks.WithLabelValues("listener")); got != 0 {
		t.Errorf("hopguard_xds_nacks_total{type=listener} = %v, want 0", got)
	}

	// A new version is pending until acknowledged, then acked again.
	mesh2 := xdstest.Mesh(3*time.Second, "payments", "ledger")
	if err := s.Update(mesh2); err != nil {
		t.Fatalf("update: %v", err)
	}
	v2 := renderVersion(t, mesh2, "payments")
	waitFor(t, c, resourcev3.ClusterType, v2)
	eventually(t, "node acked v2", func() bool {
		st := nodeStatus(t, s, "payments-1")
		return st.State == metrics.StateAcked && st.Acked["listener"] == v2 && st.Acked["cluster"] == v2
	})

	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	eventually(t, "node disconnected", func() bool { return !nodeStatus(t, s, "payments-1").Connected })
	if got := nodeStatus(t, s, "payments-1").Expected; got != v2 {
		t.Errorf("disconnected node lost its status: expected = %q, want %q", got, v2)
	}
	if got := testutil.ToFloat64(m.XDSNodes.WithLabelValues(metrics.StateAcked)); got != 0 {
		t.Errorf("hopguard_xds_nodes{state=acked} after disconnect = %v, want 0", got)
	}
}

func TestVersionIsDeterministicAcrossServers(t *testing.T) {
	mesh := xdstest.Mesh(time.Second, "payments", "ledger")
	var versions []string
	for _, id := range []string{"a", "b"} {
		s, addr := startServer(t, Options{})
		if err := s.Update(mesh); err != nil {
			t.Fatalf("update: %v", err)
		}
		c := dial(t, addr, envoyNode("node-"+id, "payments"), false)
		r := waitFor(t, c, resourcev3.ListenerType, "")
		versions = append(versions, r.Version)
	}
	if versions[0] != versions[1] {
		t.Errorf("two servers gave versions %q and %q for the same IR", versions[0], versions[1])
	}
	if changed := renderVersion(t, xdstest.Mesh(2*time.Second, "payments", "ledger"), "payments"); changed == versions[0] {
		t.Errorf("changed IR kept version %q", changed)
	}
}

func TestVersionIgnoresResourceOrder(t *testing.T) {
	res, err := xdstest.Render(xdstest.Mesh(time.Second, "a", "b", "c"), "a", translate.Envoy)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := Version(res)
	if err != nil {
		t.Fatal(err)
	}
	res.Clusters[0], res.Clusters[2] = res.Clusters[2], res.Clusters[0]
	v2, err := Version(res)
	if err != nil {
		t.Fatal(err)
	}
	if v1 != v2 || len(v1) != versionLen {
		t.Errorf("versions %q and %q, want equal and %d characters", v1, v2, versionLen)
	}
}

func TestVersion_Errors(t *testing.T) {
	res, err := xdstest.Render(xdstest.Mesh(time.Second, "a", "b"), "a", translate.Envoy)
	if err != nil {
		t.Fatal(err)
	}
	dup := *res
	dup.Clusters = append(append(dup.Clusters[:0:0], res.Clusters...), res.Clusters[0])
	withNil := *res
	withNil.Routes = append(withNil.Routes[:0:0], nil)
	for name, in := range map[string]*translate.Resources{"nil": nil, "duplicate": &dup, "nil resource": &withNil} {
		if v, err := Version(in); err == nil {
			t.Errorf("%s: Version = %q, want an error", name, v)
		}
	}
}

// countingRender wraps xdstest.Render and counts calls per service.
type countingRender struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingRender) render(m *ir.Mesh, service string, flavor translate.Flavor) (*translate.Resources, error) {
	c.mu.Lock()
	c.calls[service]++
	c.mu.Unlock()
	return xdstest.Render(m, service, flavor)
}

func (c *countingRender) count(service string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[service]
}

func TestSnapshotsAreSharedPerServiceAndFlavor(t *testing.T) {
	cr := &countingRender{calls: map[string]int{}}
	s, addr := startServer(t, Options{Render: cr.render})
	if err := s.Update(xdstest.Mesh(time.Second, "payments", "ledger")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"p1", "p2", "p3"} {
		c := dial(t, addr, envoyNode(id, "payments"), false)
		waitFor(t, c, resourcev3.ListenerType, "")
	}
	if got := cr.count("payments"); got != 1 {
		t.Errorf("renders after 3 connects = %d, want 1", got)
	}
	if err := s.Update(xdstest.Mesh(2*time.Second, "payments", "ledger")); err != nil {
		t.Fatal(err)
	}
	if got := cr.count("payments"); got != 2 {
		t.Errorf("renders after an update = %d, want 2", got)
	}
}

func TestUpdateIsAllOrNothing(t *testing.T) {
	s, addr := startServer(t, Options{})
	good := xdstest.Mesh(time.Second, "payments", "ledger")
	if err := s.Update(good); err != nil {
		t.Fatal(err)
	}
	v := renderVersion(t, good, "payments")
	cp := dial(t, addr, envoyNode("p", "payments"), false)
	cl := dial(t, addr, envoyNode("l", "ledger"), false)
	waitFor(t, cp, resourcev3.ListenerType, v)
	waitFor(t, cl, resourcev3.ListenerType, "")

	// ledger is gone from the new mesh: its render fails, so payments must
	// not move either.
	err := s.Update(xdstest.Mesh(2*time.Second, "payments"))
	if !errors.Is(err, xdstest.ErrUnknownService) {
		t.Fatalf("Update = %v, want ErrUnknownService", err)
	}
	if got := nodeStatus(t, s, "p").Expected; got != v {
		t.Errorf("payments expected %q after a failed update, want %q", got, v)
	}
	time.Sleep(100 * time.Millisecond)
	if n := cp.Count(resourcev3.ListenerType); n != 1 {
		t.Errorf("payments received %d listener responses, want 1", n)
	}

	// Once the ledger node has left, it no longer blocks updates: it only
	// loses its snapshot.
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ledger node disconnected", func() bool { return !nodeStatus(t, s, "l").Connected })
	smaller := xdstest.Mesh(2*time.Second, "payments")
	if err := s.Update(smaller); err != nil {
		t.Fatalf("Update after the failing node left = %v", err)
	}
	waitFor(t, cp, resourcev3.ListenerType, renderVersion(t, smaller, "payments"))
	if got := nodeStatus(t, s, "l").Expected; got != "" {
		t.Errorf("disconnected ledger node expects %q, want none", got)
	}
}

func TestBadNodeIsRefused(t *testing.T) {
	s, addr := startServer(t, Options{})
	if err := s.Update(xdstest.Mesh(time.Second, "payments")); err != nil {
		t.Fatal(err)
	}
	c, err := xdstest.Dial(context.Background(), addr, &corev3.Node{Id: "no-cluster"}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	// The server ends the stream on the first request, so only one is sent:
	// a second could meet the closed stream.
	if err := c.Subscribe(resourcev3.ListenerType); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("stream of a node without cluster still open after 5s")
	}
	if code := status.Code(c.Err()); code != codes.InvalidArgument {
		t.Errorf("stream ended with %v, want InvalidArgument", c.Err())
	}
	if n := len(c.Responses()); n != 0 {
		t.Errorf("node without cluster got %d responses, want 0", n)
	}
	if n := len(s.Nodes()); n != 0 {
		t.Errorf("Nodes() lists %d nodes, want 0", n)
	}
}

func TestNodesConnectBeforeFirstUpdate(t *testing.T) {
	s, addr := startServer(t, Options{})
	c := dial(t, addr, envoyNode("early", "payments"), false)
	eventually(t, "node registered", func() bool { return len(s.Nodes()) == 1 })
	if st := nodeStatus(t, s, "early"); st.State != metrics.StatePending || st.Expected != "" {
		t.Errorf("before any config: state %q expected %q, want pending and empty", st.State, st.Expected)
	}
	mesh := xdstest.Mesh(time.Second, "payments")
	if err := s.Update(mesh); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, resourcev3.ListenerType, renderVersion(t, mesh, "payments"))
}
