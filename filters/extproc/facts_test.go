package extproc

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hopguard/hopguard/filters/engine"
)

// hv is an Envoy-style header (value in `value`).
func hv(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, Value: v} }

// rawHV is a grpc-go-style header (value in `raw_value`).
func rawHV(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, RawValue: []byte(v)} }

func headerMap(hs ...*corev3.HeaderValue) *corev3.HeaderMap { return &corev3.HeaderMap{Headers: hs} }

func TestFactsFromHeaders_Success(t *testing.T) {
	at := time.UnixMilli(1_800_000_000_123)
	tests := []struct {
		name    string
		headers *corev3.HeaderMap
		want    engine.Facts
	}{
		{
			name: "every header, Envoy values",
			headers: headerMap(
				hv("x-hopguard-deadline", "1800000000123"), hv("grpc-timeout", "250m"),
				hv("x-envoy-expected-rq-timeout-ms", "900"), hv("x-envoy-attempt-count", "2"),
				hv("grpc-previous-rpc-attempts", "1"), hv("x-hopguard-attempt", "3"),
				hv("idempotency-key", "k-1"), hv("x-client-id", "spiffe://a"),
			),
			want: engine.Facts{
				HopguardDeadline: at, GRPCTimeout: 250 * time.Millisecond, EnvoyExpectedTimeout: 900 * time.Millisecond,
				EnvoyAttemptCount: 2, GRPCPreviousAttempts: 1, HopguardAttempt: 3,
				HasKey: true, Key: "k-1", Principal: "spiffe://a",
			},
		},
		{
			name:    "raw_value wins over value, keys are lower-cased",
			headers: headerMap(&corev3.HeaderValue{Key: "Idempotency-Key", Value: "v", RawValue: []byte("raw")}, rawHV("GRPC-Timeout", "2S")),
			want:    engine.Facts{HasKey: true, Key: "raw", GRPCTimeout: 2 * time.Second},
		},
		{
			name:    "empty key is present but empty",
			headers: headerMap(hv("idempotency-key", "")),
			want:    engine.Facts{HasKey: true},
		},
		{
			name: "repeated headers: the first value counts",
			headers: headerMap(
				hv("x-envoy-attempt-count", "2"), hv("x-envoy-attempt-count", "1"),
				hv("idempotency-key", "k-1"), hv("idempotency-key", "k-1"),
				hv("x-client-id", "spiffe://a"), hv("x-client-id", "spiffe://b"),
			),
			want: engine.Facts{EnvoyAttemptCount: 2, HasKey: true, Key: "k-1", Principal: "spiffe://a"},
		},
		{
			// The application may read either; hopguard cannot know which.
			name:    "an idempotency key repeated with another value is no key",
			headers: headerMap(hv("idempotency-key", "k-1"), hv("idempotency-key", "k-2"), hv("idempotency-key", "k-1")),
			want:    engine.Facts{HasKey: true, Key: ""},
		},
		{
			name:    "unrelated headers are ignored",
			headers: headerMap(hv(":path", "/x"), hv("content-type", "application/grpc")),
			want:    engine.Facts{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got engine.Facts
			factsFromHeaders(&got, tt.headers, idemHeaderKey, principalHdr, func(h string) { t.Errorf("unexpected parse error on %s", h) })
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("facts (-got +want):\n%s", diff)
			}
		})
	}
}

func TestFactsFromHeaders_Errors(t *testing.T) {
	tests := []struct {
		name    string
		headers *corev3.HeaderMap
		wantBad []string
	}{
		{
			name: "every parsed header malformed",
			headers: headerMap(
				hv("x-hopguard-deadline", "soon"), hv("grpc-timeout", "5x"),
				hv("x-envoy-expected-rq-timeout-ms", "-1"), hv("x-envoy-attempt-count", "two"),
				hv("grpc-previous-rpc-attempts", ""), rawHV("x-hopguard-attempt", "1e3"),
			),
			wantBad: []string{
				"x-hopguard-deadline", "grpc-timeout", "x-envoy-expected-rq-timeout-ms",
				"x-envoy-attempt-count", "grpc-previous-rpc-attempts", "x-hopguard-attempt",
			},
		},
		{
			name:    "overlong grpc-timeout",
			headers: headerMap(hv("grpc-timeout", "123456789m")),
			wantBad: []string{"grpc-timeout"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got engine.Facts
			var bad []string
			factsFromHeaders(&got, tt.headers, idemHeaderKey, principalHdr, func(h string) { bad = append(bad, h) })
			if diff := cmp.Diff(got, engine.Facts{}); diff != "" {
				t.Errorf("malformed values must leave facts zero (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(bad, tt.wantBad); diff != "" {
				t.Errorf("parse errors (-got +want):\n%s", diff)
			}
		})
	}
}

func attrs(path, host string) map[string]*structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{
		attrPath: structpb.NewStringValue(path),
		attrHost: structpb.NewStringValue(host),
	}}
	return map[string]*structpb.Struct{attributesKey: s}
}

