package extproc

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/policy"
)

// statusTable is DESIGN.md §4's status table, written out independently of
// engine.Reason's own mapping so a drift of either shows here.
var statusTable = map[string]struct {
	http int
	grpc uint32
}{
	"deadline-exhausted":            {504, 4},
	"retry-deadline-insufficient":   {504, 4},
	"retry-not-authority":           {409, 9},
	"retry-budget-exhausted":        {429, 8},
	"idempotency-key-missing":       {400, 3},
	"idempotency-key-invalid":       {400, 3},
	"idempotency-key-reused":        {422, 3},
	"idempotency-in-flight":         {409, 10},
	"idempotency-completed":         {409, 6},
	"idempotency-store-unavailable": {503, 14},
	"policy-drift":                  {409, 9},
	"frozen":                        {409, 9},
}

// rejectionCase provokes one rejection reason.
type rejectionCase struct {
	reason string
	// mod changes the fixture bundle; down uses a store that is down.
	mod  func(*policy.Bundle)
	down bool
	// prelude runs earlier requests on the harness.
	prelude func(h *harness)
	// path and kv are the rejected request's path and extra headers.
	path string
	kv   []string
	// meta is extra stream metadata (what the route configuration sends).
	meta []string
}

func rejectionCases() []rejectionCase {
	allPayments := func(b *policy.Bundle) {
		r := chargeRoute()
		r.ID, r.Match.GRPCMethod = "shop/payments-all", "*"
		b.Routes = append(b.Routes, r)
	}
	return []rejectionCase{
		{reason: "deadline-exhausted", path: pathCharge, kv: []string{"grpc-timeout", "10m", "idempotency-key", "k"}},
		{reason: "retry-deadline-insufficient", path: pathCharge, kv: []string{"grpc-timeout", "50m", "x-envoy-attempt-count", "2", "idempotency-key", "k"}},
		{
			reason: "retry-not-authority", path: pathCharge, kv: []string{"x-envoy-attempt-count", "2", "idempotency-key", "k"},
			mod: func(b *policy.Bundle) { b.Routes[0].Retry.Authority = policy.AuthorityApp },
		},
		{reason: "retry-budget-exhausted", path: pathCharge, kv: []string{"x-envoy-attempt-count", "4", "idempotency-key", "k"}},
		{reason: "idempotency-key-missing", path: pathCharge},
		{reason: "idempotency-key-invalid", path: pathCharge, kv: []string{"idempotency-key", strings.Repeat("k", 256)}},
		{
			reason: "idempotency-key-reused", mod: allPayments, path: "/shop.Payments/Refund", kv: []string{"idempotency-key", "k"},
			prelude: func(h *harness) {
				s := h.open()
				mustContinue(h.t, s.exchange(grpcRequest("/shop.Payments/Capture", "idempotency-key", "k")))
			},
		},
		{
			reason: "idempotency-in-flight", path: pathCharge, kv: []string{"idempotency-key", "k"},
			prelude: func(h *harness) {
				s := h.open("x-hopguard-route", routeCharge)
				mustContinue(h.t, s.exchange(grpcRequest(pathCharge, "idempotency-key", "k")))
			},
		},
		{
			reason: "idempotency-completed", path: pathCharge, kv: []string{"idempotency-key", "k"},
			prelude: func(h *harness) { h.completeGRPC("k", "0") },
		},
		{reason: "idempotency-store-unavailable", down: true, path: pathCharge, kv: []string{"idempotency-key", "k"}},
		{
			reason: "policy-drift", path: pathCharge, kv: []string{"idempotency-key", "k"},
			meta: []string{"x-hopguard-policy", "0123456789abcdef"},
			mod:  func(b *policy.Bundle) { b.Mesh.DriftQuarantine = true },
		},
		{
			reason: "frozen", path: pathCharge, kv: []string{"idempotency-key", "k"},
			mod: func(b *policy.Bundle) { b.Mesh.Frozen = true },
		},
	}
}

func (c rejectionCase) harness(t *testing.T) *harness {
	t.Helper()
	var store idempotency.Store
	if c.down {
		store = &downStore{}
	}
	h := newHarness(t, testBundle(c.mod), store)
	if c.prelude != nil {
		c.prelude(h)
	}
	return h
}

