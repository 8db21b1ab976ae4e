package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNewExposesEverySeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, BuildInfo{Version: "v1", Revision: "r", GoVersion: "go1.26"})
	if err != nil {
		t.Fatal(err)
	}
	m.SetPolicy("h1", "v1alpha1", "prod")
	m.SetPolicy("h2", "v1alpha1", "prod")
	want := `
# HELP hopguard_policy_info The policy being served (always 1).
# TYPE hopguard_policy_info gauge
hopguard_policy_info{environment="prod",policy_hash="h2",schema_rev="v1alpha1"} 1
# HELP hopguard_xds_nodes Connected xDS nodes by state (acked, nacked, pending, drifted).
# TYPE hopguard_xds_nodes gauge
hopguard_xds_nodes{state="acked"} 0
hopguard_xds_nodes{state="drifted"} 0
hopguard_xds_nodes{state="nacked"} 0
hopguard_xds_nodes{state="pending"} 0
# HELP hopguard_build_info Build information of the running binary (always 1).
# TYPE hopguard_build_info gauge
hopguard_build_info{go_version="go1.26",revision="r",version="v1"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"hopguard_policy_info", "hopguard_xds_nodes", "hopguard_build_info"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.XDSPushes); n != 4 {
		t.Errorf("hopguard_xds_pushes_total has %d series, want 4 (one per type)", n)
	}
	if n := testutil.CollectAndCount(m.ConfigReloads); n != 2 {
		t.Errorf("hopguard_config_reloads_total has %d series, want 2", n)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestNew_Errors(t *testing.T) {
	if _, err := New(nil, BuildInfo{}); err == nil {
		t.Error("New(nil) succeeded")
	}
	reg := prometheus.NewRegistry()
	if _, err := New(reg, BuildInfo{}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg, BuildInfo{}); err == nil {
		t.Error("registering twice on one registry succeeded")
	}
}

// TestNodeHooks_Scrape checks that a scrape runs the refresh hook before it
// reads hopguard_xds_nodes (so the hook's changes are in the same scrape),
// and reports hopguard_manifest_drift as the drift source says.
func TestNodeHooks_Scrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, BuildInfo{})
	if err != nil {
		t.Fatal(err)
	}
	drifted := 0
	m.SetNodesRefresh(func() {
		drifted++
		m.XDSNodes.WithLabelValues(StateDrifted).Set(float64(drifted))
	})
	m.SetDriftSource(func() []NodeDrift {
		return []NodeDrift{
			{Node: "a-1", Service: "a", Region: "eu", Drifted: true},
			{Node: "b-1", Service: "b"},
		}
	})
	want := `
# HELP hopguard_manifest_drift 1 for a node that does not run the configuration it was sent (it NACKed it, or has not acknowledged it within the drift grace period), else 0.
# TYPE hopguard_manifest_drift gauge
hopguard_manifest_drift{node="a-1",region="eu",service="a"} 1
hopguard_manifest_drift{node="b-1",region="",service="b"} 0
# HELP hopguard_signing_enabled 1 when distributed policy is signed, 0 when it is not.
# TYPE hopguard_signing_enabled gauge
hopguard_signing_enabled 0
# HELP hopguard_xds_nodes Connected xDS nodes by state (acked, nacked, pending, drifted).
# TYPE hopguard_xds_nodes gauge
hopguard_xds_nodes{state="acked"} 0
hopguard_xds_nodes{state="drifted"} 1
hopguard_xds_nodes{state="nacked"} 0
hopguard_xds_nodes{state="pending"} 0
`
	names := []string{"hopguard_manifest_drift", "hopguard_signing_enabled", "hopguard_xds_nodes"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Errorf("first scrape: %v", err)
	}
	// Each scrape refreshes again: the second one sees the hook's second run.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(strings.Replace(want,
		`hopguard_xds_nodes{state="drifted"} 1`, `hopguard_xds_nodes{state="drifted"} 2`, 1)), names...); err != nil {
		t.Errorf("second scrape: %v", err)
	}

	m.SetDriftSource(nil)
	m.SetNodesRefresh(nil)
	if n, err := testutil.GatherAndCount(reg, "hopguard_manifest_drift"); err != nil || n != 0 {
		t.Errorf("without a drift source: %d series (err %v), want 0", n, err)
	}
}
