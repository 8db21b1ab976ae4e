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