func TestProcess_RejectionsCoverEveryReason(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range rejectionCases() {
		covered[c.reason] = true
	}
	for _, r := range engine.Reasons() {
		if !covered[r.String()] || statusTable[r.String()].http == 0 {
			t.Errorf("reason %s has no protocol test or no status table entry", r)
		}
	}
}

func TestProcess_RejectionsGRPC(t *testing.T) {
	for _, c := range rejectionCases() {
		t.Run(c.reason, func(t *testing.T) {
			h := c.harness(t)
			s := h.open(append([]string{"x-hopguard-route", "", "x-hopguard-side", "inbound"}, c.meta...)...)
			ir := immediateOf(t, s.exchange(grpcRequest(c.path, c.kv...)))
			s.waitEnd()
			type answer struct {
				HTTP, GRPC uint32
				Details    string
				Headers    map[string]string
				Body       string
			}
			got := answer{uint32(ir.GetStatus().GetCode()), ir.GetGrpcStatus().GetStatus(), ir.GetDetails(), setHeaders(ir.GetHeaders()), string(ir.GetBody())}
			want := answer{200, statusTable[c.reason].grpc, c.reason, map[string]string{"x-hopguard-reason": c.reason}, ""}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("immediate response (-got +want):\n%s", diff)
			}
			if ir.GetGrpcStatus() == nil {
				t.Error("grpc_status unset")
			}
		})
	}
}

func TestProcess_RejectionsHTTP(t *testing.T) {
	for _, c := range rejectionCases() {
		t.Run(c.reason, func(t *testing.T) {
			h := c.harness(t)
			s := h.open(c.meta...)
			ir := immediateOf(t, s.exchange(envoyRequest("POST", c.path, "application/json", c.kv...)))
			s.waitEnd()
			if got, want := int(ir.GetStatus().GetCode()), statusTable[c.reason].http; got != want {
				t.Errorf("HTTP status = %d, want %d", got, want)
			}
			if ir.GetGrpcStatus() != nil {
				t.Errorf("grpc_status set on an HTTP rejection: %v", ir.GetGrpcStatus())
			}
			wantHeaders := map[string]string{"x-hopguard-reason": c.reason, "content-type": "application/problem+json"}
			if diff := cmp.Diff(setHeaders(ir.GetHeaders()), wantHeaders); diff != "" {
				t.Errorf("headers (-got +want):\n%s", diff)
			}
			var p Problem
			if err := json.Unmarshal(ir.GetBody(), &p); err != nil {
				t.Fatalf("body %q: %v", ir.GetBody(), err)
			}
			if p.Type != "https://hopguard.dev/problems/"+c.reason || p.Status != statusTable[c.reason].http ||
				!strings.Contains(p.Detail, "route ") || p.Title == "" {
				t.Errorf("problem body = %+v", p)
			}
		})
	}
}

