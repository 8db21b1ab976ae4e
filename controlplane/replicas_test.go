package controlplane

import (
	"path/filepath"
	"slices"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
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
