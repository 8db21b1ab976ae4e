// Package configdump compares a real Envoy's /config_dump with what the
// control plane would serve that node: per resource, missing, unexpected or
// different, with the differing fields.
//
// Only the dynamic (xDS-delivered) listeners, route configurations,
// clusters and endpoint assignments are compared; static bootstrap
// resources are ignored unless one carries the name of a resource the
// control plane serves, which is reported.
package configdump

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hopguard/hopguard/controlplane/translate"
)

// Resource type names, as in the report.
const (
	TypeListener = "listener"
	TypeRoute    = "route"
	TypeCluster  = "cluster"
	TypeEndpoint = "endpoint"
)

// ErrBadDump is wrapped by Parse's errors.
var ErrBadDump = errors.New("configdump: bad config dump")

// Resource is one resource found in a dump.
type Resource struct {
	// Message is the resource; nil when it could not be decoded (Problem says why).
	Message proto.Message
	// Version is the version_info Envoy reports for it.
	Version string
	// Static is true for bootstrap resources.
	Static bool
	// Problem says why Message is nil.
	Problem string
}

// Dump is the part of an Envoy config dump that xDS delivers.
type Dump struct {
	// NodeID and Cluster come from the bootstrap section.
	NodeID, Cluster string
	// Resources maps type → name → resource.
	Resources map[string]map[string]Resource
	// Skipped lists config sections that are not compared (by @type).
	Skipped []string
}