func TestProcess_AllowMutations(t *testing.T) {
	stripped := []string{"x-envoy-retry-on", "x-envoy-retry-grpc-on"}
	tests := []struct {
		name string
		md   []string
		req  *extprocv3.ProcessingRequest
		want *extprocv3.HeaderMutation
	}{
		{
			name: "inbound: deadline stamped, caller retry headers stripped",
			md:   []string{"x-hopguard-route", routeGet, "x-hopguard-side", "inbound"},
			req:  grpcRequest(pathGet, "grpc-timeout", "1S", "x-envoy-retry-on", "5xx", "x-envoy-max-retries", "9"),
			want: &extprocv3.HeaderMutation{
				SetHeaders:    []*corev3.HeaderValueOption{setHeader("x-hopguard-deadline", "1800000001000")},
				RemoveHeaders: append(stripped, "x-envoy-max-retries"),
			},
		},
		{
			name: "outbound authority hop: timeouts clamped, max retries the deadline affords",
			md:   []string{"x-hopguard-route", routeCharge, "x-hopguard-side", "outbound"},
			req:  grpcRequest(pathCharge, "grpc-timeout", "1S", "idempotency-key", "k", "x-envoy-retry-grpc-on", "unavailable"),
			want: &extprocv3.HeaderMutation{
				SetHeaders: []*corev3.HeaderValueOption{
					setHeader("x-hopguard-deadline", "1800000001000"),
					setHeader("x-envoy-upstream-rq-timeout-ms", "1000"),
					setHeader("x-envoy-upstream-rq-per-try-timeout-ms", "250"),
					// (n+1)·250ms + n·25ms ≤ 1000ms → n = 2 (attempts 3 allow 2).
					setHeader("x-envoy-max-retries", "2"),
				},
				RemoveHeaders: stripped,
			},
		},
		{
			name: "outbound with the deadline left for one try: no retries",
			md:   []string{"x-hopguard-route", routeCharge, "x-hopguard-side", "outbound"},
			req:  grpcRequest(pathCharge, "grpc-timeout", "300m", "idempotency-key", "k"),
			want: &extprocv3.HeaderMutation{
				SetHeaders: []*corev3.HeaderValueOption{
					setHeader("x-hopguard-deadline", "1800000000300"),
					setHeader("x-envoy-upstream-rq-timeout-ms", "300"),
					setHeader("x-envoy-upstream-rq-per-try-timeout-ms", "250"),
					setHeader("x-envoy-max-retries", "0"),
				},
				RemoveHeaders: stripped,
			},
		},
		{
			name: "no stream metadata: routed by :path, default deadline",
			req:  grpcRequest(pathGet),
			want: &extprocv3.HeaderMutation{
				SetHeaders:    []*corev3.HeaderValueOption{setHeader("x-hopguard-deadline", "1800000000800")},
				RemoveHeaders: append(stripped, "x-envoy-max-retries"),
			},
		},
		{
			name: "earliest deadline wins: x-hopguard-deadline before grpc-timeout",
			md:   []string{"x-hopguard-route", routeGet},
			req:  grpcRequest(pathGet, "grpc-timeout", "1S", "x-hopguard-deadline", "1800000000400"),
			want: &extprocv3.HeaderMutation{
				// Stamped on unchanged: the 10ms skew tolerance is not added.
				SetHeaders:    []*corev3.HeaderValueOption{setHeader("x-hopguard-deadline", "1800000000400")},
				RemoveHeaders: append(stripped, "x-envoy-max-retries"),
			},
		},
		{
			name: "malformed headers are ignored: the default deadline applies",
			md:   []string{"x-hopguard-route", routeGet},
			req:  grpcRequest(pathGet, "grpc-timeout", "soon", "x-hopguard-deadline", "-5", "x-envoy-attempt-count", "x"),
			want: &extprocv3.HeaderMutation{
				SetHeaders:    []*corev3.HeaderValueOption{setHeader("x-hopguard-deadline", "1800000000800")},
				RemoveHeaders: append(stripped, "x-envoy-max-retries"),
			},
		},
		{
			name: "no route: unchanged",
			req:  grpcRequest("/shop.Other/Thing", "grpc-timeout", "1m", "x-envoy-retry-on", "5xx"),
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			s := h.open(tt.md...)
			got := mustContinue(t, s.exchange(tt.req))
			if diff := cmp.Diff(got, tt.want, protocmp.Transform()); diff != "" {
				t.Errorf("mutation (-got +want):\n%s", diff)
			}
			if s.exchange(responseHeaders(true, ":status", "200", "grpc-status", "0")).GetResponseHeaders() == nil {
				t.Error("response headers not answered")
			}
			s.closeSend()
		})
	}
}

