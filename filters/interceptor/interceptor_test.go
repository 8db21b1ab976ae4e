package interceptor

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/policy"
)

// callResult is what a caller sees of one RPC.
type callResult struct {
	Code    codes.Code
	Message string
	Reason  string // x-hopguard-reason trailer
	Calls   int64  // handler calls so far
}

func unary(t *testing.T, fx *fixture, timeout time.Duration, req *testgrpc.SimpleRequest, md ...string) callResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, md...)
	var trailer metadata.MD
	_, err := fx.client.UnaryCall(ctx, req, grpc.Trailer(&trailer))
	st := status.Convert(err)
	r := callResult{Code: st.Code(), Message: st.Message(), Calls: fx.backend.calls.Load()}
	if v := trailer.Get("x-hopguard-reason"); len(v) > 0 {
		r.Reason = v[0]
	}
	if st.Code() == codes.OK {
		r.Message = ""
	}
	return r
}

func TestUnary_Rejections(t *testing.T) {
	tests := []struct {
		name    string
		method  string // "unary" or "empty"
		timeout time.Duration
		md      []string
		want    callResult
	}{
		{
			name: "missing idempotency key", method: "unary", timeout: 5 * time.Second,
			want: callResult{Code: codes.InvalidArgument, Message: "idempotency-key-missing", Reason: "idempotency-key-missing"},
		},
		{
			name: "mesh retry on an authority: none route", method: "empty", timeout: 5 * time.Second,
			md:   []string{"grpc-previous-rpc-attempts", "1"},
			want: callResult{Code: codes.FailedPrecondition, Message: "retry-not-authority", Reason: "retry-not-authority"},
		},
		{
			name: "mesh retry with less deadline left than the retry needs", method: "unary", timeout: 300 * time.Millisecond,
			md:   []string{"grpc-previous-rpc-attempts", "1", "idempotency-key", "k"},
			want: callResult{Code: codes.DeadlineExceeded, Message: "retry-deadline-insufficient", Reason: "retry-deadline-insufficient"},
		},
		{
			name: "app retry on a mesh authority route", method: "unary", timeout: 5 * time.Second,
			md:   []string{"x-hopguard-attempt", "2", "idempotency-key", "k"},
			want: callResult{Code: codes.FailedPrecondition, Message: "retry-not-authority", Reason: "retry-not-authority"},
		},
		{
			name: "deadline exhausted", method: "empty", timeout: 5 * time.Second,
			md:   []string{"x-hopguard-deadline", "1000"}, // 1970: long past
			want: callResult{Code: codes.DeadlineExceeded, Message: "deadline-exhausted", Reason: "deadline-exhausted"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			var got callResult
			if tt.method == "empty" {
				ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
				defer cancel()
				var trailer metadata.MD
				_, err := fx.client.EmptyCall(metadata.AppendToOutgoingContext(ctx, tt.md...), &testgrpc.Empty{}, grpc.Trailer(&trailer))
				st := status.Convert(err)
				got = callResult{Code: st.Code(), Message: st.Message(), Calls: fx.backend.calls.Load()}
				if v := trailer.Get("x-hopguard-reason"); len(v) > 0 {
					got.Reason = v[0]
				}
			} else {
				got = unary(t, fx, tt.timeout, &testgrpc.SimpleRequest{}, tt.md...)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("call (-got +want):\n%s", diff)
			}
		})
	}
}

func TestUnary_AllowedHandlerSeesClampedDeadline(t *testing.T) {
	fx := newFixture(t)
	start := time.Now()
	got := unary(t, fx, 10*time.Second, &testgrpc.SimpleRequest{}, "idempotency-key", "a-1")
	if diff := cmp.Diff(got, callResult{Code: codes.OK, Calls: 1}); diff != "" {
		t.Fatalf("call (-got +want):\n%s", diff)
	}
	// The caller allowed 10 s; the route's deadline.max is 2 s.
	dl := fx.backend.lastDeadline()
	if dl.IsZero() || dl.Before(start.Add(1500*time.Millisecond)) || dl.After(time.Now().Add(2*time.Second)) {
		t.Errorf("handler deadline %v after start, want ≈ 2s (deadline.max)", dl.Sub(start))
	}
	if s := fx.store.State("a-1"); s != idempotency.Completed {
		t.Errorf("key state %v after OK, want completed", s)
	}
}

