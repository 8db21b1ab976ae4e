package overhead

import (
	"errors"
	"fmt"
	"io"
	"net"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/hopguard/hopguard/filters/engine"
	"github.com/hopguard/hopguard/filters/extproc"
	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/policy"
)

// noopServer is the baseline ext_proc processor: it answers every message
// that expects an answer with CONTINUE and no mutation, and ends the stream
// when the data plane closes it. It is what an ext_proc server costs with
// no logic at all.
type noopServer struct {
	extprocv3.UnimplementedExternalProcessorServer
}

var _ extprocv3.ExternalProcessorServer = noopServer{}

// Process answers every request_headers, response_headers and trailers
// message with CONTINUE.
func (noopServer) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil //nolint:nilerr // the data plane went away: the normal end of a stream
		}
		var resp *extprocv3.ProcessingResponse
		cont := &extprocv3.CommonResponse{Status: extprocv3.CommonResponse_CONTINUE}
		switch req.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: cont}}}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{Response: cont}}}
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
		case *extprocv3.ProcessingRequest_RequestTrailers:
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
		default:
			continue
		}
		if err := stream.Send(resp); err != nil {
			return nil //nolint:nilerr // as above
		}
	}
}

// server is one ext_proc gRPC server on loopback. Stop ends it.
type server struct {
	addr   string
	gs     *grpc.Server
	served chan error
}

// serve starts gs on a free loopback port.
func serve(gs *grpc.Server) (*server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("overhead: %w", err)
	}
	s := &server{addr: lis.Addr().String(), gs: gs, served: make(chan error, 1)}
	go func() { s.served <- gs.Serve(lis) }()
	return s, nil
}

// stop stops the server and waits for Serve to return.
func (s *server) stop() error {
	s.gs.Stop()
	if err := <-s.served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("overhead: serve: %w", err)
	}
	return nil
}

// startNoop serves the no-op processor.
func startNoop() (*server, error) {
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, noopServer{})
	return serve(gs)
}

// startHopguard serves hopguard's ext_proc server as `hopguard extproc`
// builds it: the engine with its default LRU idempotency store and real
// Prometheus metrics (registered on a private registry), no logger.
func startHopguard(b *policy.Bundle) (*server, error) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		return nil, fmt.Errorf("overhead: %w", err)
	}
	eng := engine.New(engine.Options{Metrics: m})
	eng.SetBundle(b)
	gs := grpc.NewServer()
	extproc.New(extproc.Options{Engine: eng}).Register(gs)
	return serve(gs)
}
