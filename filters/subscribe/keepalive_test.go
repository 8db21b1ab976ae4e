package subscribe

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hopguard/hopguard/controlplane/bundles"
	"github.com/hopguard/hopguard/internal/testutil/tcpproxy"
)

// TestRun_SilentControlPlaneIsDetected: with the keepalive settings the
// filter uses (at grpc-go's 10 s floor, to keep the test short), a
// connection that goes silent without closing (a flow a middlebox lost)
// is noticed: the stream is reported down and the subscription
// reconnects, getting the bundle published meanwhile.
func TestRun_SilentControlPlaneIsDetected(t *testing.T) {
	cp := &controlPlane{t: t, addr: "127.0.0.1:0", pub: bundles.New(nil)}
	cp.start()
	defer cp.stop()
	cp.pub.Publish([]byte("gen-1"))
	proxy := tcpproxy.Start(t, cp.addr, tcpproxy.Options{})

	ka := bundles.ClientKeepalive
	ka.Time, ka.Timeout = 10*time.Second, time.Second // grpc-go raises any Time below 10 s to 10 s
	conn, err := grpc.NewClient(proxy.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(ka))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Conn: conn, Subscriber: "test", Accept: rec.accept, Metrics: m,
			Reason: func(error) string { return "bad" }, BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	}()
	waitFor(t, "first bundle", func() bool { return rec.last() == "gen-1" })

	proxy.Silence()
	cp.pub.Publish([]byte("gen-2")) // lost in the silence
	// Keepalive gives up after 10 s + 1 s; the subscription then
	// reconnects on a new connection and gets gen-2.
	deadline := time.Now().Add(30 * time.Second)
	for rec.last() != "gen-2" {
		if time.Now().After(deadline) {
			t.Fatal("the bundle published during the silence has not arrived 30 s into it: the silent stream was not noticed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := testutil.ToFloat64(m.Reconnects); n < 1 {
		t.Errorf("reconnects = %v, want ≥ 1", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v after cancel", err)
	}
}
