package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/bundles"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/internal/cli"
	"github.com/hopguard/hopguard/policy"
	"github.com/hopguard/hopguard/policy/bundle"
	"github.com/hopguard/hopguard/policy/signing"
)

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// metricSum scrapes url and sums the samples of name whose labels contain
// every one of labels ("k=\"v\"").
func metricSum(t *testing.T, url, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSubscriptionRefusesBadBundles runs `hopguard extproc --control-plane`
// against a bundle stream and a real grpc-go caller: a good signed bundle is
// enforced; a bundle with a flipped byte, from another key, of an older
// generation or for another environment is refused and counted, and the
// good one stays enforced; a newer good bundle takes over.
func TestSubscriptionRefusesBadBundles(t *testing.T) {
	keyDir := t.TempDir()
	privPath, pubPath, _, err := signing.WriteKeyPair(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	k, err := signing.LoadPrivateKey(privPath)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}

	// The stream the filter subscribes to.
	pub := bundles.New(nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pub.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	// The control plane serves xDS for the same budgets; the caller's
	// ext_proc filter is the subscribed `hopguard extproc`.
	b := startBackend(t)
	epAddr, metricsAddr := freeAddr(t), freeAddr(t)
	m := startControlPlane(t, map[string]string{"mesh.yaml": fmt.Sprintf(chargeBudgets, b.addr, epAddr)})
	policies := compile(t, m.dir)

	sign := func(p policy.Bundle, signer *signing.PrivateKey, env string, gen uint64) []byte {
		bb := bundle.New(p, bundle.SchemaRev, env, gen, time.Now())
		if err := bb.Sign(signer); err != nil {
			t.Fatal(err)
		}
		raw, err := bundle.Marshal(bb)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	pub.Publish(sign(*policies, k, "e2e", 10))

	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, cli.Env{Args: []string{"extproc", "--control-plane", lis.Addr().String(),
			"--verify-key", pubPath, "--environment", "e2e", "--addr", epAddr, "--metrics-addr", metricsAddr,
			"--log-level", "warn"}, Stdout: logs, Stderr: logs, Version: "test"})
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("hopguard extproc exited %d:\n%s", code, logs.String())
		}
	})

	client := testgrpc.NewTestServiceClient(m.dial(t, "checkout-1", "checkout", "payments", epAddr))
	call := func() error {
		cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer ccancel()
		_, err := client.UnaryCall(cctx, &testgrpc.SimpleRequest{})
		return err
	}
	// Generation 10 requires a key: a call without one is refused by the filter.
	eventually(t, 15*time.Second, "the subscribed filter enforcing generation 10", func() bool {
		return status.Code(call()) == codes.InvalidArgument
	})
	metricsURL := "http://" + metricsAddr + "/metrics"
	if g := metricSum(t, metricsURL, "hopguard_filter_bundle_generation"); g != 10 {
		t.Fatalf("hopguard_filter_bundle_generation = %v, want 10", g)
	}
	// The filter names the policies it enforces by the hash the control
	// plane computes for the same files.
	hash10 := bundle.PolicyHash(policies)
	if n := metricSum(t, metricsURL, "hopguard_filter_policy_info", `policy_hash="`+hash10+`"`); n != 1 {
		t.Errorf("hopguard_filter_policy_info{policy_hash=%q} = %v, want 1", hash10, n)
	}

	// Bad bundles: each one refused with its reason, generation 10 stays.
	relaxed := *policies
	relaxed.Routes = append([]policy.Route(nil), policies.Routes...)
	for i := range relaxed.Routes {
		relaxed.Routes[i].Idempotency.Require = policy.RequireNever
		relaxed.Routes[i].SideEffects = false
	}
	good11 := sign(relaxed, k, "e2e", 11)
	flipped := append([]byte(nil), good11...)
	i := bytes.Index(flipped, []byte(`"attempts":`)) + len(`"attempts":`)
	flipped[i] ^= 0x01 // 2 → 3: a budget quietly changed in transit
	for _, bad := range []struct {
		reason string
		raw    []byte
	}{
		{"signature", flipped},
		{"signature", sign(relaxed, otherKey, "e2e", 11)},
		{"stale", sign(relaxed, k, "e2e", 9)},
		{"environment", sign(relaxed, k, "prod", 11)},
	} {
		before := metricSum(t, metricsURL, "hopguard_filter_bundle_refusals_total", `reason="`+bad.reason+`"`)
		pub.Publish(bad.raw)
		eventually(t, 5*time.Second, "refusal "+bad.reason, func() bool {
			return metricSum(t, metricsURL, "hopguard_filter_bundle_refusals_total", `reason="`+bad.reason+`"`) == before+1
		})
		if err := call(); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("after a %s bundle the filter no longer enforces generation 10: %v", bad.reason, err)
		}
	}
	if g := metricSum(t, metricsURL, "hopguard_filter_bundle_generation"); g != 10 {
		t.Errorf("generation after refusals = %v, want 10", g)
	}

	// The policies in force again, at a lower generation (as another
	// control-plane replica would number them): unchanged, not refused.
	refusedBefore := metricSum(t, metricsURL, "hopguard_filter_bundle_refusals_total")
	pub.Publish(sign(*policies, k, "e2e", 8))
	eventually(t, 5*time.Second, "an unchanged bundle counted", func() bool {
		return metricSum(t, metricsURL, "hopguard_filter_bundles_total", `result="unchanged"`) == 1
	})
	if n := metricSum(t, metricsURL, "hopguard_filter_bundle_refusals_total"); n != refusedBefore {
		t.Errorf("refusals went from %v to %v on a bundle with the policies in force", refusedBefore, n)
	}
	if g := metricSum(t, metricsURL, "hopguard_filter_bundle_generation"); g != 10 {
		t.Errorf("generation after an unchanged bundle = %v, want 10", g)
	}

	// A newer good bundle is accepted and enforced.
	pub.Publish(good11)
	eventually(t, 5*time.Second, "generation 11 enforced", func() bool { return call() == nil })
	if g := metricSum(t, metricsURL, "hopguard_filter_bundle_generation"); g != 11 {
		t.Errorf("generation = %v, want 11", g)
	}
	hash11 := bundle.PolicyHash(&relaxed)
	if n := metricSum(t, metricsURL, "hopguard_filter_policy_info"); n != 1 {
		t.Errorf("hopguard_filter_policy_info has %v series at 1, want exactly 1", n)
	}
	if n := metricSum(t, metricsURL, "hopguard_filter_policy_info", `policy_hash="`+hash11+`"`); n != 1 || hash11 == hash10 {
		t.Errorf("hopguard_filter_policy_info{policy_hash=%q} = %v, want 1 (and a hash other than %s)", hash11, n, hash10)
	}
}

// compile loads and compiles the configuration in dir.
func compile(t *testing.T, dir string) *policy.Bundle {
	t.Helper()
	cfg, vs, err := v1alpha1.Load(filepath.Clean(dir))
	if err != nil || len(vs.Errors()) > 0 {
		t.Fatalf("load: %v %v", err, vs.Errors())
	}
	m, err := ir.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m.Bundle()
}