// waitState polls the store until key is in state want (bounded: 5 s), for
// transitions that follow an asynchronous stream cancellation.
func waitState(t *testing.T, s *memStore, key string, want idempotency.State) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.State(key) != want {
		if time.Now().After(deadline) {
			t.Fatalf("key %q: state %v, want %v", key, s.State(key), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestProcess_IdempotencyTransitions(t *testing.T) {
	httpReq := func(key string) *extprocv3.ProcessingRequest {
		return envoyRequest("POST", pathOrdersH+"/create", "application/json", "idempotency-key", key)
	}
	grpcReq := func(key string) *extprocv3.ProcessingRequest { return grpcRequest(pathCharge, "idempotency-key", key) }
	tests := []struct {
		name string
		req  func(key string) *extprocv3.ProcessingRequest
		// respond drives the response side of the first request.
		respond func(t *testing.T, s *stream)
		// wantState is the record state afterwards; wantNext the reason of
		// the next request with the same key ("" = allowed).
		wantState idempotency.State
		wantNext  string
	}{
		{
			name: "HTTP 201 completes", req: httpReq, wantState: idempotency.Completed, wantNext: "idempotency-completed",
			respond: func(t *testing.T, s *stream) { s.exchange(responseHeaders(false, ":status", "201")); s.closeSend() },
		},
		{
			name: "HTTP 409 (final 4xx) completes", req: httpReq, wantState: idempotency.Completed, wantNext: "idempotency-completed",
			respond: func(t *testing.T, s *stream) { s.exchange(responseHeaders(true, ":status", "409")); s.closeSend() },
		},
		{
			name: "HTTP 503 releases", req: httpReq, wantState: idempotency.Absent,
			respond: func(t *testing.T, s *stream) { s.exchange(responseHeaders(false, ":status", "503")); s.closeSend() },
		},
		{
			name: "gRPC OK in trailers completes", req: grpcReq, wantState: idempotency.Completed, wantNext: "idempotency-completed",
			respond: func(t *testing.T, s *stream) {
				s.exchange(responseHeaders(false, ":status", "200"))
				s.exchange(responseTrailers("0"))
				s.closeSend()
			},
		},
		{
			name: "gRPC UNAVAILABLE in trailers releases", req: grpcReq, wantState: idempotency.Absent,
			respond: func(t *testing.T, s *stream) {
				s.exchange(responseHeaders(false, ":status", "200"))
				s.exchange(responseTrailers("14"))
				s.closeSend()
			},
		},
		{
			name: "gRPC trailers-only UNAVAILABLE releases", req: grpcReq, wantState: idempotency.Absent,
			respond: func(t *testing.T, s *stream) {
				s.exchange(responseHeaders(true, ":status", "200", "grpc-status", "14"))
				s.closeSend()
			},
		},
		{
			// The final gRPC status never reached the filter: the outcome is
			// unknown and the key is released for the callee to judge.
			name: "gRPC ending without a grpc-status releases", req: grpcReq, wantState: idempotency.Absent,
			respond: func(t *testing.T, s *stream) {
				s.exchange(responseHeaders(false, ":status", "200"))
				s.closeSend()
			},
		},
		{
			// grpc-go's ext_proc filter forwards trailers without grpc-status.
			name: "gRPC trailers without grpc-status release", req: grpcReq, wantState: idempotency.Absent,
			respond: func(t *testing.T, s *stream) {
				s.exchange(responseHeaders(false, ":status", "200"))
				s.exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{
					ResponseTrailers: &extprocv3.HttpTrailers{Trailers: headerMap(hv("x-app-trailer", "1"))},
				}})
			},
		},
		{
			name: "stream cancelled before any response releases", req: grpcReq, wantState: idempotency.Absent,
			respond: func(t *testing.T, s *stream) { s.cancel() },
		},
		{
			name: "stream cancelled between headers and trailers releases", req: grpcReq, wantState: idempotency.Absent,
			respond: func(t *testing.T, s *stream) {
				s.exchange(responseHeaders(false, ":status", "200"))
				s.cancel()
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			s := h.open()
			mustContinue(t, s.exchange(tt.req("key-1")))
			if got := h.store.State("key-1"); got != idempotency.InFlight {
				t.Fatalf("after allow: state %v, want in flight", got)
			}
			tt.respond(t, s)
			waitState(t, h.store, "key-1", tt.wantState)

			// The next request with the key is the data plane's retry
			// (x-envoy-attempt-count: 2) on these mesh-authority routes;
			// the same key sent again without it is the caller's own
			// retry, which TestProcess_RepeatedKeyIsAnAppRetry covers.
			next := h.open()
			retry := tt.req("key-1")
			hs := retry.GetRequestHeaders().GetHeaders()
			hs.Headers = append(hs.Headers, hv("x-envoy-attempt-count", "2"))
			resp := next.exchange(retry)
			got := ""
			if ir := resp.GetImmediateResponse(); ir != nil {
				got = setHeaders(ir.GetHeaders())["x-hopguard-reason"]
			} else {
				mustContinue(t, resp)
			}
			if got != tt.wantNext {
				t.Errorf("next request with the key: reason %q, want %q", got, tt.wantNext)
			}
		})
	}
}

func TestProcess_ReplayRecordedOutcome(t *testing.T) {
	replay := func(b *policy.Bundle) {
		for i := range b.Routes {
			b.Routes[i].Idempotency.Replay = true
		}
	}
	t.Run("HTTP 201", func(t *testing.T) {
		h := newHarness(t, testBundle(replay), nil)
		req := envoyRequest("POST", pathOrdersH+"/create", "application/json", "idempotency-key", "r")
		s := h.open()
		mustContinue(t, s.exchange(req))
		s.exchange(responseHeaders(true, ":status", "201"))
		s.closeSend()

		ir := immediateOf(t, h.open().exchange(req))
		if ir.GetStatus().GetCode() != 201 || ir.GetGrpcStatus() != nil || setHeaders(ir.GetHeaders())["x-hopguard-replayed"] != "true" {
			t.Errorf("replay = %v", ir)
		}
	})
	t.Run("gRPC NOT_FOUND", func(t *testing.T) {
		h := newHarness(t, testBundle(replay), nil)
		h.completeGRPC("r", "5")
		ir := immediateOf(t, h.open().exchange(grpcRequest(pathCharge, "idempotency-key", "r")))
		if ir.GetGrpcStatus().GetStatus() != 5 || ir.GetStatus().GetCode() != 200 || setHeaders(ir.GetHeaders())["x-hopguard-replayed"] != "true" {
			t.Errorf("replay = %v", ir)
		}
	})
}

func TestProcess_DryRunNeverRejects(t *testing.T) {
	dry := func(b *policy.Bundle) { routeByID(t, b, routeCharge).DryRun = true }
	h := newHarness(t, testBundle(dry), nil)
	cases := [][]string{
		nil, // idempotency-key-missing
		{"grpc-timeout", "5m", "idempotency-key", "a"},         // deadline-exhausted
		{"x-envoy-attempt-count", "9", "idempotency-key", "b"}, // retry-budget-exhausted
		{"idempotency-key", "\x01bad"},                         // idempotency-key-invalid
		{"x-hopguard-attempt", "2", "idempotency-key", "c"},    // retry-not-authority
	}
	for _, kv := range cases {
		s := h.open("x-hopguard-route", routeCharge)
		m := mustContinue(t, s.exchange(grpcRequest(pathCharge, kv...)))
		if _, ok := setHeaders(m)["x-hopguard-reason"]; ok {
			t.Errorf("%q: dry-run request carries a rejection: %v", kv, m)
		}
		s.exchange(responseHeaders(true, ":status", "200", "grpc-status", "0"))
		s.closeSend()
	}
	labels := map[string]string{"route": routeCharge, "decision": "dry_run_reject"}
	if got := h.counter("hopguard_decisions_total", labels); got != float64(len(cases)) {
		t.Errorf("dry-run rejections counted %v, want %d: the decisions were not made", got, len(cases))
	}
}

func TestProcess_GRPCGoShape(t *testing.T) {
	// grpc-go sends no pseudo-headers, header values in raw_value, the
	// method as the request.path attribute and the caller's deadline as
	// the stream's deadline.
	t.Run("allowed", func(t *testing.T) {
		// The stream deadline is real time: the clock starts now.
		now := time.Now()
		h := newHarnessAt(t, now, nil, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		s := h.openCtx(ctx, "x-hopguard-route", routeCharge, "x-hopguard-policy", "stale", "x-hopguard-side", "outbound")
		req := reqHeaders(headerMap(rawHV("idempotency-key", "g-1"), rawHV("x-envoy-retry-on", "5xx")), attrs(pathCharge, "payments.shop"))
		m := mustContinue(t, s.exchange(req))
		set := setHeaders(m)
		stamp, ok := engine.ParseUnixMillis(set["x-hopguard-deadline"])
		if !ok || stamp.Before(now.Add(time.Second)) || stamp.After(now.Add(1600*time.Millisecond)) {
			t.Errorf("deadline stamp %q: want the stream deadline ≈ now+1.5s (now %d)", set["x-hopguard-deadline"], now.UnixMilli())
		}
		if set["x-envoy-max-retries"] == "" || set["x-envoy-upstream-rq-timeout-ms"] == "" {
			t.Errorf("outbound mutations missing: %v", set)
		}
		for _, h := range m.GetSetHeaders() {
			if h.GetHeader().GetValue() == "" || len(h.GetHeader().GetRawValue()) != 0 {
				t.Errorf("%s: mutations must use value, not raw_value", h.GetHeader().GetKey())
			}
		}
		if got := h.store.State("g-1"); got != idempotency.InFlight {
			t.Errorf("raw_value key not claimed: state %v", got)
		}
		s.closeSend()
		waitState(t, h.store, "g-1", idempotency.Absent) // ended without a response: aborted, released
	})
	t.Run("rejected", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		s := h.open("x-hopguard-route", routeCharge)
		ir := immediateOf(t, s.exchange(reqHeaders(headerMap(rawHV("other", "x")), attrs(pathCharge, "payments.shop"))))
		if ir.GetGrpcStatus() == nil || ir.GetGrpcStatus().GetStatus() != 3 || ir.GetDetails() != "idempotency-key-missing" {
			t.Errorf("want INVALID_ARGUMENT idempotency-key-missing, got %v", ir)
		}
	})
	t.Run("routed by the request.path attribute", func(t *testing.T) {
		h := newHarness(t, nil, nil)
		s := h.open()
		ir := immediateOf(t, s.exchange(reqHeaders(nil, attrs(pathCharge, ""))))
		if ir.GetDetails() != "idempotency-key-missing" {
			t.Errorf("want the charge route's rejection, got %v", ir)
		}
	})
}

func TestProcess_OddSequences(t *testing.T) {
	h := newHarness(t, nil, nil)
	t.Run("response headers first, then the request", func(t *testing.T) {
		s := h.open()
		if s.exchange(responseHeaders(false, ":status", "200")).GetResponseHeaders() == nil {
			t.Fatal("want a neutral response_headers answer")
		}
		if s.exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{}}).GetRequestBody() == nil {
			t.Fatal("want a neutral request_body answer")
		}
		ir := immediateOf(t, s.exchange(grpcRequest(pathCharge)))
		if ir.GetDetails() != "idempotency-key-missing" {
			t.Errorf("request after odd messages not decided: %v", ir)
		}
	})
	t.Run("second request_headers is answered neutrally", func(t *testing.T) {
		s := h.open()
		mustContinue(t, s.exchange(grpcRequest(pathGet)))
		if m := mustContinue(t, s.exchange(grpcRequest(pathCharge))); m != nil {
			t.Errorf("second request headers mutated: %v", m)
		}
		s.closeSend()
	})
}

