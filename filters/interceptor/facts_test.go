package interceptor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hopguard/hopguard/filters/engine"
)

func TestFactsFromMetadata_Success(t *testing.T) {
	dl := time.Unix(1_800_000_000, 0)
	base := engine.Facts{Side: engine.Inbound, Proxyless: true, Method: "POST", Path: "/p.S/M", StreamDeadline: dl}
	with := func(mod func(*engine.Facts)) engine.Facts { f := base; mod(&f); return f }
	tests := []struct {
		name string
		md   metadata.MD
		want engine.Facts
	}{
		{name: "no metadata", md: nil, want: base},
		{
			name: "every header",
			md: metadata.Pairs(
				"x-hopguard-deadline", "1800000000250", "grpc-timeout", "3S", "x-envoy-expected-rq-timeout-ms", "700",
				"x-envoy-attempt-count", "2", "grpc-previous-rpc-attempts", "1", "x-hopguard-attempt", "1",
				"idempotency-key", "k", "x-client-id", "alice", "x-hopguard-policy", "d1",
			),
			want: with(func(f *engine.Facts) {
				f.HopguardDeadline = time.UnixMilli(1_800_000_000_250)
				f.GRPCTimeout, f.EnvoyExpectedTimeout = 3*time.Second, 700*time.Millisecond
				f.EnvoyAttemptCount, f.GRPCPreviousAttempts, f.HopguardAttempt = 2, 1, 1
				f.HasKey, f.Key, f.Principal, f.PolicyDigest = true, "k", "alice", "d1"
			}),
		},
		{
			name: "first value of repeated keys",
			md:   metadata.MD{"idempotency-key": {"a", "a"}, "grpc-previous-rpc-attempts": {"3", "1"}, "x-client-id": {"alice", "bob"}},
			want: with(func(f *engine.Facts) { f.HasKey, f.Key, f.GRPCPreviousAttempts, f.Principal = true, "a", 3, "alice" }),
		},
		{
			name: "an idempotency key sent twice with different values is no key",
			md:   metadata.MD{"idempotency-key": {"a", "b"}},
			want: with(func(f *engine.Facts) { f.HasKey, f.Key = true, "" }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got engine.Facts
			// The policy's header names are matched case-insensitively.
			factsFromMetadata(&got, tt.md, "/p.S/M", dl, "Idempotency-Key", "x-client-id", func(h string) { t.Errorf("parse error on %s", h) })
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("facts (-got +want):\n%s", diff)
			}
		})
	}
}

func TestFactsFromMetadata_Errors(t *testing.T) {
	md := metadata.Pairs(
		"x-hopguard-deadline", "noon", "grpc-timeout", "1", "x-envoy-expected-rq-timeout-ms", "1.5",
		"x-envoy-attempt-count", "-2", "grpc-previous-rpc-attempts", "many", "x-hopguard-attempt", "",
	)
	var got engine.Facts
	var bad []string
	factsFromMetadata(&got, md, "/p.S/M", time.Time{}, "", "", func(h string) { bad = append(bad, h) })
	want := engine.Facts{Side: engine.Inbound, Proxyless: true, Method: "POST", Path: "/p.S/M"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("malformed values must leave facts zero (-got +want):\n%s", diff)
	}
	wantBad := []string{
		"grpc-previous-rpc-attempts", "grpc-timeout", "x-envoy-attempt-count",
		"x-envoy-expected-rq-timeout-ms", "x-hopguard-attempt", "x-hopguard-deadline",
	}
	slices.Sort(bad) // metadata is a map: no order
	if diff := cmp.Diff(bad, wantBad); diff != "" {
		t.Errorf("parse errors (-got +want):\n%s", diff)
	}
}

func TestStatusCodeOfHandlerErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{status.Error(codes.NotFound, "x"), codes.NotFound},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("plain"), codes.Unknown},
	} {
		if got := statusCode(tc.err); got != tc.want {
			t.Errorf("statusCode(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
