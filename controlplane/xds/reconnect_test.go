package xds

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/xds/xdstest"
)

// streamHarness drives a Server's callbacks directly, as the
// go-control-plane server would, for one payments node serving
// 10.0.0.1:9001, under a settable clock and drift.action: quarantine.
type streamHarness struct {
	t     *testing.T
	s     *Server
	cb    callbacks
	clock *fakeClock
	node  *corev3.Node
	// timeout is the ext_proc timeout of the served mesh, which
	// xdstest.Render puts in every route: changing it changes the version.
	timeout time.Duration
}

// reconnectGrace is the drift grace of streamHarness servers.
const reconnectGrace = 30 * time.Second

// awayTime is how long a node stays away before it reconnects: past the
// grace, within DefaultForgetAfter (a forgotten node starts afresh).
const awayTime = 2 * time.Minute

func newStreamHarness(t *testing.T) *streamHarness {
	t.Helper()
	clock := &fakeClock{now: time.Date(2027, 1, 15, 12, 0, 0, 0, time.UTC)}
	s := New(Options{Render: xdstest.Render, Now: clock.Now, DriftGrace: reconnectGrace})
	md, err := structpb.NewStruct(map[string]any{EndpointMetadataKey: "10.0.0.1:9001"})
	if err != nil {
		t.Fatal(err)
	}
	h := &streamHarness{t: t, s: s, cb: callbacks{s}, clock: clock,
		node: &corev3.Node{Id: "payments-0", Cluster: "payments", UserAgentName: "envoy", Metadata: md}}
	h.changeConfig()
	return h
}

// changeConfig serves a new configuration: every node's expected version changes.
func (h *streamHarness) changeConfig() {
	h.t.Helper()
	h.timeout += time.Second
	m := xdstest.Mesh(h.timeout, "payments", "ledger")
	m.Drift = ir.Drift{Quarantine: true, MaxQuarantinePercent: 100}
	m.Services[0].Endpoints = []ir.Endpoint{{Host: "10.0.0.1", Port: 9001, Weight: 1}, {Host: "10.0.0.2", Port: 9001, Weight: 1}}
	if err := h.s.Update(m); err != nil {
		h.t.Fatal(err)
	}
}

// open opens stream id and sends its first request, which names the node
// and reports version as the one the node runs.
func (h *streamHarness) open(id int64, version string) {
	h.t.Helper()
	if err := h.cb.OnStreamOpen(context.Background(), id, ""); err != nil {
		h.t.Fatal(err)
	}
	if err := h.cb.OnStreamRequest(id, &discoveryv3.DiscoveryRequest{Node: h.node, TypeUrl: resourcev3.ListenerType, VersionInfo: version}); err != nil {
		h.t.Fatal(err)
	}
}

// send sends a follow-up request on stream id.
func (h *streamHarness) send(id int64, req *discoveryv3.DiscoveryRequest) {
	h.t.Helper()
	req.TypeUrl = resourcev3.ListenerType
	if err := h.cb.OnStreamRequest(id, req); err != nil {
		h.t.Fatal(err)
	}
}

// ack acknowledges the node's expected version on stream id.
func (h *streamHarness) ack(id int64) {
	h.t.Helper()
	h.send(id, &discoveryv3.DiscoveryRequest{VersionInfo: h.status().Expected, ResponseNonce: "ack"})
}

// nack rejects the node's expected version on stream id.
func (h *streamHarness) nack(id int64) {
	h.t.Helper()
	h.send(id, &discoveryv3.DiscoveryRequest{ResponseNonce: "nack", ErrorDetail: &status.Status{Message: "bad config"}})
}

func (h *streamHarness) close(id int64) { h.cb.OnStreamClosed(id, h.node) }

func (h *streamHarness) status() NodeStatus {
	h.t.Helper()
	return nodeStatus(h.t, h.s, h.node.GetId())
}

