package xds

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	eu := Locality{Region: "eu-west-1", Zone: "a"}
	us := Locality{Region: "us-east-1", Zone: "b"}
	nodes := []NodeStatus{
		{ID: "n1", Connected: true, Locality: eu, Acked: map[string]string{"listener": "v2", "route": "v2"}},
		{ID: "n2", Connected: true, Locality: eu, Acked: map[string]string{"listener": "v2"}},
		{ID: "n3", Connected: true, Locality: us, Drifted: true, Quarantined: true, Acked: map[string]string{"listener": "v1", "route": "v1"}},
		{ID: "n4", Connected: true, Locality: us, Acked: map[string]string{"listener": "v2", "route": "v1"}},
		{ID: "n5", Connected: true, Locality: us, Drifted: true, Acked: map[string]string{}},
		{ID: "gone", Connected: false, Locality: eu, Drifted: true, Acked: map[string]string{"listener": "v0"}},
	}
	want := []LocalitySummary{
		{Region: "eu-west-1", Zone: "a", Nodes: 2, Running: map[string]int{"v2": 2}, DriftedNodes: []string{}},
		{Region: "us-east-1", Zone: "b", Nodes: 3, Drifted: 2, Quarantined: 1,
			Running: map[string]int{"v1": 1, RunningMixed: 1, RunningNone: 1}, DriftedNodes: []string{"n3", "n5"}},
	}
	if diff := cmp.Diff(Summarize(nodes), want); diff != "" {
		t.Errorf("Summarize (-got +want):\n%s", diff)
	}
}
