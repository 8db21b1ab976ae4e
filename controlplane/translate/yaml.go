package translate

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	// Registered for protojson to resolve the Any types the translator
	// writes; each is also imported where it is built.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/grpc_service/channel_credentials/insecure/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// Section names, in the order YAML renders them.
const (
	SectionListeners = "listeners"
	SectionRoutes    = "routes"
	SectionClusters  = "clusters"
	SectionEndpoints = "endpoints"
)

// Section is one resource type's part of Resources.
type Section struct {
	// Name is one of the Section* constants.
	Name string
	// Resources are the section's resources, sorted by name.
	Resources []types.Resource
}

// Sections returns r's parts in rendering order: listeners, routes,
// clusters, endpoints. The slices are r's own.
func (r *Resources) Sections() []Section {
	return []Section{
		{SectionListeners, r.Listeners},
		{SectionRoutes, r.Routes},
		{SectionClusters, r.Clusters},
		{SectionEndpoints, r.Endpoints},
	}
}

// YAML renders every section as one YAML document with the top-level keys
// listeners, routes, clusters and endpoints, in that order. Messages use
// their proto JSON field names; keys inside them are sorted, so equal
// resources render to equal bytes.
func (r *Resources) YAML() ([]byte, error) {
	var buf bytes.Buffer
	for _, s := range r.Sections() {
		b, err := RenderSectionYAML(s.Name, s.Resources)
		if err != nil {
			return nil, err
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// RenderSectionYAML renders resources as a YAML document with the single
// key name whose value is the list of resources ("name: []" when empty).
func RenderSectionYAML(name string, resources []types.Resource) ([]byte, error) {
	list, err := ResourcesJSON(resources)
	if err != nil {
		return nil, err
	}
	out, err := yaml.Marshal(map[string]any{name: list})
	if err != nil {
		return nil, fmt.Errorf("translate: rendering %s: %w", name, err)
	}
	return out, nil
}

// ResourcesJSON converts resources to generic JSON values (proto JSON
// mapping, Any types resolved), ready for YAML or JSON encoding.
func ResourcesJSON(resources []types.Resource) ([]any, error) {
	list := make([]any, 0, len(resources))
	for _, res := range resources {
		// Proto field names (snake_case) match Envoy's docs and config_dump.
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(res)
		if err != nil {
			return nil, fmt.Errorf("translate: rendering %s: %w", proto.MessageName(res), err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("translate: rendering %s: %w", proto.MessageName(res), err)
		}
		list = append(list, v)
	}
	return list, nil
}
