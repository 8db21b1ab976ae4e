package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/internal/testutil/extprocenv"
)

func TestMain(m *testing.M) {
	if extprocenv.Reexec() {
		return
	}
	goleak.VerifyTestMain(m)
}

func TestRun_ShortFault(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	sum, err := Run(ctx, Options{Out: &out, Duration: 5 * time.Second, Rate: 40})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())

	wantPath := []Hop{
		{Service: "gateway", Method: "/shop.Gateway/Checkout", Route: "shop/checkout", Authority: "none", Attempts: 1},
		{Service: "orders", Method: "/shop.Orders/PlaceOrder", Route: "shop/place-order", Authority: "none", Attempts: 1},
		{Service: "payments", Method: "/shop.Payments/CreateCharge", Route: "shop/create-charge", Authority: "mesh", Attempts: 3},
		{Service: "ledger", Method: "/shop.Ledger/PostEntry", Route: "shop/post-entry", Authority: "none", Attempts: 1},
	}
	if diff := cmp.Diff(sum.Path, wantPath); diff != "" {
		t.Errorf("Path (-got +want):\n%s", diff)
	}
	if sum.NaiveAmplification != 3 {
		t.Errorf("NaiveAmplification = %d, want 3 (1×1×3×1 from the config)", sum.NaiveAmplification)
	}

	var names []string
	var requests, succeeded, leaf int64
	for _, p := range sum.Phases {
		names = append(names, p.Name)
		requests += p.Requests
		succeeded += p.Succeeded
		leaf += p.LeafAttempts
		if p.Succeeded > p.Requests {
			t.Errorf("phase %s: %d succeeded of %d requests", p.Name, p.Succeeded, p.Requests)
		}
	}
	if diff := cmp.Diff(names, []string{PhaseSteady, PhaseFault, PhaseRecovered}); diff != "" {
		t.Fatalf("phases (-got +want):\n%s", diff)
	}
	if requests != sum.Requests || succeeded != sum.Succeeded || leaf != sum.LeafAttempts {
		t.Errorf("phases add up to %d requests, %d ok, %d leaf attempts; summary says %d, %d, %d",
			requests, succeeded, leaf, sum.Requests, sum.Succeeded, sum.LeafAttempts)
	}
	var failed int64
	for _, n := range sum.Failures {
		failed += n
	}
	if failed != sum.Requests-sum.Succeeded {
		t.Errorf("failures by code add up to %d, want requests-succeeded = %d", failed, sum.Requests-sum.Succeeded)
	}
	// At 40/s for 5s about 200 checkouts go out; allow a slow machine half.
	if sum.Requests < 100 {
		t.Errorf("only %d checkouts were sent, want about 200", sum.Requests)
	}

	steady, _ := sum.Phase(PhaseSteady)
	fault, _ := sum.Phase(PhaseFault)
	recovered, _ := sum.Phase(PhaseRecovered)
	if steady.Succeeded*10 < steady.Requests*8 {
		t.Errorf("steady: %d of %d checkouts succeeded, want most", steady.Succeeded, steady.Requests)
	}
	if fault.Requests == 0 || fault.Succeeded*2 > fault.Requests {
		t.Errorf("fault: %d of %d checkouts succeeded with a ledger failing every call, want few", fault.Succeeded, fault.Requests)
	}
	if fault.LeafAttempts == 0 {
		t.Errorf("fault: the ledger saw no attempts")
	}
	if a := fault.Amplification(); a > 1.5 || a >= float64(sum.NaiveAmplification) {
		t.Errorf("fault: amplification %.2f, want ≤ 1.5 and below the naive %d", a, sum.NaiveAmplification)
	}
	if recovered.Succeeded == 0 {
		t.Errorf("recovered: no checkout succeeded after the ledger recovered")
	}

	var allowed, dropped int64
	for _, r := range sum.Routes {
		allowed += r.Allowed
		for _, n := range r.Dropped {
			dropped += n
		}
	}
	if allowed == 0 || dropped == 0 {
		t.Errorf("routes allowed %d and dropped %d requests, want both > 0: %+v", allowed, dropped, sum.Routes)
	}
	for _, want := range []string{"while the ledger failed", "naive retries", "shop/create-charge", "phase=fault"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestRun_Errors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"negative rate", Options{Rate: -1, Duration: time.Second}},
		{"negative duration", Options{Rate: 10, Duration: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tt.opts); err == nil || !strings.HasPrefix(err.Error(), "demo: ") {
				t.Errorf("Run(%+v) = %v, want a demo: error", tt.opts, err)
			}
		})
	}
}

func TestNaiveAmplification_Success(t *testing.T) {
	tests := []struct {
		name string
		hops []Hop
		want int
	}{
		{"no hops", nil, 1},
		{"one retrying hop", []Hop{{Attempts: 1}, {Attempts: 3}}, 3},
		{"every hop retries", []Hop{{Attempts: 3}, {Attempts: 3}, {Attempts: 2}}, 18},
		{"zero attempts count as one", []Hop{{Attempts: 0}, {Attempts: 2}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NaiveAmplification(tt.hops); got != tt.want {
				t.Errorf("NaiveAmplification = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestWriteConfig_Success(t *testing.T) {
	d := configData{ExtProc: "127.0.0.1:1"}
	for i, name := range shopNames() {
		port := 2 + i
		d.Services = append(d.Services, serviceSpec{Name: name, Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, DependsOn: shopDeps()[name]})
	}
	dir, err := writeConfig(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cfg, vs, err := v1alpha1.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if errs := vs.Errors(); len(errs) > 0 {
		t.Fatalf("the demo config is invalid: %v", errs)
	}
	if got, want := len(cfg.Services), len(shopNames()); got != want {
		t.Errorf("%d services, want %d", got, want)
	}
	if got := len(cfg.RouteBudgets); got != 5 {
		t.Errorf("%d route budgets, want 5 (one per method on the shop's paths)", got)
	}
}
