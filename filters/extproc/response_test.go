package extproc

import (
	"encoding/json"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/idempotency"
)

// allowMutation is the header mutation of allowResponse(m), nil when
// there is nothing to change.
func allowMutation(m *engine.Mutations) *extprocv3.HeaderMutation {
	return allowResponse(m).GetRequestHeaders().GetResponse().GetHeaderMutation()
}

func TestAllowMutation_Success(t *testing.T) {
	dl := time.UnixMilli(1_800_000_000_500)
	tests := []struct {
		name string
		m    engine.Mutations
		want *extprocv3.HeaderMutation
	}{
		{name: "nothing", m: engine.Mutations{}, want: nil},
		{
			name: "inbound: stamp and strip",
			m:    engine.Mutations{Deadline: dl, StripRetryHeaders: true},
			want: &extprocv3.HeaderMutation{
				SetHeaders:    []*corev3.HeaderValueOption{setHeader("x-hopguard-deadline", "1800000000500")},
				RemoveHeaders: []string{"x-envoy-retry-on", "x-envoy-retry-grpc-on", "x-envoy-max-retries"},
			},
		},
		{
			name: "outbound: timeouts and max retries replace the caller's",
			m: engine.Mutations{
				Deadline: dl, UpstreamTimeout: 480*time.Millisecond + 700*time.Microsecond, PerTryTimeout: 250 * time.Millisecond,
				SetMaxRetries: true, MaxRetries: 2, StripRetryHeaders: true,
			},
			want: &extprocv3.HeaderMutation{
				SetHeaders: []*corev3.HeaderValueOption{
					setHeader("x-hopguard-deadline", "1800000000500"),
					setHeader("x-envoy-upstream-rq-timeout-ms", "480"),
					setHeader("x-envoy-upstream-rq-per-try-timeout-ms", "250"),
					setHeader("x-envoy-max-retries", "2"),
				},
				RemoveHeaders: []string{"x-envoy-retry-on", "x-envoy-retry-grpc-on"},
			},
		},
		{
			name: "sub-millisecond timeout is 1ms, not 0 (no timeout)",
			m:    engine.Mutations{UpstreamTimeout: 300 * time.Microsecond, SetMaxRetries: true},
			want: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				setHeader("x-envoy-upstream-rq-timeout-ms", "1"), setHeader("x-envoy-max-retries", "0"),
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := allowMutation(&tt.m)
			if diff := cmp.Diff(got, tt.want, protocmp.Transform()); diff != "" {
				t.Errorf("mutation (-got +want):\n%s", diff)
			}
			for _, h := range got.GetSetHeaders() {
				if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || len(h.GetHeader().GetRawValue()) != 0 {
					t.Errorf("%s: want value-only OVERWRITE_IF_EXISTS_OR_ADD, got %v", h.GetHeader().GetKey(), h)
				}
			}
		})
	}
}

// immediateOf returns the ImmediateResponse of resp or fails.
func immediateOf(t *testing.T, resp *extprocv3.ProcessingResponse) *extprocv3.ImmediateResponse {
	t.Helper()
	ir := resp.GetImmediateResponse()
	if ir == nil {
		t.Fatalf("want an ImmediateResponse, got %v", resp)
	}
	return ir
}