// TestUnary_DryRunKeepsTheCallersDeadline: dry-run lets the RPC through
// unchanged, so the handler sees the caller's deadline, not the route's,
// even when the decision would have refused the call as out of time.
func TestUnary_DryRunKeepsTheCallersDeadline(t *testing.T) {
	fx := newFixture(t, func(b *policy.Bundle) {
		for i := range b.Routes {
			b.Routes[i].DryRun = true
		}
	})
	start := time.Now()
	got := unary(t, fx, 10*time.Second, &testgrpc.SimpleRequest{}, "idempotency-key", "d-1")
	if diff := cmp.Diff(got, callResult{Code: codes.OK, Calls: 1}); diff != "" {
		t.Fatalf("call (-got +want):\n%s", diff)
	}
	if dl := fx.backend.lastDeadline(); dl.Before(start.Add(5 * time.Second)) {
		t.Errorf("dry-run handler deadline %v after start, want the caller's 10s (deadline.max is 2s)", dl.Sub(start))
	}
	// An x-hopguard-deadline already past would be deadline-exhausted.
	past := strconv.FormatInt(start.Add(-time.Second).UnixMilli(), 10)
	got = unary(t, fx, 5*time.Second, &testgrpc.SimpleRequest{}, "idempotency-key", "d-2", "x-hopguard-deadline", past)
	if diff := cmp.Diff(got, callResult{Code: codes.OK, Calls: 2}); diff != "" {
		t.Fatalf("dry-run call past its hopguard deadline (-got +want):\n%s", diff)
	}
	if dl := fx.backend.lastDeadline(); dl.Before(start.Add(3 * time.Second)) {
		t.Errorf("dry-run handler deadline %v after start, want the caller's 5s", dl.Sub(start))
	}
}

func TestUnary_MeshRetryWithEnoughDeadlinePasses(t *testing.T) {
	fx := newFixture(t)
	got := unary(t, fx, 5*time.Second, &testgrpc.SimpleRequest{}, "grpc-previous-rpc-attempts", "1", "idempotency-key", "m-1")
	if diff := cmp.Diff(got, callResult{Code: codes.OK, Calls: 1}); diff != "" {
		t.Errorf("call (-got +want):\n%s", diff)
	}
}

func TestUnary_NoRouteRunsUnchanged(t *testing.T) {
	fx := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := fx.client.CacheableUnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	// Unrouted calls keep the caller's deadline (10 s), not a route's.
	if dl := fx.backend.lastDeadline(); time.Until(dl) < 5*time.Second {
		t.Errorf("unrouted handler deadline %v away, want the caller's 10s", time.Until(dl))
	}
}

func TestUnary_IdempotencyThroughHandlerStatus(t *testing.T) {
	fail := func(c codes.Code) *testgrpc.SimpleRequest {
		return &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(c), Message: "backend"}}
	}
	tests := []struct {
		name      string
		first     *testgrpc.SimpleRequest
		wantState idempotency.State
		wantNext  callResult
	}{
		{
			name: "OK completes", first: &testgrpc.SimpleRequest{}, wantState: idempotency.Completed,
			wantNext: callResult{Code: codes.AlreadyExists, Message: "idempotency-completed", Reason: "idempotency-completed", Calls: 1},
		},
		{
			name: "NOT_FOUND (final) completes", first: fail(codes.NotFound), wantState: idempotency.Completed,
			wantNext: callResult{Code: codes.AlreadyExists, Message: "idempotency-completed", Reason: "idempotency-completed", Calls: 1},
		},
		{
			name: "UNAVAILABLE releases: the retry runs", first: fail(codes.Unavailable), wantState: idempotency.Absent,
			wantNext: callResult{Code: codes.OK, Calls: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			unary(t, fx, 5*time.Second, tt.first, "idempotency-key", "i-1")
			if s := fx.store.State("i-1"); s != tt.wantState {
				t.Errorf("state %v, want %v", s, tt.wantState)
			}
			// The next call is grpc-go's xDS retry of the first (a mesh
			// retry, allowed on this route).
			got := unary(t, fx, 5*time.Second, &testgrpc.SimpleRequest{}, "idempotency-key", "i-1", "grpc-previous-rpc-attempts", "1")
			if diff := cmp.Diff(got, tt.wantNext); diff != "" {
				t.Errorf("next call (-got +want):\n%s", diff)
			}
		})
	}
}

// A key whose call failed, sent again without any retry header, is the
// caller's own retry: refused on a mesh-authority route before the handler.
func TestUnary_RepeatedFailedKeyIsAnAppRetry(t *testing.T) {
	fx := newFixture(t)
	failing := &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.Unavailable), Message: "backend"}}
	unary(t, fx, 5*time.Second, failing, "idempotency-key", "i-2")
	got := unary(t, fx, 5*time.Second, &testgrpc.SimpleRequest{}, "idempotency-key", "i-2")
	want := callResult{Code: codes.FailedPrecondition, Message: "retry-not-authority", Reason: "retry-not-authority", Calls: 1}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("the caller resending a failed key (-got +want):\n%s", diff)
	}
	if s := fx.store.State("i-2"); s != idempotency.Absent {
		t.Errorf("state after the refused retry %v, want absent (its claim given back)", s)
	}
}

