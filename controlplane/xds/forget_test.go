package xds

import (
	"context"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/hopguard/hopguard/controlplane/xds/xdstest"
)

func TestDisconnectedNodesAreForgotten(t *testing.T) {
	clock := &fakeClock{now: time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)}
	s, addr := startServer(t, Options{Now: clock.Now, ForgetAfter: time.Minute})
	mesh := xdstest.Mesh(time.Second, "payments", "ledger")
	if err := s.Update(mesh); err != nil {
		t.Fatal(err)
	}
	c, err := xdstest.Dial(context.Background(), addr, envoyNode("payments-1", "payments"), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(resourcev3.ListenerType); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, resourcev3.ListenerType, renderVersion(t, mesh, "payments"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "payments-1 disconnected", func() bool {
		ns := s.Nodes()
		return len(ns) == 1 && !ns[0].Connected
	})

	// Within ForgetAfter the status stays, for /nodes and a quick reconnect.
	clock.Add(30 * time.Second)
	if err := s.Update(mesh); err != nil {
		t.Fatal(err)
	}
	if got := len(s.Nodes()); got != 1 {
		t.Fatalf("%d nodes known 30s after the disconnect, want 1", got)
	}
	// After it, the node and its snapshot are gone.
	clock.Add(time.Minute)
	if err := s.Update(mesh); err != nil {
		t.Fatal(err)
	}
	if got := s.Nodes(); len(got) != 0 {
		t.Errorf("nodes known after ForgetAfter: %+v, want none", got)
	}
	if _, err := s.cache.GetSnapshot("payments-1"); err == nil {
		t.Error("the forgotten node's snapshot is still in the cache")
	}
}
