package e2e

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds"

	"github.com/hopguard/hopguard/controlplane"
	cpxds "github.com/hopguard/hopguard/controlplane/xds"
)

// holdProxy is a TCP proxy on loopback that can hold traffic (bytes stop
// flowing but connections stay open, as behind a stuck middlebox) and cut
// every connection.
type holdProxy struct {
	lis    net.Listener
	target string

	mu     sync.Mutex
	held   bool
	resume chan struct{}
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startHoldProxy(t *testing.T, target string) *holdProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{lis: lis, target: target, resume: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = lis.Close()
		p.release()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *holdProxy) addr() string { return p.lis.Addr().String() }

func (p *holdProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(u, c)
		go p.pipe(c, u)
	}
}

// pipe copies src to dst, waiting while the proxy holds traffic.
func (p *holdProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			held, resume := p.held, p.resume
			p.mu.Unlock()
			if held {
				<-resume
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF, or the connection was cut
		}
	}
}

func (p *holdProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = true
}

func (p *holdProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held {
		p.held = false
		close(p.resume)
		p.resume = make(chan struct{})
	}
}

// cut closes every proxied connection; clients reconnect through the proxy.
func (p *holdProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// dialVia opens a proxyless connection to xds:///target whose xDS stream
// goes to xdsAddr, as node id in region.
func dialVia(t *testing.T, xdsAddr, nodeID, cluster, region, target, extProcAddr string) *grpc.ClientConn {
	t.Helper()
	raw, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri": xdsAddr, "channel_creds": []any{map[string]any{"type": "insecure"}},
			"server_features": []any{"xds_v3"},
		}},
		"node": map[string]any{"id": nodeID, "cluster": cluster, "locality": map[string]any{"region": region, "zone": "a"}},
		"allowed_grpc_services": map[string]any{
			extProcAddr: map[string]any{"channel_creds": []any{map[string]any{"type": "insecure"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := xds.NewXDSResolverWithConfigForTesting(raw)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(rb))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// driftSeries returns hopguard_manifest_drift's value per node with its
// region label, as a scrape sees it.
func driftSeries(t *testing.T, reg *prometheus.Registry) map[string]string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, mf := range mfs {
		if mf.GetName() != "hopguard_manifest_drift" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := "0"
			if m.GetGauge().GetValue() == 1 {
				v = "1"
			}
			out[labels["node"]] = labels["region"] + "=" + v
		}
	}
	return out
}

func nodeByID(nodes []cpxds.NodeStatus, id string) cpxds.NodeStatus {
	for _, n := range nodes {
		if n.ID == id {
			return n
		}
	}
	return cpxds.NodeStatus{}
}

// TestHeldClientShowsAsDrifted holds a real grpc-go client's xDS stream
// while the configuration changes: the client keeps its old version, and
// the control plane reports it drifted, labelled with its region, while a
// client in another region converges. Reconnecting clears the drift.
func TestHeldClientShowsAsDrifted(t *testing.T) {
	b := startBackend(t)
	ep := startExtProc(t)
	dir := t.TempDir()
	cfg := func(attempts int) string {
		return meshYAML(b.addr, ep.addr, map[string]int{"payments": attempts, "ledger": 1, "inventory": 1},
			map[string]string{"payments": "mesh", "ledger": "app", "inventory": "none"})
	}
	writeFile(t, filepath.Join(dir, "mesh.yaml"), cfg(3))
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := controlplane.Start(ctx, controlplane.Options{
		ConfigDir: dir, XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Logger:   zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
		Registry: reg, Debounce: 50 * time.Millisecond, DriftGrace: 300 * time.Millisecond,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Stop(); cancel(); _ = cp.Wait() })
	m := &mesh{dir: dir, cp: cp}

	proxy := startHoldProxy(t, cp.XDSAddr())
	held := dialVia(t, proxy.addr(), "checkout-eu-1", "checkout", "eu-west-1", "payments", ep.addr)
	free := dialVia(t, cp.XDSAddr(), "checkout-us-1", "checkout", "us-east-1", "payments", ep.addr)
	waitReady(t, b, testgrpc.NewTestServiceClient(held))
	waitReady(t, b, testgrpc.NewTestServiceClient(free))
	eventually(t, 10*time.Second, "both nodes acked", func() bool {
		nodes := cp.Nodes()
		return nodeByID(nodes, "checkout-eu-1").State == "acked" && nodeByID(nodes, "checkout-us-1").State == "acked"
	})
	before := nodeByID(cp.Nodes(), "checkout-eu-1").Expected

	proxy.hold()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), cfg(2))
	eventually(t, 10*time.Second, "the held node reported drifted", func() bool {
		n := nodeByID(cp.Nodes(), "checkout-eu-1")
		return n.Connected && n.Drifted && n.Expected != before
	})
	eventually(t, 10*time.Second, "the free node converged", func() bool {
		n := nodeByID(cp.Nodes(), "checkout-us-1")
		return n.State == "acked" && !n.Drifted && n.Expected != before
	})
	series := driftSeries(t, reg)
	if series["checkout-eu-1"] != "eu-west-1=1" || series["checkout-us-1"] != "us-east-1=0" {
		t.Errorf("hopguard_manifest_drift by node = %v, want checkout-eu-1 eu-west-1=1 and checkout-us-1 us-east-1=0", series)
	}
	held1 := nodeByID(cp.Nodes(), "checkout-eu-1")
	for typ, v := range held1.Acked {
		if v != before {
			t.Errorf("held node acked %s at %s, want the old version %s", typ, v, before)
		}
	}
	var summary []cpxds.LocalitySummary
	if code := m.getJSON(t, "/nodes/summary", &summary); code != 200 {
		t.Fatalf("/nodes/summary: %d", code)
	}
	var eu, us cpxds.LocalitySummary
	for _, s := range summary {
		switch s.Region {
		case "eu-west-1":
			eu = s
		case "us-east-1":
			us = s
		}
	}
	if eu.Drifted != 1 || us.Drifted != 0 || eu.Running[before] != 1 || us.Running[before] != 0 {
		t.Errorf("/nodes/summary: eu %+v, us %+v; want eu drifted on %s, us not", eu, us, before)
	}

	// Reconnecting: the stream is cut, traffic flows again, the client
	// reconnects, gets the new version and acknowledges it.
	proxy.cut()
	proxy.release()
	eventually(t, 15*time.Second, "the held node converged after reconnecting", func() bool {
		n := nodeByID(cp.Nodes(), "checkout-eu-1")
		return n.Connected && !n.Drifted && n.State == "acked"
	})
	if s := driftSeries(t, reg)["checkout-eu-1"]; !strings.HasSuffix(s, "=0") {
		t.Errorf("hopguard_manifest_drift{node=checkout-eu-1} = %s after reconnecting, want 0", s)
	}
}