// quarantined evaluates the quarantine and returns the drained endpoints of payments.
func (h *streamHarness) quarantined() []string {
	h.t.Helper()
	if err := h.s.EvaluateQuarantine(); err != nil {
		h.t.Fatal(err)
	}
	for _, sq := range h.s.Quarantine() {
		if sq.Service == "payments" {
			return sq.Quarantined
		}
	}
	return nil
}

// expectDrift checks the node's drift and whether its endpoint is drained.
func (h *streamHarness) expectDrift(step string, drifted bool) {
	h.t.Helper()
	if st := h.status(); st.Drifted != drifted {
		h.t.Errorf("%s: drifted = %v (state %s), want %v", step, st.Drifted, st.State, drifted)
	}
	if q := h.quarantined(); (len(q) > 0) != drifted {
		h.t.Errorf("%s: quarantined endpoints %v, want drained = %v", step, q, drifted)
	}
}

// syncAndLeave connects the node on stream id, acknowledges its version
// and closes the stream; it returns the version the node runs.
func (h *streamHarness) syncAndLeave(id int64) string {
	h.t.Helper()
	h.open(id, "")
	h.ack(id)
	v := h.status().Expected
	h.close(id)
	return v
}

// TestReconnectingNode_GraceStartsAtReconnect: a node that was in sync,
// left, and missed a configuration change longer ago than the drift grace
// is not drifted (nor quarantined) when it reconnects: it has not been sent
// the new version yet. If it does not acknowledge it within the grace on
// the new stream, it is.
func TestReconnectingNode_GraceStartsAtReconnect(t *testing.T) {
	h := newStreamHarness(t)
	old := h.syncAndLeave(1)
	h.clock.Add(time.Second)
	h.changeConfig() // while the node is away
	h.clock.Add(awayTime)

	h.open(2, old)
	h.expectDrift("just reconnected", false)
	h.clock.Add(reconnectGrace)
	h.expectDrift("at the end of the grace", false)
	h.clock.Add(time.Second)
	h.expectDrift("past the grace, still on the old version", true)
	h.ack(2)
	h.expectDrift("after acknowledging", false)
}

// TestReconnectingNode_AcksInTime: a reconnected node that acknowledges
// the version it missed within the grace never counts as drifted.
func TestReconnectingNode_AcksInTime(t *testing.T) {
	h := newStreamHarness(t)
	old := h.syncAndLeave(1)
	h.changeConfig()
	h.clock.Add(awayTime)
	h.open(2, old)
	h.clock.Add(reconnectGrace / 2)
	h.expectDrift("within the grace, before acknowledging", false)
	h.ack(2)
	h.clock.Add(time.Hour)
	h.expectDrift("an hour after acknowledging", false)
}

// TestConnectedNode_StuckDriftsAfterGrace: the grace restarts only when a
// node with no open stream reconnects; a connected node stuck on an old
// version drifts when its grace is over, even if it opens another stream
// meanwhile.
func TestConnectedNode_StuckDriftsAfterGrace(t *testing.T) {
	h := newStreamHarness(t)
	h.open(1, "")
	h.ack(1)
	h.changeConfig()
	h.clock.Add(reconnectGrace - time.Second)
	h.open(2, "") // a second stream of the same node
	h.expectDrift("within the grace", false)
	h.clock.Add(2 * time.Second)
	h.expectDrift("past the grace", true)
	h.close(2)
	h.expectDrift("past the grace, one stream closed", true)
}

// TestReconnectingNode_NackIsDriftAtOnce: the restarted grace does not
// cover NACKs: a node that rejects its version, on a new stream or
// before it left, is drifted at once.
func TestReconnectingNode_NackIsDriftAtOnce(t *testing.T) {
	h := newStreamHarness(t)
	old := h.syncAndLeave(1)
	h.changeConfig()
	h.clock.Add(awayTime)
	h.open(2, old)
	h.nack(2)
	h.expectDrift("NACK right after reconnecting", true)

	h.close(2)
	h.clock.Add(time.Minute)
	h.open(3, old) // the same, still rejected, version is expected
	h.expectDrift("reconnected after a NACK", true)
}
