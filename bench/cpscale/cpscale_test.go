package cpscale

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hopguard/hopguard/bench/result"
	"github.com/hopguard/hopguard/bench/scenario"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRun_EveryClientAcksTheChangeOnEveryServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sc := &scenario.CPScale{
		Quick:      scenario.CPScaleSize{Services: 6, RoutesPerService: 3, Clients: []int{4, 9}},
		DependsOn:  2,
		AckTimeout: scenario.Duration(20 * time.Second),
	}
	res, err := Run(ctx, sc, Options{Quick: true, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got := len(res.Runs); got != 6 {
		t.Fatalf("%d runs, want 6 (2 client counts × 3 servers)", got)
	}
	for _, r := range res.Ratios {
		if r.P99 <= 0 || r.PrerenderedP99 <= 0 || r.OneServiceP99 <= 0 {
			t.Errorf("ratios %+v: want hopguard, pre-rendered and one-service ratios", r)
		}
	}
	// The one-service change (service 0's routes) reaches the clients of
	// service 0 and of its two callers, 4 and 5: 1 of the 4 clients on
	// services 0–3, 4 of the 9 on services 0–5, 0–2.
	for _, r := range res.Runs {
		if want := map[int]int{4: 1, 9: 4}[r.Clients]; r.OneServiceClients != want {
			t.Errorf("%s/%d: the one-service change reached %d clients, want %d", r.Server, r.Clients, r.OneServiceClients, want)
		}
	}
	for _, r := range res.Runs {
		if r.ChangeToAck.Max/1e6 > r.AllAckedSeconds+1e-3 {
			t.Errorf("%s/%d: max %.0f µs beyond all-acked %.6f s", r.Server, r.Clients, r.ChangeToAck.Max, r.AllAckedSeconds)
		}
	}
	if res.HeapInUseAfter <= res.HeapInUseBefore {
		t.Errorf("heap in use %d → %d: the compiled mesh should hold memory", res.HeapInUseBefore, res.HeapInUseAfter)
	}
	if _, ok := res.Run(result.ServerBare, 9); !ok {
		t.Error("no bare run with 9 clients")
	}
}
