// Package e2e proves the control plane against a real, independent data
// plane: grpc-go's xDS client (xds:/// targets) with its own ext_proc filter.
// The control plane, a test backend and a recording ext_proc server all run
// on 127.0.0.1 inside the test process.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"

	"github.com/hopguard/hopguard/controlplane"
	"github.com/hopguard/hopguard/internal/testutil/extprocenv"
)

func TestMain(m *testing.M) {
	if extprocenv.Reexec() {
		return
	}
	os.Exit(m.Run())
}

// backend is a grpc.testing.TestService whose behaviour tests switch at run
// time and which counts the attempts it sees.
type backend struct {
	testgrpc.UnimplementedTestServiceServer
	addr     string
	attempts atomic.Int64
	// fail makes UnaryCall return UNAVAILABLE.
	fail atomic.Bool
	// delay makes EmptyCall sleep this long (or until the call ends).
	delay atomic.Int64
}

func (b *backend) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	b.attempts.Add(1)
	if b.fail.Load() {
		return nil, status.Error(codes.Unavailable, "backend: told to fail")
	}
	return &testgrpc.SimpleResponse{}, nil
}

func (b *backend) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	b.attempts.Add(1)
	select {
	case <-time.After(time.Duration(b.delay.Load())):
		return &testgrpc.Empty{}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: lis.Addr().String()}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, b)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return b
}

// extProcRecorder is an ext_proc server that lets every request through and
// records the stream metadata the data plane attached to each Process stream.
type extProcRecorder struct {
	extprocv3.UnimplementedExternalProcessorServer
	addr    string
	mu      sync.Mutex
	streams []metadata.MD
}

func (r *extProcRecorder) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	r.mu.Lock()
	r.streams = append(r.streams, md.Copy())
	r.mu.Unlock()
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var resp *extprocv3.ProcessingResponse
		switch req.Request.(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
		case *extprocv3.ProcessingRequest_RequestBody:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
		case *extprocv3.ProcessingRequest_ResponseBody:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
		case *extprocv3.ProcessingRequest_RequestTrailers:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
		default:
			return fmt.Errorf("extproc recorder: unexpected request %T", req.Request)
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// seen returns the values of key in every recorded stream's metadata.
func (r *extProcRecorder) seen(key string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, md := range r.streams {
		out = append(out, md.Get(key)...)
	}
	return out
}

func startExtProc(t *testing.T) *extProcRecorder {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &extProcRecorder{addr: lis.Addr().String()}
	s := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(s, r)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return r
}

// mesh is one running control plane on a config directory.
type mesh struct {
	dir string
	cp  *controlplane.ControlPlane
}

func startControlPlane(t *testing.T, files map[string]string) *mesh {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		writeFile(t, filepath.Join(dir, name), body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := controlplane.Start(ctx, controlplane.Options{
		ConfigDir: dir,
		XDSAddr:   "127.0.0.1:0",
		AdminAddr: "127.0.0.1:0",
		Logger:    zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
		Registry:  prometheus.NewRegistry(),
		Debounce:  50 * time.Millisecond,
	})
	if err != nil {
		cancel()
		t.Fatalf("controlplane.Start: %v", err)
	}
	t.Cleanup(func() {
		cp.Stop()
		cancel()
		if err := cp.Wait(); err != nil {
			t.Errorf("control plane: %v", err)
		}
	})
	return &mesh{dir: dir, cp: cp}
}

// writeFile replaces a file atomically, as editors and config management do.
func writeFile(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// dial opens a proxyless connection to xds:///target as node id of service
// cluster, bootstrapped to the mesh's control plane.
func (m *mesh) dial(t *testing.T, nodeID, cluster, target, extProcAddr string) *grpc.ClientConn {
	t.Helper()
	bootstrap := map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      m.cp.XDSAddr(),
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []any{"xds_v3"},
		}},
		"node": map[string]any{
			"id":       nodeID,
			"cluster":  cluster,
			"locality": map[string]any{"region": "eu-west-1", "zone": "a"},
		},
		// gRFC A102: the ext_proc target must be allowed explicitly.
		"allowed_grpc_services": map[string]any{
			extProcAddr: map[string]any{"channel_creds": []any{map[string]any{"type": "insecure"}}},
		},
	}
	raw, err := json.Marshal(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := xds.NewXDSResolverWithConfigForTesting(raw)
	if err != nil {
		t.Fatalf("xds resolver: %v", err)
	}
	cc, err := grpc.NewClient("xds:///"+target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(rb))
	if err != nil {
		t.Fatalf("dial %s: %v", target, err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// getJSON fetches an admin endpoint and decodes its JSON body into v.
func (m *mesh) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := http.Get("http://" + m.cp.AdminAddr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	return resp.StatusCode
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
	return 0
}