// setHeaders returns the set_headers of m as a map.
func setHeaders(m *extprocv3.HeaderMutation) map[string]string {
	out := map[string]string{}
	for _, h := range m.GetSetHeaders() {
		out[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return out
}

func TestRejectResponse_GRPC(t *testing.T) {
	want := map[engine.Reason]uint32{
		engine.ReasonDeadlineExhausted: 4, engine.ReasonRetryDeadlineInsufficient: 4,
		engine.ReasonRetryNotAuthority: 9, engine.ReasonRetryBudgetExhausted: 8,
		engine.ReasonIdempotencyKeyMissing: 3, engine.ReasonIdempotencyKeyInvalid: 3, engine.ReasonIdempotencyKeyReused: 3,
		engine.ReasonIdempotencyInFlight: 10, engine.ReasonIdempotencyCompleted: 6, engine.ReasonIdempotencyStoreUnavailable: 14,
		engine.ReasonPolicyDrift: 9, engine.ReasonFrozen: 9,
	}
	for _, r := range engine.Reasons() {
		t.Run(r.String(), func(t *testing.T) {
			ir := immediateOf(t, rejectResponse(rejection{reason: r, grpc: true, routeID: routeCharge}))
			got := struct {
				HTTP    typev3.StatusCode
				GRPC    uint32
				Details string
				Headers map[string]string
				Body    string
			}{ir.GetStatus().GetCode(), ir.GetGrpcStatus().GetStatus(), ir.GetDetails(), setHeaders(ir.GetHeaders()), string(ir.GetBody())}
			wantResp := got
			wantResp.HTTP, wantResp.GRPC, wantResp.Details = typev3.StatusCode_OK, want[r], r.String()
			wantResp.Headers, wantResp.Body = map[string]string{"x-hopguard-reason": r.String()}, ""
			if diff := cmp.Diff(got, wantResp); diff != "" {
				t.Errorf("rejection (-got +want):\n%s", diff)
			}
			if ir.GetGrpcStatus() == nil {
				t.Error("grpc_status must be set for gRPC requests")
			}
		})
	}
}

// wantExplanation is the sentence a rejection's detail starts with, for
// the reasons whose name does not say what to do.
var wantExplanation = map[engine.Reason]string{
	engine.ReasonFrozen:      "the mesh is frozen by an operator, only routes marked critical accept side effects; ",
	engine.ReasonPolicyDrift: "the data plane runs another policy than the verified one (drift quarantine), side effects are refused until it converges; ",
}

func TestRejectResponse_HTTP(t *testing.T) {
	want := map[engine.Reason]int{
		engine.ReasonDeadlineExhausted: 504, engine.ReasonRetryDeadlineInsufficient: 504,
		engine.ReasonRetryNotAuthority: 409, engine.ReasonRetryBudgetExhausted: 429,
		engine.ReasonIdempotencyKeyMissing: 400, engine.ReasonIdempotencyKeyInvalid: 400, engine.ReasonIdempotencyKeyReused: 422,
		engine.ReasonIdempotencyInFlight: 409, engine.ReasonIdempotencyCompleted: 409, engine.ReasonIdempotencyStoreUnavailable: 503,
		engine.ReasonPolicyDrift: 409, engine.ReasonFrozen: 409,
	}
	for _, r := range engine.Reasons() {
		t.Run(r.String(), func(t *testing.T) {
			ir := immediateOf(t, rejectResponse(rejection{reason: r, routeID: routeOrdersH, remaining: 12345 * time.Microsecond, attempt: 2}))
			if got := int(ir.GetStatus().GetCode()); got != want[r] {
				t.Errorf("HTTP status = %d, want %d", got, want[r])
			}
			if ir.GetGrpcStatus() != nil {
				t.Errorf("grpc_status must be unset for HTTP requests, got %v", ir.GetGrpcStatus())
			}
			wantHeaders := map[string]string{"x-hopguard-reason": r.String(), "content-type": "application/problem+json"}
			if diff := cmp.Diff(setHeaders(ir.GetHeaders()), wantHeaders); diff != "" {
				t.Errorf("headers (-got +want):\n%s", diff)
			}
			var got map[string]any
			if err := json.Unmarshal(ir.GetBody(), &got); err != nil {
				t.Fatalf("body %q: %v", ir.GetBody(), err)
			}
			wantBody := map[string]any{
				"type":   "https://hopguard.dev/problems/" + r.String(),
				"title":  problemTitle(r),
				"status": float64(want[r]),
				"detail": `route "shop/orders-http": ` + wantExplanation[r] + `12ms of deadline remaining at attempt 2`,
			}
			if diff := cmp.Diff(got, wantBody); diff != "" {
				t.Errorf("problem body (-got +want):\n%s", diff)
			}
		})
	}
}

func TestProblemTitle(t *testing.T) {
	got := map[string]string{}
	for _, r := range []engine.Reason{engine.ReasonNone, engine.ReasonRetryNotAuthority, engine.ReasonIdempotencyKeyReused} {
		got[r.String()] = problemTitle(r)
	}
	want := map[string]string{"": "Rejected", "retry-not-authority": "Retry not authority", "idempotency-key-reused": "Idempotency key reused"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("titles (-got +want):\n%s", diff)
	}
}

func TestReplayResponse_Success(t *testing.T) {
	tests := []struct {
		name     string
		rec      idempotency.Record
		grpc     bool
		wantHTTP typev3.StatusCode
		wantGRPC *uint32
		// wantReason: a recorded gRPC OK goes out as idempotency-completed.
		wantReason bool
	}{
		{name: "HTTP 201", rec: idempotency.Record{HTTPStatus: 201, GRPCStatus: -1}, wantHTTP: 201},
		{name: "HTTP unknown status is 200", rec: idempotency.Record{GRPCStatus: -1}, wantHTTP: 200},
		{name: "gRPC NOT_FOUND", rec: idempotency.Record{HTTPStatus: 200, GRPCStatus: 5}, grpc: true, wantHTTP: 200, wantGRPC: ptr(uint32(5))},
		{name: "gRPC OK is ALREADY_EXISTS", rec: idempotency.Record{HTTPStatus: 200, GRPCStatus: 0}, grpc: true, wantHTTP: 200, wantGRPC: ptr(uint32(6)), wantReason: true},
		{name: "gRPC without recorded code is ALREADY_EXISTS", rec: idempotency.Record{HTTPStatus: 200, GRPCStatus: -1}, grpc: true, wantHTTP: 200, wantGRPC: ptr(uint32(6)), wantReason: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ir := immediateOf(t, replayResponse(&tt.rec, tt.grpc))
			if got := ir.GetStatus().GetCode(); got != tt.wantHTTP {
				t.Errorf("HTTP status = %v, want %v", got, tt.wantHTTP)
			}
			var gotGRPC *uint32
			if ir.GetGrpcStatus() != nil {
				gotGRPC = ptr(ir.GetGrpcStatus().GetStatus())
			}
			if diff := cmp.Diff(gotGRPC, tt.wantGRPC); diff != "" {
				t.Errorf("grpc status (-got +want):\n%s", diff)
			}
			wantHeaders := map[string]string{"x-hopguard-replayed": "true"}
			if tt.wantReason {
				wantHeaders["x-hopguard-reason"] = "idempotency-completed"
			}
			if diff := cmp.Diff(setHeaders(ir.GetHeaders()), wantHeaders); diff != "" {
				t.Errorf("headers (-got +want):\n%s", diff)
			}
		})
	}
}

func TestNeutral(t *testing.T) {
	tests := []struct {
		name string
		req  *extprocv3.ProcessingRequest
		want *extprocv3.ProcessingResponse
	}{
		{name: "empty message: no answer", req: &extprocv3.ProcessingRequest{}, want: nil},
		{
			name: "observability mode: no answer",
			req:  &extprocv3.ProcessingRequest{ObservabilityMode: true, Request: &extprocv3.ProcessingRequest_ResponseHeaders{}},
			want: nil,
		},
		{
			name: "request body",
			req:  &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{}},
			want: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{
				RequestBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{}}}},
		},
		{
			name: "response trailers",
			req:  &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{}},
			want: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{
				ResponseTrailers: &extprocv3.TrailersResponse{}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(newNeutralAnswers().answer(tt.req), tt.want, protocmp.Transform()); diff != "" {
				t.Errorf("answer (-got +want):\n%s", diff)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
