package deploy

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Route ids and gRPC paths of the bundled example (examples/shop/config).
const (
	routeCreateCharge = "shop/create-charge"
	routeGetCharge    = "shop/get-charge"
	routePostEntry    = "shop/post-entry"
	routeReserve      = "shop/reserve"
	routePlaceOrder   = "shop/place-order"

	pathCreateCharge = "/shop.Payments/CreateCharge"
	pathGetCharge    = "/shop.Payments/GetCharge"
	pathPostEntry    = "/shop.Ledger/PostEntry"
	pathReserve      = "/shop.Inventory/Reserve"
	pathPlaceOrder   = "/shop.Orders/PlaceOrder"
)

// extProcClient speaks ext_proc to a filter server as an Envoy sidecar
// does: one Process stream per request, with the route and hop side the
// control plane renders as stream metadata.
type extProcClient struct {
	t    *testing.T
	conn *grpc.ClientConn
}

func dialExtProc(t *testing.T, addr string) *extProcClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return &extProcClient{t: t, conn: cc}
}

// exchange is one request's Process stream.
type exchange struct {
	t      *testing.T
	stream extprocv3.ExternalProcessor_ProcessClient
	cancel context.CancelFunc
	// reason is the x-hopguard-reason of a rejection, "" when the request
	// was let through.
	reason string
}

// request opens a stream for route (inbound side) and sends the request
// headers of a gRPC call to path with extra headers kv (key, value pairs),
// plus stream metadata md. It returns once the filter has answered them.
func (c *extProcClient) request(route, path string, md []string, kv ...string) *exchange {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	ctx = metadata.AppendToOutgoingContext(ctx, append([]string{"x-hopguard-route", route, "x-hopguard-side", "inbound"}, md...)...)
	stream, err := extprocv3.NewExternalProcessorClient(c.conn).Process(ctx)
	if err != nil {
		cancel()
		c.t.Fatal(err)
	}
	x := &exchange{t: c.t, stream: stream, cancel: cancel}
	c.t.Cleanup(cancel)
	hs := []*corev3.HeaderValue{hv(":method", "POST"), hv(":path", path), hv(":authority", "payments"), hv("content-type", "application/grpc")}
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, hv(kv[i], kv[i+1]))
	}
	x.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hs}},
	}})
	resp := x.recv()
	if ir := resp.GetImmediateResponse(); ir != nil {
		for _, h := range ir.GetHeaders().GetSetHeaders() {
			if h.GetHeader().GetKey() == "x-hopguard-reason" {
				x.reason = h.GetHeader().GetValue() + string(h.GetHeader().GetRawValue())
			}
		}
		if x.reason == "" {
			c.t.Fatalf("%s %s: immediate response without x-hopguard-reason: %v", route, path, ir)
		}
		x.drain()
	} else if resp.GetRequestHeaders() == nil {
		c.t.Fatalf("%s %s: want a request_headers answer or an immediate response, got %v", route, path, resp)
	}
	return x
}

func hv(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, RawValue: []byte(v)} }

func (x *exchange) send(req *extprocv3.ProcessingRequest) {
	x.t.Helper()
	if err := x.stream.Send(req); err != nil {
		x.t.Fatalf("ext_proc send: %v", err)
	}
}

func (x *exchange) recv() *extprocv3.ProcessingResponse {
	x.t.Helper()
	resp, err := x.stream.Recv()
	if err != nil {
		x.t.Fatalf("ext_proc answer: %v", err)
	}
	return resp
}

// complete sends the upstream's response (headers :status 200, trailers
// with grpcStatus) and ends the stream, as Envoy does when the upstream
// answers.
func (x *exchange) complete(grpcStatus string) {
	x.t.Helper()
	if x.reason != "" {
		x.t.Fatalf("complete on a request rejected with %s", x.reason)
	}
	x.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{hv(":status", "200"), hv("content-type", "application/grpc")}}},
	}})
	x.recv()
	x.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{
		ResponseTrailers: &extprocv3.HttpTrailers{Trailers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{hv("grpc-status", grpcStatus)}}},
	}})
	x.recv()
	if err := x.stream.CloseSend(); err != nil {
		x.t.Fatal(err)
	}
	x.drain()
}

