package translate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hopguard/hopguard/policy"
)

// retryOnStatusCodes is Envoy's retry_on condition for the status codes
// listed in retriable_status_codes.
const retryOnStatusCodes = "retriable-status-codes"

// retryConditions are the condition names hopguard accepts and Envoy
// understands as written: gRPC status names (which grpc-go honours too) and
// Envoy's HTTP-level conditions.
var retryConditions = map[string]bool{
	// gRPC statuses (x-envoy-retry-grpc-on).
	"cancelled": true, "deadline-exceeded": true, "internal": true,
	"resource-exhausted": true, "unavailable": true,
	// HTTP and connection conditions (x-envoy-retry-on).
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true,
	"connect-failure": true, "refused-stream": true, "retriable-4xx": true,
	"envoy-ratelimited": true, "http3-post-connect-failure": true,
}

// retryPolicy renders a route's retry policy for side.
//
// Only the retry authority retries. Inbound routes, and outbound routes
// whose authority is app or none, carry an explicit num_retries 0 so no
// Envoy default or request header can add retries; proxyless clients get no
// policy at all instead, since grpc-go retries only when told to and
// rejects num_retries 0. Otherwise num_retries is attempts-1.
func (t *translator) retryPolicy(r policy.Retry, side Side) (*routev3.RetryPolicy, error) {
	retries := r.MeshRetries()
	if side == SideInbound {
		retries = 0
	}
	if retries == 0 {
		if t.flavor == Proxyless {
			return nil, nil
		}
		return &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(0)}, nil
	}
	on, codes, err := retryOn(r.On)
	if err != nil {
		return nil, err
	}
	if t.flavor == Proxyless {
		conds := proxylessConditions(r.On)
		if len(conds) == 0 {
			// Nothing grpc-go can retry on: no policy, as grpc-go would
			// make one attempt anyway.
			return nil, nil
		}
		if on, codes, err = retryOn(conds); err != nil {
			return nil, err
		}
	}
	rp := &routev3.RetryPolicy{
		RetryOn:              on,
		NumRetries:           wrapperspb.UInt32(uint32(retries)),
		RetriableStatusCodes: codes,
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{
			BaseInterval: durationpb.New(r.BackoffBase),
			MaxInterval:  durationpb.New(r.BackoffMax),
		},
	}
	if r.PerTryTimeout > 0 {
		rp.PerTryTimeout = durationpb.New(r.PerTryTimeout)
	}
	return rp, nil
}

// proxylessConditions are the conditions grpc-go can act on: it reads
// only gRPC status names from retry_on (gRFC A44) and ignores the rest, so
// the connection-level failures Envoy names (reset, connect-failure,
// refused-stream, reset-before-request) become unavailable, the status
// grpc-go reports them with; HTTP-level conditions are dropped.
func proxylessConditions(conds []string) []string {
	var out []string
	add := func(c string) {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	for _, c := range conds {
		switch name := strings.ToLower(strings.TrimSpace(c)); name {
		case "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable":
			add(name)
		case "reset", "reset-before-request", "connect-failure", "refused-stream":
			add("unavailable")
		}
	}
	return out
}

// retryOn maps declared conditions to Envoy's retry_on value (declared
// order, duplicates dropped) and the numeric HTTP status codes, which need
// the retriable-status-codes condition. Its errors are unprefixed: callers
// wrap them with the route.
func retryOn(conds []string) (string, []uint32, error) {
	if len(conds) == 0 {
		return "", nil, fmt.Errorf("mesh retries without retry conditions")
	}
	var names []string
	var codes []uint32
	for _, c := range conds {
		name := strings.ToLower(strings.TrimSpace(c))
		if code, err := strconv.ParseUint(name, 10, 32); err == nil {
			if code < 100 || code > 599 {
				return "", nil, fmt.Errorf("retry condition %q is not an HTTP status code", c)
			}
			if !slices.Contains(codes, uint32(code)) {
				codes = append(codes, uint32(code))
			}
			name = retryOnStatusCodes
		} else if !retryConditions[name] {
			return "", nil, fmt.Errorf("unknown retry condition %q", c)
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return strings.Join(names, ","), codes, nil
}