func TestRequestInfoFromHeaders_Success(t *testing.T) {
	tests := []struct {
		name string
		req  *extprocv3.ProcessingRequest
		want requestInfo
	}{
		{
			name: "Envoy gRPC",
			req: reqHeaders(headerMap(hv(":method", "POST"), hv(":path", pathCharge), hv(":authority", "payments"),
				hv("content-type", "application/grpc+proto")), nil),
			want: requestInfo{method: "POST", path: pathCharge, rawPath: pathCharge, authority: "payments", hasPathHeader: true, grpc: true},
		},
		{
			name: "Envoy HTTP with query",
			req: reqHeaders(headerMap(hv(":method", "PUT"), hv(":path", "/v1/orders/7?x=1"), hv(":authority", "orders"),
				hv("content-type", "application/json")), nil),
			want: requestInfo{method: "PUT", path: "/v1/orders/7", rawPath: "/v1/orders/7?x=1", authority: "orders", hasPathHeader: true},
		},
		{
			name: "grpc-go: attributes, raw values, no pseudo-headers",
			req:  reqHeaders(headerMap(rawHV("idempotency-key", "k")), attrs(pathCharge, "payments.shop")),
			want: requestInfo{method: "POST", path: pathCharge, rawPath: pathCharge, authority: "payments.shop", grpc: true},
		},
		{
			name: "grpc-go: headers-level attributes",
			req: &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
				RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(), Attributes: attrs(pathGet, "orders")},
			}},
			want: requestInfo{method: "POST", path: pathGet, rawPath: pathGet, authority: "orders", grpc: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := requestInfoFromHeaders(tt.req, tt.req.GetRequestHeaders())
			if diff := cmp.Diff(got, tt.want, cmp.AllowUnexported(requestInfo{})); diff != "" {
				t.Errorf("request info (-got +want):\n%s", diff)
			}
		})
	}
}

func TestRequestInfoFromHeaders_Errors(t *testing.T) {
	// Missing or mistyped attributes leave the path empty: the request
	// matches no route and continues unchanged.
	num := &structpb.Struct{Fields: map[string]*structpb.Value{attrPath: structpb.NewNumberValue(1)}}
	tests := []struct {
		name string
		req  *extprocv3.ProcessingRequest
		want requestInfo
	}{
		{name: "nothing at all", req: &extprocv3.ProcessingRequest{}, want: requestInfo{method: "POST", grpc: true}},
		{
			name: "non-string path attribute",
			req:  reqHeaders(headerMap(), map[string]*structpb.Struct{attributesKey: num}),
			want: requestInfo{method: "POST", grpc: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := requestInfoFromHeaders(tt.req, tt.req.GetRequestHeaders())
			if diff := cmp.Diff(got, tt.want, cmp.AllowUnexported(requestInfo{})); diff != "" {
				t.Errorf("request info (-got +want):\n%s", diff)
			}
		})
	}
}

func TestStreamInfoFromMetadata_Success(t *testing.T) {
	tests := []struct {
		name string
		md   metadata.MD
		want streamInfo
	}{
		{name: "none: inbound", md: nil, want: streamInfo{}},
		{
			name: "all",
			md:   metadata.Pairs("x-hopguard-route", routeCharge, "x-hopguard-policy", "abc", "x-hopguard-side", "outbound"),
			want: streamInfo{routeID: routeCharge, policyDigest: "abc", side: engine.Outbound},
		},
		{name: "unknown side: inbound", md: metadata.Pairs("x-hopguard-side", "sideways"), want: streamInfo{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := streamInfoFromContext(metadata.NewIncomingContext(context.Background(), tt.md))
			if diff := cmp.Diff(got, tt.want, cmp.AllowUnexported(streamInfo{})); diff != "" {
				t.Errorf("stream info (-got +want):\n%s", diff)
			}
		})
	}
}

// reqHeaders is a request_headers message with request-level attributes.
func reqHeaders(hm *corev3.HeaderMap, attributes map[string]*structpb.Struct) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{
		Request:    &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hm}},
		Attributes: attributes,
	}
}