// drain waits (bounded by the stream's context) until the server ends the
// stream.
func (x *exchange) drain() {
	x.t.Helper()
	for {
		if _, err := x.stream.Recv(); err != nil {
			if !errors.Is(err, io.EOF) && x.stream.Context().Err() != nil {
				x.t.Fatalf("ext_proc stream did not end: %v", err)
			}
			x.cancel()
			return
		}
	}
}

// generateTraffic sends allowed, completed, late, failed and rejected
// requests of every cheap kind through the filter at addr, and one claim
// that outlives its deadline before its response arrives (an expired
// in-flight record and a refused transition). It returns the rejection
// reasons it provoked. The configuration must be examples/shop/config with
// create-charge's retry.minRemaining set to 100ms.
func generateTraffic(t *testing.T, addr string) []string {
	t.Helper()
	c := dialExtProc(t, addr)
	want := func(x *exchange, reason string) {
		t.Helper()
		if x.reason != reason {
			t.Fatalf("got reason %q, want %q", x.reason, reason)
		}
	}

	// Allowed and completed within the deadline; one failed; one late.
	for range 5 {
		c.request(routeGetCharge, pathGetCharge, nil).complete("0")
	}
	c.request(routeGetCharge, pathGetCharge, nil).complete("14")
	late := c.request(routeGetCharge, pathGetCharge, nil, "grpc-timeout", "30m")
	time.Sleep(60 * time.Millisecond)
	late.complete("0")
	// A malformed header is ignored and counted; a foreign policy digest is drift.
	c.request(routeGetCharge, pathGetCharge, nil, "grpc-timeout", "soon").complete("0")
	c.request(routeGetCharge, pathGetCharge, []string{"x-hopguard-policy", "0000000000000000"}).complete("0")

	// Idempotent side effects: one completed, then its duplicate.
	c.request(routeCreateCharge, pathCreateCharge, nil, "idempotency-key", "charge-1").complete("0")
	want(c.request(routeCreateCharge, pathCreateCharge, nil, "idempotency-key", "charge-1"), "idempotency-completed")
	want(c.request(routeCreateCharge, "/shop.Payments/Refund", nil, "idempotency-key", "charge-1"), "idempotency-key-reused")
	want(c.request(routeCreateCharge, pathCreateCharge, nil), "idempotency-key-missing")
	want(c.request(routeCreateCharge, pathCreateCharge, nil, "idempotency-key", "charge-2", "grpc-timeout", "10m"), "deadline-exhausted")

	// Retries: an admitted mesh retry and an admitted app retry, then the
	// refusals.
	c.request(routeCreateCharge, pathCreateCharge, nil, "idempotency-key", "charge-3", "x-envoy-attempt-count", "2").complete("0")
	c.request(routeReserve, pathReserve, nil, "idempotency-key", "reserve-1", "x-hopguard-attempt", "2").complete("0")
	want(c.request(routeCreateCharge, pathCreateCharge, nil, "idempotency-key", "charge-4", "x-envoy-attempt-count", "2", "grpc-timeout", "50m"), "retry-deadline-insufficient")
	want(c.request(routeCreateCharge, pathCreateCharge, nil, "idempotency-key", "charge-5", "x-envoy-attempt-count", "4"), "retry-budget-exhausted")
	want(c.request(routePostEntry, pathPostEntry, nil, "idempotency-key", "entry-1", "x-envoy-attempt-count", "2"), "retry-not-authority")

	// A dry-run route lets a keyless request through and counts it.
	c.request(routePlaceOrder, pathPlaceOrder, nil).complete("0")

	// A claim whose response comes after its deadline plus 1s: the record
	// expires in flight, a duplicate meanwhile is refused, and the late
	// completion is an illegal transition.
	slow := c.request(routeCreateCharge, pathCreateCharge, nil, "idempotency-key", "charge-slow", "grpc-timeout", "100m")
	want(c.request(routeCreateCharge, pathCreateCharge, nil, "idempotency-key", "charge-slow"), "idempotency-in-flight")
	time.Sleep(1300 * time.Millisecond)
	slow.complete("0")

	return []string{
		"deadline-exhausted", "idempotency-completed", "idempotency-in-flight", "idempotency-key-missing",
		"idempotency-key-reused", "retry-budget-exhausted", "retry-deadline-insufficient", "retry-not-authority",
	}
}
