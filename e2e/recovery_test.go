package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/hopguard/hopguard/controlplane"
	"github.com/hopguard/hopguard/controlplane/audit"
)

// TestPinServesAnEarlierGeneration: a change reaches a real grpc-go client,
// a pin brings the earlier generation back, unpin returns the newest — each
// observed as the number of attempts the client's xDS retry policy makes.
func TestPinServesAnEarlierGeneration(t *testing.T) {
	b := startBackend(t)
	ep := startExtProc(t)
	dir := t.TempDir()
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	cfg := func(attempts int) string {
		return meshYAML(b.addr, ep.addr, map[string]int{"payments": attempts, "ledger": 1, "inventory": 1},
			map[string]string{"payments": "mesh", "ledger": "app", "inventory": "none"})
	}
	writeFile(t, filepath.Join(dir, "mesh.yaml"), cfg(3))
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := controlplane.Start(ctx, controlplane.Options{
		ConfigDir: dir, XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", AuditLog: auditPath,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), Registry: prometheus.NewRegistry(),
		Debounce: 50 * time.Millisecond,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Stop(); cancel(); _ = cp.Wait() })
	first := cp.Config().Generation

	client := testgrpc.NewTestServiceClient((&mesh{dir: dir, cp: cp}).dial(t, "checkout-1", "checkout", "payments", ep.addr))
	waitReady(t, b, client)
	if got := callFailing(t, b, client); got != 3 {
		t.Fatalf("generation %d: %d attempts, want 3", first, got)
	}

	writeFile(t, filepath.Join(dir, "mesh.yaml"), cfg(2))
	attemptsBecome(t, b, client, 2, "the change to 2 attempts")
	// Nodes get the change before /config shows it: wait for both.
	eventually(t, 10*time.Second, "/config to show the new generation", func() bool { return cp.Config().Generation > first })
	second := cp.Config().Generation

	pinned, err := cp.Pin(first, "bad rollout")
	if err != nil {
		t.Fatalf("Pin(%d): %v", first, err)
	}
	if pinned <= second {
		t.Errorf("a pin is distributed as generation %d, want a new one above %d (filters refuse older ones)", pinned, second)
	}
	attemptsBecome(t, b, client, 3, "the pinned generation")
	if got := cp.Config().Overrides.PinnedTo; got != first {
		t.Errorf("/config overrides.pinnedTo = %d, want %d", got, first)
	}

	// A change made while pinned is accepted and recorded, not served.
	writeFile(t, filepath.Join(dir, "mesh.yaml"), cfg(1))
	eventually(t, 10*time.Second, "the change made while pinned to be recorded", func() bool {
		recs := readAudit(t, auditPath)
		return len(recs) > 0 && recs[len(recs)-1].Kind == audit.KindChange && strings.HasPrefix(recs[len(recs)-1].Detail, "accepted, not served")
	})
	if got := callFailing(t, b, client); got != 3 {
		t.Fatalf("a change while pinned was served: %d attempts, want 3", got)
	}

	if _, err := cp.Unpin("rollout fixed"); err != nil {
		t.Fatal(err)
	}
	attemptsBecome(t, b, client, 1, "the newest accepted configuration after unpin")

	if _, err := cp.Pin(424242, "typo"); !errors.Is(err, controlplane.ErrUnknownGeneration) {
		t.Errorf("Pin of an unknown generation = %v, want ErrUnknownGeneration", err)
	}

	recs := readAudit(t, auditPath)
	var kinds []string
	for _, r := range recs {
		kinds = append(kinds, r.Kind)
	}
	want := []string{audit.KindChange, audit.KindChange, audit.KindPin, audit.KindChange, audit.KindUnpin}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("audit kinds = %v, want %v", kinds, want)
	}
}

// attemptsBecome waits until a failing call makes want attempts.
func attemptsBecome(t *testing.T, b *backend, client testgrpc.TestServiceClient, want int64, what string) {
	t.Helper()
	var got int64
	eventually(t, 10*time.Second, what, func() bool {
		got = callFailing(t, b, client)
		return got == want
	})
}

func readAudit(t *testing.T, path string) []audit.Record {
	t.Helper()
	l, err := audit.Open(path)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	defer l.Close()
	return l.Records()
}

const freezeBudgets = chargeBudgets + `---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: refund, namespace: shop}
spec:
  service: payments
  match: {grpcMethod: grpc.testing.TestService/EmptyCall}
  deadline: {default: 2s, max: 4s}
  retry: {authority: app, attempts: 2}
  sideEffects: true
  critical: true
  idempotency: {require: always}
`

// TestFreezeRefusesNonCriticalSideEffects: while frozen, a side effect on a
// route not marked critical is refused before the backend; a critical one
// goes through; unfreezing lets both through again.
func TestFreezeRefusesNonCriticalSideEffects(t *testing.T) {
	m := startEnforcedMesh(t, freezeBudgets, func(o *controlplane.Options) {
		o.AuditLog = filepath.Join(t.TempDir(), "audit.jsonl")
	})
	client := testgrpc.NewTestServiceClient(m.dial(t, "checkout-1", "checkout", "payments", m.extProcAddr))
	n := 0
	key := func() context.Context {
		n++
		ctx, cancel := context.WithTimeout(withKey(context.Background(), fmt.Sprintf("k-%d-%d", time.Now().UnixNano(), n)), 3*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	eventually(t, 10*time.Second, "a first keyed call to pass", func() bool {
		_, err := client.UnaryCall(key(), &testgrpc.SimpleRequest{})
		return err == nil
	})

	if _, err := m.cp.Freeze(true, "incident 42"); err != nil {
		t.Fatal(err)
	}
	if !m.cp.Config().Overrides.Frozen {
		t.Error("/config does not show the freeze")
	}
	before := m.backend.calls.Load()
	_, err := client.UnaryCall(key(), &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.FailedPrecondition || !containsReason(err, "frozen") {
		t.Errorf("non-critical side effect while frozen: %v, want FAILED_PRECONDITION (frozen)", err)
	}
	if got := m.backend.calls.Load() - before; got != 0 {
		t.Errorf("a frozen side effect reached the backend %d times", got)
	}
	if _, err := client.EmptyCall(key(), &testgrpc.Empty{}); err != nil {
		t.Errorf("critical side effect while frozen: %v, want it allowed", err)
	}
	if m.backend.empties.Load() != 1 {
		t.Errorf("critical calls at the backend = %d, want 1", m.backend.empties.Load())
	}

	if _, err := m.cp.Freeze(false, "incident over"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UnaryCall(key(), &testgrpc.SimpleRequest{}); err != nil {
		t.Errorf("side effect after unfreeze: %v", err)
	}
}

func containsReason(err error, reason string) bool {
	s, _ := status.FromError(err)
	return s != nil && strings.Contains(s.Message(), reason)
}
