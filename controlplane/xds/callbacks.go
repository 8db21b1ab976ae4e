package xds

import (
	"context"
	"errors"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrDeltaUnsupported is returned to delta (incremental) xDS streams: the
// server speaks state-of-the-world xDS only, which both Envoy and grpc-go use
// by default.
var ErrDeltaUnsupported = errors.New("xds: delta xDS is not supported")

// ErrFetchUnsupported is returned to REST/unary fetch requests: snapshots
// are assigned when a node opens a stream, so only streams are served.
var ErrFetchUnsupported = errors.New("xds: fetch (unary xDS) is not supported")

// callbacks ties the go-control-plane server's stream events to the Server:
// node registration, lazy snapshots, and ACK/NACK tracking.
type callbacks struct{ s *Server }

var _ serverv3.Callbacks = callbacks{}

// OnStreamOpen registers the stream; its node is known at its first request.
func (c callbacks) OnStreamOpen(_ context.Context, id int64, _ string) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.forgetLocked(c.s.now())
	c.s.streams[id] = &stream{sent: map[string]sentResponse{}}
	return nil
}

// OnStreamClosed marks the stream's node disconnected when it was its last stream.
func (c callbacks) OnStreamClosed(id int64, _ *corev3.Node) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[id]
	delete(s.streams, id)
	if st == nil || st.nodeID == "" {
		return
	}
	n := s.nodes[st.nodeID]
	if n == nil {
		return
	}
	n.streams--
	if n.streams <= 0 {
		n.streams = 0
		n.status.Connected = false
		n.disconnectedAt = s.now()
		s.log.Info("xds node disconnected", zap.String("node", n.status.ID), zap.String("service", n.status.Service))
	}
	s.recountLocked(n)
}

// OnStreamRequest runs before the cache creates the request's watch (see
// sotw/v3 process). On a stream's first request it registers the node,
// restarts its drift grace when it had no open stream, and, when a
// configuration is loaded, sets the node's snapshot, so that the watch
// created right after is answered at once. It then records ACKs and NACKs.
func (c callbacks) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	s := c.s
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[id]
	if st == nil {
		return status.Errorf(codes.Internal, "xds: unknown stream %d", id)
	}
	if st.nodeID == "" {
		ident, err := identify(req.GetNode())
		if err != nil {
			s.log.Warn("xds node refused", zap.Error(err))
			return status.Error(codes.InvalidArgument, err.Error())
		}
		n := s.nodes[ident.id]
		if n == nil {
			n = newNode(ident, now)
			s.nodes[ident.id] = n
		}
		n.key = ident.key
		n.status.Service = ident.key.service
		n.status.Flavor = flavorName(ident.key.flavor)
		n.status.Locality = ident.locality
		n.endpoint = ident.endpoint
		n.status.Endpoint = ident.endpoint
		n.status.Connected = true
		if n.streams == 0 {
			// Drift grace starts at reconnect: the version set while the
			// node was away has not been sent to it yet.
			n.expectedSince = now
		}
		n.streams++
		st.nodeID = ident.id
		s.log.Info("xds node connected", zap.String("node", ident.id), zap.String("service", ident.key.service),
			zap.String("flavor", n.status.Flavor))
		if err := s.ensureSnapshotLocked(n); err != nil {
			s.log.Error("xds snapshot for new node failed", zap.String("node", ident.id), zap.Error(err))
			s.recountLocked(n)
			return status.Error(codes.Unavailable, err.Error())
		}
	}
	n := s.nodes[st.nodeID]
	n.status.LastSeen = now
	typ := req.GetTypeUrl()
	n.requested[typ] = true
	switch {
	case req.GetErrorDetail() != nil:
		version := n.status.Expected
		if sent, ok := st.sent[typ]; ok && sent.nonce == req.GetResponseNonce() {
			version = sent.version
		}
		n.rejected[typ] = version
		n.status.LastNack = &Nack{Type: typeName(typ), Version: version, Message: req.GetErrorDetail().GetMessage(), Time: now}
		s.metrics.XDSNacks.WithLabelValues(metricType(typ)).Inc()
		s.log.Warn("xds NACK", zap.String("node", n.status.ID), zap.String("type", typeName(typ)),
			zap.String("version", version), zap.String("error", req.GetErrorDetail().GetMessage()))
	case req.GetResponseNonce() != "":
		n.acked[typ] = req.GetVersionInfo()
	}
	s.recountLocked(n)
	return nil
}

// OnStreamResponse counts the push and remembers its nonce and version.
func (c callbacks) OnStreamResponse(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	s := c.s
	s.metrics.XDSPushes.WithLabelValues(metricType(resp.GetTypeUrl())).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[id]; st != nil {
		st.sent[resp.GetTypeUrl()] = sentResponse{nonce: resp.GetNonce(), version: resp.GetVersionInfo()}
	}
}

// OnDeltaStreamOpen refuses delta streams.
func (c callbacks) OnDeltaStreamOpen(context.Context, int64, string) error {
	return status.Error(codes.Unimplemented, ErrDeltaUnsupported.Error())
}

// OnDeltaStreamClosed does nothing: delta streams are refused at open.
func (c callbacks) OnDeltaStreamClosed(int64, *corev3.Node) {}

// OnStreamDeltaRequest refuses delta requests.
func (c callbacks) OnStreamDeltaRequest(int64, *discoveryv3.DeltaDiscoveryRequest) error {
	return status.Error(codes.Unimplemented, ErrDeltaUnsupported.Error())
}

// OnStreamDeltaResponse does nothing: delta streams are refused at open.
func (c callbacks) OnStreamDeltaResponse(int64, *discoveryv3.DeltaDiscoveryRequest, *discoveryv3.DeltaDiscoveryResponse) {
}

// OnFetchRequest refuses unary fetches.
func (c callbacks) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error {
	return status.Error(codes.Unimplemented, ErrFetchUnsupported.Error())
}

// OnFetchResponse does nothing: fetches are refused.
func (c callbacks) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {}
