package extproc

import (
	"context"
	"io"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
)

// memStream is an in-memory Process stream: it hands out msgs in order,
// then end (io.EOF when nil), and keeps what the server sends.
type memStream struct {
	ctx  context.Context
	msgs []*extprocv3.ProcessingRequest
	next int
	end  error
	sent []*extprocv3.ProcessingResponse
	// keep is false in benchmarks: answers are counted, not kept.
	keep  bool
	nSent int
}

var _ extprocv3.ExternalProcessor_ProcessServer = (*memStream)(nil)

func (s *memStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if s.next < len(s.msgs) {
		m := s.msgs[s.next]
		s.next++
		return m, nil
	}
	if s.end != nil {
		return nil, s.end
	}
	return nil, io.EOF
}

func (s *memStream) Send(r *extprocv3.ProcessingResponse) error {
	s.nSent++
	if s.keep {
		s.sent = append(s.sent, r)
	}
	return nil
}

func (s *memStream) Context() context.Context     { return s.ctx }
func (s *memStream) SetHeader(metadata.MD) error  { return nil }
func (s *memStream) SendHeader(metadata.MD) error { return nil }
func (s *memStream) SetTrailer(metadata.MD)       {}
func (s *memStream) SendMsg(any) error            { return nil }
func (s *memStream) RecvMsg(any) error            { return io.EOF }