// Parse reads a config dump (Envoy admin /config_dump JSON, with or without
// ?include_eds).
func Parse(raw []byte) (*Dump, error) {
	var top struct {
		Configs []json.RawMessage `json:"configs"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadDump, err)
	}
	if top.Configs == nil {
		return nil, fmt.Errorf("%w: no \"configs\" array (is this /config_dump output?)", ErrBadDump)
	}
	d := &Dump{Resources: map[string]map[string]Resource{}}
	for i, c := range top.Configs {
		var head struct {
			Type string `json:"@type"`
		}
		if err := json.Unmarshal(c, &head); err != nil {
			return nil, fmt.Errorf("%w: configs[%d]: %w", ErrBadDump, i, err)
		}
		var err error
		switch strings.TrimPrefix(head.Type, "type.googleapis.com/") {
		case "envoy.admin.v3.BootstrapConfigDump":
			err = d.bootstrap(c)
		case "envoy.admin.v3.ListenersConfigDump":
			err = d.listeners(c)
		case "envoy.admin.v3.RoutesConfigDump":
			err = d.routes(c)
		case "envoy.admin.v3.ClustersConfigDump":
			err = d.clusters(c)
		case "envoy.admin.v3.EndpointsConfigDump":
			err = d.endpoints(c)
		default:
			d.Skipped = append(d.Skipped, head.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: configs[%d] (%s): %w", ErrBadDump, i, head.Type, err)
		}
	}
	return d, nil
}

// unmarshal decodes one section, discarding unknown fields (newer Envoys
// add some) but not unknown types.
func unmarshal(raw []byte, m proto.Message) error {
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(raw, m)
}

// add records a resource. Sections are read as plain JSON and each
// resource decoded on its own, so one resource of a type this build does
// not know is reported as undecodable without spoiling the others.
func (d *Dump) add(typ, name string, r Resource) {
	if d.Resources[typ] == nil {
		d.Resources[typ] = map[string]Resource{}
	}
	d.Resources[typ][name] = r
}

func (d *Dump) bootstrap(raw []byte) error {
	var b adminv3.BootstrapConfigDump
	if err := unmarshal(raw, &b); err != nil {
		// The bootstrap may name extensions this build does not know; only
		// the node matters here.
		var loose struct {
			Bootstrap struct {
				Node struct {
					ID      string `json:"id"`
					Cluster string `json:"cluster"`
				} `json:"node"`
			} `json:"bootstrap"`
		}
		if jerr := json.Unmarshal(raw, &loose); jerr != nil {
			return err
		}
		d.NodeID, d.Cluster = loose.Bootstrap.Node.ID, loose.Bootstrap.Node.Cluster
		return nil
	}
	d.NodeID, d.Cluster = b.GetBootstrap().GetNode().GetId(), b.GetBootstrap().GetNode().GetCluster()
	return nil
}

// decodeAny decodes one Any-wrapped resource into m.
func decodeAny(raw json.RawMessage, m proto.Message) (proto.Message, string) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, "no resource in the entry"
	}
	var a anypb.Any
	if err := protojson.Unmarshal(raw, &a); err != nil {
		return nil, "cannot decode: " + err.Error()
	}
	if err := a.UnmarshalTo(m); err != nil {
		return nil, "cannot decode: " + err.Error()
	}
	return m, ""
}

func (d *Dump) listeners(raw []byte) error {
	var s struct {
		Static []struct {
			Listener json.RawMessage `json:"listener"`
		} `json:"static_listeners"`
		Dynamic []struct {
			Name   string `json:"name"`
			Active *struct {
				Version  string          `json:"version_info"`
				Listener json.RawMessage `json:"listener"`
			} `json:"active_state"`
		} `json:"dynamic_listeners"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	for _, st := range s.Static {
		m, problem := decodeAny(st.Listener, &listenerv3.Listener{})
		d.addStatic(TypeListener, m, problem, func(m proto.Message) string { return m.(*listenerv3.Listener).GetName() })
	}
	for _, dl := range s.Dynamic {
		if dl.Active == nil { // warming or draining only: not in force
			continue
		}
		m, problem := decodeAny(dl.Active.Listener, &listenerv3.Listener{})
		d.add(TypeListener, dl.Name, Resource{Message: m, Version: dl.Active.Version, Problem: problem})
	}
	return nil
}

func (d *Dump) routes(raw []byte) error {
	var s struct {
		Static []struct {
			Route json.RawMessage `json:"route_config"`
		} `json:"static_route_configs"`
		Dynamic []struct {
			Version string          `json:"version_info"`
			Route   json.RawMessage `json:"route_config"`
		} `json:"dynamic_route_configs"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	name := func(m proto.Message) string { return m.(*routev3.RouteConfiguration).GetName() }
	for _, st := range s.Static {
		m, problem := decodeAny(st.Route, &routev3.RouteConfiguration{})
		d.addStatic(TypeRoute, m, problem, name)
	}
	for i, dr := range s.Dynamic {
		m, problem := decodeAny(dr.Route, &routev3.RouteConfiguration{})
		n := fmt.Sprintf("(undecodable route configuration %d)", i)
		if m != nil {
			n = name(m)
		}
		d.add(TypeRoute, n, Resource{Message: m, Version: dr.Version, Problem: problem})
	}
	return nil
}

func (d *Dump) clusters(raw []byte) error {
	var s struct {
		Static []struct {
			Cluster json.RawMessage `json:"cluster"`
		} `json:"static_clusters"`
		Dynamic []struct {
			Version string          `json:"version_info"`
			Cluster json.RawMessage `json:"cluster"`
		} `json:"dynamic_active_clusters"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	name := func(m proto.Message) string { return m.(*clusterv3.Cluster).GetName() }
	for _, st := range s.Static {
		m, problem := decodeAny(st.Cluster, &clusterv3.Cluster{})
		d.addStatic(TypeCluster, m, problem, name)
	}
	for i, dc := range s.Dynamic {
		m, problem := decodeAny(dc.Cluster, &clusterv3.Cluster{})
		n := fmt.Sprintf("(undecodable cluster %d)", i)
		if m != nil {
			n = name(m)
		}
		d.add(TypeCluster, n, Resource{Message: m, Version: dc.Version, Problem: problem})
	}
	return nil
}

func (d *Dump) endpoints(raw []byte) error {
	var s struct {
		Static []struct {
			Endpoint json.RawMessage `json:"endpoint_config"`
		} `json:"static_endpoint_configs"`
		Dynamic []struct {
			Version  string          `json:"version_info"`
			Endpoint json.RawMessage `json:"endpoint_config"`
		} `json:"dynamic_endpoint_configs"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	name := func(m proto.Message) string { return m.(*endpointv3.ClusterLoadAssignment).GetClusterName() }
	for _, st := range s.Static {
		m, problem := decodeAny(st.Endpoint, &endpointv3.ClusterLoadAssignment{})
		d.addStatic(TypeEndpoint, m, problem, name)
	}
	for i, de := range s.Dynamic {
		m, problem := decodeAny(de.Endpoint, &endpointv3.ClusterLoadAssignment{})
		n := fmt.Sprintf("(undecodable endpoints %d)", i)
		if m != nil {
			n = name(m)
		}
		d.add(TypeEndpoint, n, Resource{Message: m, Version: de.Version, Problem: problem})
	}
	return nil
}

// addStatic records a static resource under "static:" + name, so it only
// meets an expected resource when compared explicitly.
func (d *Dump) addStatic(typ string, m proto.Message, problem string, name func(proto.Message) string) {
	if m == nil {
		return
	}
	d.add(typ, "static:"+name(m), Resource{Message: m, Static: true, Problem: problem})
}

// Status of a resource in a comparison.
const (
	StatusMissing    = "missing"    // served by the control plane, absent from the dump
	StatusUnexpected = "unexpected" // in the dump, not served by the control plane
	StatusDifferent  = "different"
	StatusStatic     = "static-collision" // a static resource has the name of a served one
	StatusUndecoded  = "undecodable"
)

// Difference is one resource that does not match.
type Difference struct {
	Type   string `json:"type"`
	Name   string `json:"name"`
	Status string `json:"status"`
	// Diff is the field-level difference (-expected +dump) for different resources.
	Diff string `json:"diff,omitempty"`
}

// Report is a comparison's outcome.
type Report struct {
	NodeID  string `json:"node"`
	Service string `json:"service"`
	// ExpectedVersion is the version the control plane would serve.
	ExpectedVersion string `json:"expectedVersion"`
	// DumpVersions maps a type to the version_info values the dump reports for it.
	DumpVersions map[string][]string `json:"dumpVersions"`
	// Differences lists every resource that does not match, sorted by type and name.
	Differences []Difference `json:"differences"`
	// Compared counts the resources compared.
	Compared int `json:"compared"`
	// Skipped lists dump sections not compared.
	Skipped []string `json:"skipped,omitempty"`
}

// Drifted reports whether anything differs.
func (r *Report) Drifted() bool {
	if len(r.Differences) > 0 {
		return true
	}
	for _, vs := range r.DumpVersions {
		for _, v := range vs {
			if v != r.ExpectedVersion {
				return true
			}
		}
	}
	return false
}

// Compare compares d with want, the resources the control plane would
// serve, whose snapshot version is version.
func Compare(d *Dump, want *translate.Resources, version string) *Report {
	r := &Report{NodeID: d.NodeID, Service: d.Cluster, ExpectedVersion: version, DumpVersions: map[string][]string{},
		Differences: []Difference{}, Skipped: d.Skipped}
	for _, g := range []struct {
		typ string
		res []types.Resource
	}{{TypeListener, want.Listeners}, {TypeRoute, want.Routes}, {TypeCluster, want.Clusters}, {TypeEndpoint, want.Endpoints}} {
		got := d.Resources[g.typ]
		seen := map[string]bool{}
		versions := map[string]bool{}
		for _, res := range g.res {
			name := resourceName(res)
			seen[name] = true
			if _, ok := got["static:"+name]; ok {
				r.Differences = append(r.Differences, Difference{Type: g.typ, Name: name, Status: StatusStatic})
			}
			have, ok := got[name]
			switch {
			case !ok:
				r.Differences = append(r.Differences, Difference{Type: g.typ, Name: name, Status: StatusMissing})
				continue
			case have.Message == nil:
				r.Differences = append(r.Differences, Difference{Type: g.typ, Name: name, Status: StatusUndecoded, Diff: have.Problem})
				continue
			}
			versions[have.Version] = true
			r.Compared++
			if diff := cmp.Diff(res, have.Message, protocmp.Transform()); diff != "" {
				r.Differences = append(r.Differences, Difference{Type: g.typ, Name: name, Status: StatusDifferent, Diff: diff})
			}
		}
		for name, have := range got {
			if have.Static || seen[name] {
				continue
			}
			st := StatusUnexpected
			if have.Message == nil {
				st = StatusUndecoded
			}
			r.Differences = append(r.Differences, Difference{Type: g.typ, Name: name, Status: st, Diff: have.Problem})
		}
		for v := range versions {
			r.DumpVersions[g.typ] = append(r.DumpVersions[g.typ], v)
		}
		slices.Sort(r.DumpVersions[g.typ])
	}
	slices.SortFunc(r.Differences, func(a, b Difference) int {
		return strings.Compare(a.Type+"\x00"+a.Name, b.Type+"\x00"+b.Name)
	})
	return r
}

func resourceName(r types.Resource) string {
	switch m := r.(type) {
	case *endpointv3.ClusterLoadAssignment:
		return m.GetClusterName()
	case interface{ GetName() string }:
		return m.GetName()
	}
	return ""
}

// Encode writes res as an Envoy admin /config_dump would show it for a node
// running it at version: a bootstrap section naming the node, then the
// dynamic listeners, route configurations, clusters and endpoints (snake
// case field names, as Envoy prints them). It is the inverse of Parse for
// the parts Parse reads; tests and dry runs use it.
func Encode(nodeID, cluster string, res *translate.Resources, version string) ([]byte, error) {
	wrap := func(m proto.Message) (*anypb.Any, error) { return anypb.New(m) }
	var errs []error
	must := func(a *anypb.Any, err error) *anypb.Any {
		errs = append(errs, err)
		return a
	}
	boot := &adminv3.BootstrapConfigDump{Bootstrap: &bootstrapv3.Bootstrap{Node: &corev3.Node{Id: nodeID, Cluster: cluster}}}
	ls := &adminv3.ListenersConfigDump{VersionInfo: version}
	for _, r := range res.Listeners {
		l := r.(*listenerv3.Listener)
		ls.DynamicListeners = append(ls.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: l.GetName(), ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: version, Listener: must(wrap(l))},
		})
	}
	rs := &adminv3.RoutesConfigDump{}
	for _, r := range res.Routes {
		rs.DynamicRouteConfigs = append(rs.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: version, RouteConfig: must(wrap(r))})
	}
	cs := &adminv3.ClustersConfigDump{VersionInfo: version}
	for _, r := range res.Clusters {
		cs.DynamicActiveClusters = append(cs.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: version, Cluster: must(wrap(r))})
	}
	es := &adminv3.EndpointsConfigDump{}
	for _, r := range res.Endpoints {
		es.DynamicEndpointConfigs = append(es.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: version, EndpointConfig: must(wrap(r))})
	}
	dump := &adminv3.ConfigDump{}
	for _, m := range []proto.Message{boot, ls, rs, cs, es} {
		dump.Configs = append(dump.Configs, must(wrap(m)))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("configdump: encode: %w", err)
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(dump)
	if err != nil {
		return nil, fmt.Errorf("configdump: encode: %w", err)
	}
	return b, nil
}
