package controlplane

import (
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/hopguard/hopguard/policy/bundle"
	"github.com/hopguard/hopguard/policy/signing"
)

// Two replicas on the same configuration serve the same versions and
// resources, before and after a change: a node that reconnects to the
// other replica sees no change, and re-ACKs what it already runs.
func TestReplicasServeIdenticalVersions(t *testing.T) {
	dir := configDir(t)
	a := start(t, Options{ConfigDir: dir})
	b := start(t, Options{ConfigDir: dir})

	same := func(when string) string {
		t.Helper()
		ca := dialNode(t, a, "ledger-1", "ledger")
		cb := dialNode(t, b, "ledger-1", "ledger") // the same node, moved to the other replica
		var version string
		for _, typ := range []string{resourcev3.ListenerType, resourcev3.ClusterType} {
			ra := waitResponse(t, ca, typ, "")
			rb := waitResponse(t, cb, typ, "")
			slices.Sort(ra.Names)
			slices.Sort(rb.Names)
			if ra.Version != rb.Version || !slices.Equal(ra.Names, rb.Names) {
				t.Errorf("%s: %s from the replicas differ: %s %v vs %s %v", when, typ, ra.Version, ra.Names, rb.Version, rb.Names)
			}
			version = ra.Version
		}
		if a.Config().Version != b.Config().Version || a.Config().PolicyHash != b.Config().PolicyHash {
			t.Errorf("%s: replicas report config %s/%s and %s/%s", when,
				a.Config().Version, a.Config().PolicyHash, b.Config().Version, b.Config().PolicyHash)
		}
		return version
	}
	v1 := same("at start")

	before := a.Config().Version
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("700ms", 2))
	eventually(t, "both replicas to reload", func() bool {
		va, vb := a.Config().Version, b.Config().Version
		return va != before && va == vb
	})
	if v2 := same("after a change"); v2 == v1 {
		t.Errorf("the change kept version %s", v1)
	}
}

// TestUnfreezeReachesAFilterFrozenByAnotherReplica: a filter took a
// freeze from replica A, then follows replica B, which was never frozen
// and whose bundle is older: the filter refuses it as stale and stays
// frozen. Unfreezing B, although B is not frozen, distributes a newer
// generation, which releases the filter.
func TestUnfreezeReachesAFilterFrozenByAnotherReplica(t *testing.T) {
	key, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	dir := configDir(t)
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func() { mu.Lock(); now = now.Add(time.Minute); mu.Unlock() }
	a := start(t, Options{ConfigDir: dir, SigningKey: key, Now: clock})
	b := start(t, Options{ConfigDir: dir, SigningKey: key, Now: clock})
	filter := bundle.NewVerifier(a.Config().Mesh.Policy.Environment, key.Public())
	if _, err := filter.Accept(a.BundleJSON()); err != nil {
		t.Fatal(err)
	}

	advance()
	if _, err := a.Freeze(true, "INC-1"); err != nil {
		t.Fatal(err)
	}
	frozen, err := filter.Accept(a.BundleJSON())
	if err != nil || !frozen.Policies.Mesh.Frozen {
		t.Fatalf("frozen bundle from A: %v, %v", frozen, err)
	}
	// A is gone; the filter follows B.
	if _, err := filter.Accept(b.BundleJSON()); !errors.Is(err, bundle.ErrStale) {
		t.Fatalf("B's older bundle = %v, want refused as stale", err)
	}

	advance()
	gen, err := b.Freeze(false, "INC-1 over")
	if err != nil {
		t.Fatal(err)
	}
	if gen <= frozen.Generation {
		t.Fatalf("unfreeze on an unfrozen replica distributed generation %d, want above %d", gen, frozen.Generation)
	}
	got, err := filter.Accept(b.BundleJSON())
	if err != nil || got.Policies.Mesh.Frozen {
		t.Errorf("B's unfreeze at the filter = %+v, %v; want accepted, not frozen", got, err)
	}
}
