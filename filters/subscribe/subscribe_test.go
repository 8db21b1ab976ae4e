package subscribe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hopguard/hopguard/controlplane/bundles"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// controlPlane serves a Publisher on a fixed loopback address and can be
// stopped and started again on it.
type controlPlane struct {
	t    *testing.T
	addr string
	pub  *bundles.Publisher
	g    *grpc.Server
	done chan struct{}
}

func (c *controlPlane) start() {
	c.t.Helper()
	var lis net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after a stop
		if lis, err = net.Listen("tcp", c.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.addr = lis.Addr().String()
	// The control plane's own keepalive settings.
	c.g = grpc.NewServer(grpc.KeepaliveEnforcementPolicy(bundles.ServerEnforcement), grpc.KeepaliveParams(bundles.ServerKeepalive))
	c.pub.Register(c.g)
	c.done = make(chan struct{})
	go func() { defer close(c.done); _ = c.g.Serve(lis) }()
}

func (c *controlPlane) stop() {
	c.g.Stop()
	<-c.done
}

// recorder is an AcceptFunc that refuses bundles starting with "bad" and
// reports those starting with "same" as unchanged.
type recorder struct {
	mu  sync.Mutex
	got []string
}

var errBad = errors.New("bad bundle")

func (r *recorder) accept(raw []byte) (uint64, error) {
	s := string(raw)
	if strings.HasPrefix(s, "bad") {
		return 0, errBad
	}
	if strings.HasPrefix(s, "same") {
		gen, _ := strconv.ParseUint(s[len(s)-1:], 10, 64)
		return gen, fmt.Errorf("%w: %s", ErrUnchanged, s)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
	gen, _ := strconv.ParseUint(s[len(s)-1:], 10, 64)
	return gen, nil
}

func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return ""
	}
	return r.got[len(r.got)-1]
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRun_AcceptsRefusesAndReconnects(t *testing.T) {
	cp := &controlPlane{t: t, addr: "127.0.0.1:0", pub: bundles.New(nil)}
	cp.start()
	cp.pub.Publish([]byte("gen-1"))

	conn, err := grpc.NewClient(cp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Conn: conn, Subscriber: "test", Accept: rec.accept, Metrics: m,
			Reason:      func(err error) string { return "bad" },
			BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	}()

	waitFor(t, "first bundle", func() bool { return rec.last() == "gen-1" })
	cp.pub.Publish([]byte("bad-2"))
	waitFor(t, "refusal", func() bool { return testutil.ToFloat64(m.Refusals.WithLabelValues("bad")) == 1 })
	if rec.last() != "gen-1" {
		t.Fatalf("after a refusal the installed bundle is %q, want gen-1", rec.last())
	}
	cp.pub.Publish([]byte("same-7"))
	waitFor(t, "unchanged", func() bool { return testutil.ToFloat64(m.Received.WithLabelValues("unchanged")) == 1 })
	if n := testutil.ToFloat64(m.Received.WithLabelValues("refused")); n != 1 {
		t.Errorf("refused = %v after an unchanged bundle, want 1 (bad-2 only)", n)
	}
	if g := testutil.ToFloat64(m.Generation); g != 7 {
		t.Errorf("generation gauge after an unchanged bundle = %v, want 7 (the generation now in force)", g)
	}
	if rec.last() != "gen-1" {
		t.Errorf("an unchanged bundle installed %q", rec.last())
	}
	cp.pub.Publish([]byte("gen-3"))
	waitFor(t, "third bundle", func() bool { return rec.last() == "gen-3" })
	if g := testutil.ToFloat64(m.Generation); g != 3 {
		t.Errorf("generation gauge = %v, want 3", g)
	}

	// The control plane goes away and comes back on the same address with
	// a newer bundle: the subscriber reconnects on its own.
	cp.stop()
	waitFor(t, "stream down", func() bool { return testutil.ToFloat64(m.Connected) == 0 })
	cp.pub.Publish([]byte("gen-4"))
	cp.start()
	defer cp.stop()
	waitFor(t, "bundle after reconnect", func() bool { return rec.last() == "gen-4" })
	if n := testutil.ToFloat64(m.Reconnects); n < 1 {
		t.Errorf("reconnects = %v, want ≥ 1", n)
	}
	if n := testutil.ToFloat64(m.Received.WithLabelValues("accepted")); n != 3 {
		t.Errorf("accepted = %v, want 3 (gen-1, gen-3, gen-4)", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
}

func TestRun_Errors(t *testing.T) {
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	accept := func([]byte) (uint64, error) { return 0, nil }
	for name, opts := range map[string]Options{
		"no Conn":   {Accept: accept},
		"no Accept": {Conn: conn},
	} {
		if err := Run(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "Conn and Accept are required") {
			t.Errorf("Run with %s = %v, want the missing option named", name, err)
		}
	}
}

func TestBackoff_BoundedAndJittered(t *testing.T) {
	seen := map[time.Duration]bool{}
	for i := 0; i < 200; i++ {
		d := backoff(10*time.Millisecond, 80*time.Millisecond, 10)
		if d < 0 || d > 80*time.Millisecond {
			t.Fatalf("backoff = %v, outside [0, 80ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("backoff took only %d distinct values in 200 draws: not jittered", len(seen))
	}
	if d := backoff(10*time.Millisecond, time.Second, 0); d > 10*time.Millisecond {
		t.Errorf("first backoff = %v, want ≤ base", d)
	}
}