func TestProcess_PolicyDriftCounted(t *testing.T) {
	h := newHarness(t, nil, nil)
	digest := h.engine.Route(routeGet).Digest
	for _, sent := range []string{digest, "0123456789abcdef", digest, "stale"} {
		s := h.open("x-hopguard-route", routeGet, "x-hopguard-policy", sent)
		mustContinue(t, s.exchange(grpcRequest(pathGet)))
		s.closeSend()
	}
	if got := h.counter("hopguard_policy_drift_total", map[string]string{"route": routeGet}); got != 2 {
		t.Errorf("drift count = %v, want 2 (two requests carried another digest)", got)
	}
	wantAllow := map[string]string{"route": routeGet, "side": "inbound", "decision": "allow"}
	if got := h.counter("hopguard_decisions_total", wantAllow); got != 4 {
		t.Errorf("allow decisions = %v, want 4", got)
	}
}

func TestProcess_Errors(t *testing.T) {
	t.Run("no engine", func(t *testing.T) {
		err := New(Options{}).Process(&memStream{ctx: context.Background(), msgs: []*extprocv3.ProcessingRequest{grpcRequest(pathGet)}})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), ErrNoEngine.Error()) {
			t.Errorf("Process without engine = %v, want FAILED_PRECONDITION %v", err, ErrNoEngine)
		}
	})
	t.Run("receive failure is returned wrapped", func(t *testing.T) {
		boom := errors.New("boom")
		e := newTestEngine(t, newFakeClock(epoch), newMemStore(), testBundle(nil))
		err := New(Options{Engine: e}).Process(&memStream{ctx: context.Background(), end: boom})
		if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "extproc: ") {
			t.Errorf("Process = %v, want extproc-prefixed %v", err, boom)
		}
	})
}