func TestStream_RejectAndAllow(t *testing.T) {
	fx := newFixture(t)
	call := func(md ...string) (callResult, time.Time) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := fx.client.StreamingOutputCall(metadata.AppendToOutgoingContext(ctx, md...), &testgrpc.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for err == nil {
			_, err = s.Recv()
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
		st := status.Convert(err)
		r := callResult{Code: st.Code(), Calls: fx.backend.calls.Load()}
		if st.Code() != codes.OK {
			r.Message = st.Message()
		}
		if v := s.Trailer().Get("x-hopguard-reason"); len(v) > 0 {
			r.Reason = v[0]
		}
		return r, fx.backend.lastDeadline()
	}
	got, _ := call()
	if diff := cmp.Diff(got, callResult{Code: codes.InvalidArgument, Message: "idempotency-key-missing", Reason: "idempotency-key-missing"}); diff != "" {
		t.Errorf("rejected stream (-got +want):\n%s", diff)
	}
	start := time.Now()
	got, dl := call("idempotency-key", "s-1")
	if diff := cmp.Diff(got, callResult{Code: codes.OK, Calls: 1}); diff != "" {
		t.Errorf("allowed stream (-got +want):\n%s", diff)
	}
	if dl.After(start.Add(2*time.Second+500*time.Millisecond)) || dl.Before(start.Add(time.Second)) {
		t.Errorf("stream handler deadline %v after start, want ≈ 2s", dl.Sub(start))
	}
}

func TestUnary_Replay(t *testing.T) {
	replay := func(b *policy.Bundle) { b.Routes[0].Idempotency.Replay = true }
	tests := []struct {
		name  string
		first *testgrpc.SimpleRequest
		want  callResult
	}{
		{
			name:  "recorded NOT_FOUND is replayed",
			first: &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.NotFound)}},
			want:  callResult{Code: codes.NotFound, Message: "replayed: notfound", Calls: 1},
		},
		{
			// The response message was not recorded: OK cannot be replayed.
			name:  "recorded OK answers ALREADY_EXISTS",
			first: &testgrpc.SimpleRequest{},
			want:  callResult{Code: codes.AlreadyExists, Message: "idempotency-completed", Calls: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, replay)
			unary(t, fx, 5*time.Second, tt.first, "idempotency-key", "r-1")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var trailer metadata.MD
			_, err := fx.client.UnaryCall(metadata.AppendToOutgoingContext(ctx, "idempotency-key", "r-1"), &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
			st := status.Convert(err)
			got := callResult{Code: st.Code(), Message: st.Message(), Calls: fx.backend.calls.Load()}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("duplicate (-got +want):\n%s", diff)
			}
			if v := trailer.Get("x-hopguard-replayed"); len(v) != 1 || v[0] != "true" {
				t.Errorf("x-hopguard-replayed trailer = %v", v)
			}
		})
	}
}

func TestUnary_Errors(t *testing.T) {
	ic := New(nil, Options{})
	ran := false
	_, err := ic.Unary()(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/" + testService + "/EmptyCall"},
		func(context.Context, any) (any, error) { ran = true; return nil, nil })
	if status.Code(err) != codes.Internal || status.Convert(err).Message() != ErrNoEngine.Error() || ran {
		t.Errorf("without engine: err %v, handler ran %v; want INTERNAL %v and no handler", err, ran, ErrNoEngine)
	}
}

// TestUnary_FingerprintBodyAndHeaders: with the request message and a
// header in the fingerprint, a key sent again with another message or
// another header value is key reuse, refused before the handler, while
// the same request is the duplicate it was before.
func TestUnary_FingerprintBodyAndHeaders(t *testing.T) {
	fingerprinted := func(b *policy.Bundle) {
		b.Routes[0].Idempotency.FingerprintBody = true
		b.Routes[0].Idempotency.FingerprintHeaders = []string{"x-amount"}
	}
	charge := func(size int32) *testgrpc.SimpleRequest { return &testgrpc.SimpleRequest{ResponseSize: size} }
	completed := callResult{Code: codes.AlreadyExists, Message: "idempotency-completed", Reason: "idempotency-completed", Calls: 1}
	reused := callResult{Code: codes.InvalidArgument, Message: "idempotency-key-reused", Reason: "idempotency-key-reused", Calls: 1}

	fx := newFixture(t, fingerprinted)
	if got := unary(t, fx, 5*time.Second, charge(10), "idempotency-key", "k-1", "x-amount", "5"); got.Code != codes.OK {
		t.Fatalf("first call: %+v", got)
	}
	for _, tc := range []struct {
		name string
		req  *testgrpc.SimpleRequest
		md   []string
		want callResult
	}{
		{"same message and header", charge(10), []string{"x-amount", "5"}, completed},
		{"another message", charge(20), []string{"x-amount", "5"}, reused},
		{"another header value", charge(10), []string{"x-amount", "6"}, reused},
		{"header left out", charge(10), nil, reused},
	} {
		got := unary(t, fx, 5*time.Second, tc.req, append([]string{"idempotency-key", "k-1"}, tc.md...)...)
		if diff := cmp.Diff(got, tc.want); diff != "" {
			t.Errorf("%s (-got +want):\n%s", tc.name, diff)
		}
	}

	// Without them (a policy compiled before the fields existed), another
	// message under the same key is answered as the duplicate.
	fx = newFixture(t)
	unary(t, fx, 5*time.Second, charge(10), "idempotency-key", "k-1")
	if got := unary(t, fx, 5*time.Second, charge(20), "idempotency-key", "k-1"); got != completed {
		t.Errorf("another message without body fingerprint: %+v, want %+v", got, completed)
	}
}
