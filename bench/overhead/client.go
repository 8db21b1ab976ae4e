package overhead

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/hopguard/hopguard/bench/scenario"
)

// reasonHeader is the header every hopguard rejection carries.
const reasonHeader = "x-hopguard-reason"

// envoyClient drives an ext_proc server as an Envoy sidecar does: one
// Process stream per request, carrying the per-route initial metadata;
// request_headers, and when the request goes on, response_headers (a
// trailers-only gRPC response: headers with end_of_stream); then the
// stream is half-closed and drained.
type envoyClient struct {
	cc     *grpc.ClientConn
	client extprocv3.ExternalProcessorClient
	// kinds are the mix's request kinds, prepared; pick maps a sequence
	// number to an index of kinds (weighted round robin).
	kinds []preparedKind
	pick  []int
	// baseline marks a client of the no-op processor: every answer is
	// expected to be CONTINUE whatever the kind says.
	baseline bool
	// respHeaders are a successful trailers-only gRPC response.
	respHeaders []*corev3.HeaderValue
}

// preparedKind is a RequestKind with its metadata and fixed headers built.
type preparedKind struct {
	scenario.RequestKind
	md      metadata.MD
	headers []*corev3.HeaderValue
}

func newEnvoyClient(addr string, mix []scenario.RequestKind, baseline bool) (*envoyClient, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("overhead: %w", err)
	}
	c := &envoyClient{cc: cc, baseline: baseline, client: extprocv3.NewExternalProcessorClient(cc), respHeaders: []*corev3.HeaderValue{
		{Key: ":status", Value: "200"}, {Key: "content-type", Value: "application/grpc"}, {Key: "grpc-status", Value: "0"},
	}}
	for _, k := range mix {
		side := k.Side
		if side == "" {
			side = "inbound"
		}
		p := preparedKind{RequestKind: k, md: metadata.Pairs("x-hopguard-route", k.Route, "x-hopguard-side", side)}
		p.headers = []*corev3.HeaderValue{
			{Key: ":method", Value: k.Method}, {Key: ":path", Value: k.Path},
			{Key: ":authority", Value: "bench.local"}, {Key: ":scheme", Value: "http"},
			{Key: "content-type", Value: "application/grpc"}, {Key: "te", Value: "trailers"},
			{Key: "x-request-id", Value: "bench"},
		}
		for hk, hv := range k.Headers {
			p.headers = append(p.headers, &corev3.HeaderValue{Key: hk, Value: hv})
		}
		c.kinds = append(c.kinds, p)
	}
	c.pick = smoothWeighted(mix)
	return c, nil
}

// smoothWeighted returns one cycle of smooth weighted round robin over the
// kinds (the sequence nginx uses): each kind appears weight times, spread
// evenly, so any window of requests holds close to the mix's shares.
func smoothWeighted(mix []scenario.RequestKind) []int {
	total := 0
	for _, k := range mix {
		total += k.Weight
	}
	current := make([]int, len(mix))
	out := make([]int, 0, total)
	for range total {
		best := 0
		for i, k := range mix {
			current[i] += k.Weight
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		out = append(out, best)
	}
	return out
}

func (c *envoyClient) close() error { return c.cc.Close() }

// kind returns the request kind of sequence number seq.
func (c *envoyClient) kind(seq int64) *preparedKind {
	return &c.kinds[c.pick[seq%int64(len(c.pick))]]
}

// do runs request seq. It returns the outcome label (continue or
// reject:<reason>) and whether it is what the kind expects.
func (c *envoyClient) do(ctx context.Context, seq int64) (string, bool, error) {
	k := c.kind(seq)
	ctx = metadata.NewOutgoingContext(ctx, k.md)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.client.Process(ctx)
	if err != nil {
		return "", false, fmt.Errorf("overhead: open: %w", err)
	}
	headers := k.headers
	if k.UniqueIdempotencyKey {
		headers = append(headers[:len(headers):len(headers)], &corev3.HeaderValue{Key: "idempotency-key", Value: "bench-" + strconv.FormatInt(seq, 10)})
	}
	if err := stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: headers}},
	}}); err != nil {
		return "", false, fmt.Errorf("overhead: send request headers: %w", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		return "", false, fmt.Errorf("overhead: receive request headers answer: %w", err)
	}
	if ir := resp.GetImmediateResponse(); ir != nil {
		reason := ""
		for _, h := range ir.GetHeaders().GetSetHeaders() {
			if h.GetHeader().GetKey() == reasonHeader {
				reason = h.GetHeader().GetValue()
				if reason == "" {
					reason = string(h.GetHeader().GetRawValue())
				}
			}
		}
		ok := !c.baseline && k.Expect == scenario.ExpectReject && (k.ExpectReason == "" || k.ExpectReason == reason)
		// Envoy sends nothing more after an immediate response.
		return "reject:" + reason, ok, drain(stream)
	}
	if resp.GetRequestHeaders() == nil {
		return "", false, fmt.Errorf("overhead: unexpected answer to request headers: %v", resp)
	}
	if err := stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: c.respHeaders}, EndOfStream: true},
	}}); err != nil {
		return "", false, fmt.Errorf("overhead: send response headers: %w", err)
	}
	if resp, err = stream.Recv(); err != nil {
		return "", false, fmt.Errorf("overhead: receive response headers answer: %w", err)
	}
	if resp.GetResponseHeaders() == nil {
		return "", false, fmt.Errorf("overhead: unexpected answer to response headers: %v", resp)
	}
	return "continue", c.baseline || k.Expect == scenario.ExpectContinue, drain(stream)
}

// drain half-closes the stream and waits for the server to end it.
func drain(stream extprocv3.ExternalProcessor_ProcessClient) error {
	if err := stream.CloseSend(); err != nil {
		return fmt.Errorf("overhead: close send: %w", err)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("overhead: drain: %w", err)
		}
	}
}
