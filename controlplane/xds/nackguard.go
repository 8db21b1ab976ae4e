package xds

import (
	"context"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
)

// nackGuard wraps the snapshot cache so that a NACKed version is not sent
// to the same node again until its snapshot changes.
//
// Why: a NACK carries the version the client last accepted. The snapshot
// cache compares that with the snapshot's version, sees a difference and
// answers at once with the same rejected resources; the client NACKs again,
// and the pair loops thousands of times per second.
//
// How: callbacks.OnStreamRequest runs before CreateWatch for the same
// request and records, per node and type, the version the client rejected
// (from the nonce of the rejected response). While that version is still
// the node's snapshot version, CreateWatch hands the cache a copy of the
// request whose VersionInfo is the rejected version. The cache then treats
// the client as up to date and keeps the watch open; the next SetSnapshot
// with a different version answers it. A request that subscribes to
// resources the client has not been sent is still answered, as is a new
// stream (the cache has returned nothing on it yet), so a reconnecting
// client is never left without configuration.
type nackGuard struct {
	inner cachev3.SnapshotCache
	s     *Server
}

var _ cachev3.Cache = (*nackGuard)(nil)

// CreateWatch opens a watch on the inner cache, masking a rejected version
// as described on nackGuard.
func (g *nackGuard) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, out chan cachev3.Response) (func(), error) {
	if rejected := g.rejectedVersion(req); rejected != "" && req.GetVersionInfo() != rejected {
		masked, ok := proto.Clone(req).(*cachev3.Request)
		if ok {
			masked.VersionInfo = rejected
			req = masked
		}
	}
	return g.inner.CreateWatch(req, sub, out)
}

// rejectedVersion returns the version the request's node rejected for the
// request's type when it is still the node's snapshot version, else "".
func (g *nackGuard) rejectedVersion(req *cachev3.Request) string {
	s := g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[req.GetNode().GetId()]
	if n == nil {
		return ""
	}
	if v := n.rejected[req.GetTypeUrl()]; v != "" && v == n.status.Expected {
		return v
	}
	return ""
}

// CreateDeltaWatch refuses delta xDS; callbacks refuse delta streams before
// they get here.
func (g *nackGuard) CreateDeltaWatch(*cachev3.DeltaRequest, cachev3.Subscription, chan cachev3.DeltaResponse) (func(), error) {
	return nil, ErrDeltaUnsupported
}

// Fetch refuses unary fetches; callbacks refuse them before they get here.
func (g *nackGuard) Fetch(context.Context, *cachev3.Request) (cachev3.Response, error) {
	return nil, ErrFetchUnsupported
}