// TestProcess_IdempotencyWithEngineDefaultStore runs the transitions that
// matter through the production store the engine builds by default.
func TestProcess_IdempotencyWithEngineDefaultStore(t *testing.T) {
	h := newHarness(t, nil, engineDefaultStore{})
	reason := func(resp *extprocv3.ProcessingResponse) string {
		if ir := resp.GetImmediateResponse(); ir != nil {
			return ir.GetDetails()
		}
		mustContinue(t, resp)
		return ""
	}
	req := func(key string) *extprocv3.ProcessingRequest { return grpcRequest(pathCharge, "idempotency-key", key) }

	// UNAVAILABLE releases the key. The caller sending it again on its own
	// is an app retry, refused on this mesh-authority route; the data
	// plane's retry passes, then completes.
	h.completeGRPC("d-1", "14")
	if got := reason(h.open().exchange(req("d-1"))); got != "retry-not-authority" {
		t.Errorf("the caller resending a failed key on a mesh route: %q, want retry-not-authority", got)
	}
	h.completeGRPC("d-1", "0", "x-envoy-attempt-count", "2")
	if got := reason(h.open().exchange(req("d-1"))); got != "idempotency-completed" {
		t.Errorf("after completion: %q, want idempotency-completed", got)
	}
	// A concurrent duplicate while the first is in flight.
	first := h.open()
	mustContinue(t, first.exchange(req("d-2")))
	if got := reason(h.open().exchange(req("d-2"))); got != "idempotency-in-flight" {
		t.Errorf("concurrent duplicate: %q, want idempotency-in-flight", got)
	}
	// Cancelling the first stream releases the key (asynchronously).
	first.cancel()
	deadline := time.Now().Add(5 * time.Second)
	meshRetry := grpcRequest(pathCharge, "idempotency-key", "d-2", "x-envoy-attempt-count", "2")
	for {
		s := h.open()
		got := reason(s.exchange(meshRetry))
		if got == "" {
			s.closeSend()
			break
		}
		if got != "idempotency-in-flight" || time.Now().After(deadline) {
			t.Fatalf("after cancellation: %q, want the key released", got)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestProcess_FingerprintHeaders: on a route that puts a header in the
// fingerprint, the key sent again with another value of it (or without
// it, or with it in upper case and another value) is key reuse; the same
// value, whatever the header name's case, is the completed duplicate.
func TestProcess_FingerprintHeaders(t *testing.T) {
	h := newHarness(t, testBundle(func(b *policy.Bundle) {
		routeByID(t, b, routeCharge).Idempotency.FingerprintHeaders = []string{"x-amount"}
	}), nil)
	h.completeGRPC("k", "0", "x-amount", "1999")
	for _, tc := range []struct {
		name   string
		kv     []string
		reason string
	}{
		{"same amount", []string{"x-amount", "1999"}, "idempotency-completed"},
		{"same amount, header name in upper case", []string{"X-Amount", "1999"}, "idempotency-completed"},
		{"another amount", []string{"x-amount", "2999"}, "idempotency-key-reused"},
		{"no amount", nil, "idempotency-key-reused"},
		{"empty amount", []string{"x-amount", ""}, "idempotency-key-reused"},
	} {
		s := h.open("x-hopguard-route", routeCharge)
		ir := immediateOf(t, s.exchange(grpcRequest(pathCharge, append([]string{"idempotency-key", "k"}, tc.kv...)...)))
		s.waitEnd()
		got := ""
		for _, hd := range ir.GetHeaders().GetSetHeaders() {
			if hd.GetHeader().GetKey() == "x-hopguard-reason" {
				got = hd.GetHeader().GetValue()
			}
		}
		if got != tc.reason {
			t.Errorf("%s: reason %q, want %q", tc.name, got, tc.reason)
		}
	}
}
