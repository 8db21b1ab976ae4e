package controlplane

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/xds"
)

// TestProxylessGRPCClientIsServed points a real grpc-go xDS client
// (xds:///ledger) at the control plane: it must be recognised as proxyless,
// get its snapshot when it first asks, ACK it, and reach the backend.
func TestProxylessGRPCClientIsServed(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := grpc.NewServer()
	healthpb.RegisterHealthServer(backend, health.NewServer())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = backend.Serve(lis)
	}()
	t.Cleanup(func() {
		backend.Stop()
		<-served
	})
	port := lis.Addr().(*net.TCPAddr).Port

	dir := t.TempDir()
	cfg := fmt.Sprintf(`apiVersion: hopguard.dev/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec:
  extProc: {disabled: true}
---
apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: ledger, namespace: shop}
spec:
  protocol: grpc
  port: %d
  endpoints:
    - {address: 127.0.0.1:%d}
---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: health, namespace: shop}
spec:
  service: ledger
  match: {grpcMethod: grpc.health.v1.Health/Check}
  deadline: {default: 2s, max: 2s}
  retry: {authority: mesh, attempts: 2}
  sideEffects: false
`, port, port)
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cp := start(t, Options{ConfigDir: dir})

	bootstrap := fmt.Sprintf(`{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": "tester-1", "cluster": "tester", "locality": {"region": "eu-west-1", "zone": "b"}}
}`, cp.XDSAddr())
	resolver, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///ledger", grpc.WithResolvers(resolver),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("Check via xds:///ledger: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("status = %v, want SERVING", resp.GetStatus())
	}
	eventually(t, "proxyless node acked", func() bool {
		nodes := cp.Nodes()
		return len(nodes) == 1 && nodes[0].State == "acked"
	})
	n := cp.Nodes()[0]
	if n.ID != "tester-1" || n.Flavor != "proxyless" || n.Locality.Zone != "b" || n.LastNack != nil {
		t.Errorf("node = %+v, want tester-1, proxyless, zone b, no NACK", n)
	}
	for _, typ := range []string{"listener", "route", "cluster", "endpoint"} {
		if n.Acked[typ] != n.Expected {
			t.Errorf("acked[%s] = %q, want %q", typ, n.Acked[typ], n.Expected)
		}
	}
}
