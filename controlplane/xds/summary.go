package xds

import (
	"cmp"
	"slices"
)

// LocalitySummary sums up the connected nodes of one region and zone: how
// many there are, how many drifted, and which configuration versions they
// run, so "it behaves differently in one region" is answered by comparing
// the versions of two rows.
type LocalitySummary struct {
	// Region and Zone are the nodes' reported locality ("" when unset).
	Region string `json:"region"`
	Zone   string `json:"zone"`
	// Nodes counts connected nodes.
	Nodes int `json:"nodes"`
	// Drifted counts connected nodes that do not run what they were sent.
	Drifted int `json:"drifted"`
	// Quarantined counts connected nodes whose endpoint is drained.
	Quarantined int `json:"quarantined"`
	// Running maps a version a node runs (its acknowledged version, when
	// every type it asked for is at the same one; "mixed" otherwise; "none"
	// before its first ACK) to the number of nodes running it.
	Running map[string]int `json:"running"`
	// DriftedNodes lists the ids of the drifted nodes.
	DriftedNodes []string `json:"driftedNodes"`
}

// Running version placeholders of LocalitySummary.Running.
const (
	RunningMixed = "mixed"
	RunningNone  = "none"
)

// Summarize groups the connected nodes by region and zone, sorted.
func Summarize(nodes []NodeStatus) []LocalitySummary {
	type key struct{ region, zone string }
	rows := map[key]*LocalitySummary{}
	for _, n := range nodes {
		if !n.Connected {
			continue
		}
		k := key{n.Locality.Region, n.Locality.Zone}
		r := rows[k]
		if r == nil {
			r = &LocalitySummary{Region: k.region, Zone: k.zone, Running: map[string]int{}, DriftedNodes: []string{}}
			rows[k] = r
		}
		r.Nodes++
		if n.Drifted {
			r.Drifted++
			r.DriftedNodes = append(r.DriftedNodes, n.ID)
		}
		if n.Quarantined {
			r.Quarantined++
		}
		r.Running[runningVersion(n.Acked)]++
	}
	out := make([]LocalitySummary, 0, len(rows))
	for _, r := range rows {
		slices.Sort(r.DriftedNodes)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b LocalitySummary) int {
		return cmp.Or(cmp.Compare(a.Region, b.Region), cmp.Compare(a.Zone, b.Zone))
	})
	return out
}

func runningVersion(acked map[string]string) string {
	v := ""
	for _, a := range acked {
		switch {
		case v == "":
			v = a
		case a != v:
			return RunningMixed
		}
	}
	if v == "" {
		return RunningNone
	}
	return v
}
