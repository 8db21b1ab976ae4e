package deploy

import (
	"bufio"
	"bytes"
	stdcmp "cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/bootstrap"
)

// updateCRDs rewrites deploy/kubernetes/crds from the JSON Schema:
//
//	go test ./deploy -run KubernetesCRDs -update-crds
var updateCRDs = flag.Bool("update-crds", false, "rewrite deploy/kubernetes/crds/*.yaml from api/v1alpha1/schema/hopguard.schema.json")

const (
	k8sDir          = "kubernetes"
	jsonSchemaPath  = "../api/v1alpha1/schema/hopguard.schema.json"
	shopBudgets     = "../examples/shop/config/budgets.yaml"
	controlPlaneApp = "hopguard"
	crdGroup        = "hopguard.dev"
	crdVersion      = "v1alpha1"
)

// crdKind names one CustomResourceDefinition and where it is committed.
type crdKind struct {
	kind, plural, short string
}

// crdKinds are the three kinds, in the order of the JSON Schema.
func crdKinds() []crdKind {
	return []crdKind{
		{kind: "Service", plural: "services", short: "hgsvc"},
		{kind: "RouteBudget", plural: "routebudgets", short: "hgrb"},
		{kind: "MeshConfig", plural: "meshconfigs", short: "hgmc"},
	}
}

func (k crdKind) file() string {
	return filepath.Join(k8sDir, "crds", crdGroup+"_"+k.plural+".yaml")
}

// manifest is one decoded document of a manifest file.
type manifest struct {
	file string
	doc  int
	obj  any // a pointer to a typed Kubernetes object
}

// kustomization is the part of kustomize's Kustomization these manifests
// use; strict decoding rejects any other field, so a typo cannot hide.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels,omitempty"`
	GeneratorOptions *struct {
		DisableNameSuffixHash bool `json:"disableNameSuffixHash"`
	} `json:"generatorOptions,omitempty"`
	ConfigMapGenerator []struct {
		Name  string   `json:"name"`
		Files []string `json:"files"`
	} `json:"configMapGenerator,omitempty"`
}

// built is what `kustomize build DIR` would produce, as far as these tests
// need: the typed objects with the kustomization's namespace applied, the
// generated ConfigMaps (name → the files of their keys) and every file the
// build read.
type built struct {
	manifests  []manifest
	configMaps map[string][]string
	files      []string
}

// newObject returns an empty typed object for apiVersion and kind.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + "/" + kind {
	case "v1/Namespace":
		return &corev1.Namespace{}, nil
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1/Service":
		return &corev1.Service{}, nil
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, nil
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "rbac.authorization.k8s.io/v1/Role":
		return &rbacv1.Role{}, nil
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		return &rbacv1.RoleBinding{}, nil
	case "apiextensions.k8s.io/v1/CustomResourceDefinition":
		return &apiextensionsv1.CustomResourceDefinition{}, nil
	}
	return nil, fmt.Errorf("deploy: no Go type for apiVersion %q kind %q", apiVersion, kind)
}

// decodeManifests strictly decodes every YAML document of file into its
// Kubernetes API type.
func decodeManifests(file string) ([]manifest, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []manifest
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("deploy: %s: %w", file, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("deploy: %s document %d: %w", file, i, err)
		}
		obj, err := newObject(tm.APIVersion, tm.Kind)
		if err != nil {
			return nil, fmt.Errorf("deploy: %s document %d: %w", file, i, err)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("deploy: %s document %d (%s): %w", file, i, tm.Kind, err)
		}
		out = append(out, manifest{file: file, doc: i, obj: obj})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("deploy: %s holds no manifest", file)
	}
	return out, nil
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for line := range strings.SplitSeq(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.Bytes()
}

// build follows the kustomization in dir like `kustomize build` would:
// resources (files or directories with a kustomization), the namespace
// transformer (namespaced kinds only) and ConfigMap generators.
func build(dir string) (*built, error) {
	kfile := filepath.Join(dir, "kustomization.yaml")
	data, err := os.ReadFile(kfile)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		return nil, fmt.Errorf("deploy: %s: %w", kfile, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return nil, fmt.Errorf("deploy: %s: apiVersion %q kind %q, want kustomize.config.k8s.io/v1beta1 Kustomization", kfile, k.APIVersion, k.Kind)
	}
	b := &built{configMaps: map[string][]string{}, files: []string{kfile}}
	var errs []error
	for _, res := range k.Resources {
		p := filepath.Join(dir, res)
		fi, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("deploy: %s: resource %s: %w", kfile, res, err))
			continue
		}
		if fi.IsDir() {
			sub, err := build(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			b.manifests = append(b.manifests, sub.manifests...)
			b.files = append(b.files, sub.files...)
			for name, files := range sub.configMaps {
				b.configMaps[name] = files
			}
			continue
		}
		ms, err := decodeManifests(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b.manifests = append(b.manifests, ms...)
		b.files = append(b.files, p)
	}
	for _, g := range k.ConfigMapGenerator {
		var files []string
		for _, f := range g.Files {
			p := filepath.Join(dir, f)
			if _, err := os.Stat(p); err != nil {
				errs = append(errs, fmt.Errorf("deploy: %s: configMapGenerator %s: %w", kfile, g.Name, err))
			}
			if filepath.IsAbs(f) || strings.HasPrefix(filepath.Clean(f), "..") {
				errs = append(errs, fmt.Errorf("deploy: %s: configMapGenerator %s: file %s is outside the kustomization root, which kustomize refuses", kfile, g.Name, f))
			}
			files = append(files, p)
		}
		b.configMaps[g.Name] = files
		b.files = append(b.files, files...)
	}
	if k.Namespace != "" {
		for _, m := range b.manifests {
			if o, ok := m.obj.(interface{ SetNamespace(string) }); ok && namespaced(m.obj) {
				o.SetNamespace(k.Namespace)
			}
		}
	}
	return b, errors.Join(errs...)
}

func namespaced(obj any) bool {
	switch obj.(type) {
	case *corev1.Namespace, *apiextensionsv1.CustomResourceDefinition:
		return false
	}
	return true
}

func mustBuild(t *testing.T, dir string) *built {
	t.Helper()
	b, err := build(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func objects[T any](b *built) []T {
	var out []T
	for _, m := range b.manifests {
		if o, ok := m.obj.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

// jsonSchemaDefs returns the $defs of hopguard's JSON Schema.
func jsonSchemaDefs(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(jsonSchemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Defs map[string]any `json:"$defs"`
	}
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("%s: %v", jsonSchemaPath, err)
	}
	return s.Defs
}

// schemaConverter turns hopguard's JSON Schema (draft 2020-12) into a
// structural OpenAPI v3 schema as the API server accepts it: $ref inlined,
// const as a one-value enum, every node typed, additionalProperties: false
// dropped (the API server prunes unknown fields instead), uniqueItems on
// string lists as x-kubernetes-list-type: set, and an integer-or-string
// anyOf as x-kubernetes-int-or-string. A keyword it does not know is an
// error, so a schema change it cannot carry fails the test.
type schemaConverter struct {
	defs map[string]any
}

func (c schemaConverter) convert(path string, node map[string]any) (apiextensionsv1.JSONSchemaProps, error) {
	return c.convertAt(path, node, false)
}

// convertAt converts node; alt says it is an alternative of oneOf or
// anyOf, which holds value validations only and so needs no type.
func (c schemaConverter) convertAt(path string, node map[string]any, alt bool) (apiextensionsv1.JSONSchemaProps, error) {
	var p apiextensionsv1.JSONSchemaProps
	if ref, ok := node["$ref"].(string); ok {
		name, found := strings.CutPrefix(ref, "#/$defs/")
		target, ok := c.defs[name].(map[string]any)
		if !found || !ok {
			return p, fmt.Errorf("deploy: %s: unresolvable $ref %q", path, ref)
		}
		merged := map[string]any{}
		for k, v := range target {
			merged[k] = v
		}
		for k, v := range node {
			if k != "$ref" {
				merged[k] = v
			}
		}
		return c.convertAt(path, merged, alt)
	}
	var errs []error
	for key, v := range node {
		switch key {
		case "description":
			p.Description = v.(string)
		case "title":
		case "type":
			p.Type = v.(string)
		case "pattern":
			p.Pattern = v.(string)
		case "maxLength":
			n := int64(v.(float64))
			p.MaxLength = &n
		case "minItems":
			n := int64(v.(float64))
			p.MinItems = &n
		case "maxItems":
			n := int64(v.(float64))
			p.MaxItems = &n
		case "minimum":
			n := v.(float64)
			p.Minimum = &n
		case "maximum":
			n := v.(float64)
			p.Maximum = &n
		case "const":
			p.Enum = append(p.Enum, jsonValue(v))
			p.Type = stdcmp.Or(p.Type, jsonType(v))
		case "enum":
			types := map[string]bool{}
			for _, e := range v.([]any) {
				p.Enum = append(p.Enum, jsonValue(e))
				types[jsonType(e)] = true
			}
			if len(types) != 1 {
				errs = append(errs, fmt.Errorf("deploy: %s: enum of mixed types", path))
			}
			for ty := range types {
				p.Type = stdcmp.Or(p.Type, ty)
			}
		case "required":
			for _, r := range v.([]any) {
				p.Required = append(p.Required, r.(string))
			}
			sort.Strings(p.Required)
		case "properties":
			p.Properties = map[string]apiextensionsv1.JSONSchemaProps{}
			for name, sub := range v.(map[string]any) {
				s, err := c.convert(path+"."+name, sub.(map[string]any))
				errs = append(errs, err)
				p.Properties[name] = s
			}
		case "additionalProperties":
			switch a := v.(type) {
			case bool:
				if a {
					errs = append(errs, fmt.Errorf("deploy: %s: additionalProperties: true is not structural", path))
				}
			case map[string]any:
				s, err := c.convert(path+"[*]", a)
				errs = append(errs, err)
				p.AdditionalProperties = &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: &s}
			}
		case "items":
			s, err := c.convert(path+"[]", v.(map[string]any))
			errs = append(errs, err)
			p.Items = &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &s}
		case "uniqueItems", "oneOf", "anyOf":
			// Handled below, once the node's other keywords are known.
		default:
			errs = append(errs, fmt.Errorf("deploy: %s: JSON Schema keyword %q has no conversion", path, key))
		}
	}
	if one, ok := node["oneOf"].([]any); ok {
		for i, alt := range one {
			s, err := c.convertAt(fmt.Sprintf("%s.oneOf[%d]", path, i), alt.(map[string]any), true)
			errs = append(errs, err)
			if s.Type != "" || s.Properties != nil {
				errs = append(errs, fmt.Errorf("deploy: %s.oneOf[%d]: only value validations may be alternatives", path, i))
			}
			p.OneOf = append(p.OneOf, s)
		}
	}
	if anyOf, ok := node["anyOf"].([]any); ok {
		types := map[string]bool{}
		var alts []apiextensionsv1.JSONSchemaProps
		for i, alt := range anyOf {
			s, err := c.convertAt(fmt.Sprintf("%s.anyOf[%d]", path, i), alt.(map[string]any), true)
			errs = append(errs, err)
			types[s.Type] = true
			s.Type, s.Description = "", ""
			alts = append(alts, s)
		}
		switch {
		case len(types) == 1 && types["string"]:
			p.Type = "string"
			p.AnyOf = alts
		case len(types) == 2 && types["string"] && types["integer"]:
			// The API server allows only the bare type alternatives with
			// x-kubernetes-int-or-string; hopguard's own validation
			// checks the values.
			p.XIntOrString = true
			p.AnyOf = []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}}
		default:
			errs = append(errs, fmt.Errorf("deploy: %s: anyOf over types %v has no structural form", path, slices.Sorted(keys(types))))
		}
	}
	if u, _ := node["uniqueItems"].(bool); u && p.Items != nil && p.Items.Schema.Type == "string" {
		set := "set"
		p.XListType = &set
	}
	if p.Type == "" && !p.XIntOrString && !alt {
		errs = append(errs, fmt.Errorf("deploy: %s: no type", path))
	}
	return p, errors.Join(errs...)
}

func keys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func jsonValue(v any) apiextensionsv1.JSON {
	raw, _ := json.Marshal(v) // v came from json.Unmarshal: always marshals
	return apiextensionsv1.JSON{Raw: raw}
}

func jsonType(v any) string {
	switch n := v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		if n == float64(int64(n)) {
			return "integer"
		}
		return "number"
	}
	return ""
}

// wantCRD is the CustomResourceDefinition of k, its schema converted from
// the JSON Schema's definition of the kind.
func wantCRD(t *testing.T, defs map[string]any, k crdKind) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	def := defs[k.kind].(map[string]any)
	spec, err := schemaConverter{defs: defs}.convert(k.kind+".spec", map[string]any{"$ref": "#/$defs/" + k.kind + "Spec", "description": def["properties"].(map[string]any)["spec"].(map[string]any)["description"]})
	if err != nil {
		t.Fatal(err)
	}
	var required []string
	if slices.Contains(anyStrings(def["required"]), "spec") {
		required = []string{"spec"}
	}
	crd := &apiextensionsv1.CustomResourceDefinition{
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: crdGroup,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Kind:       k.kind,
				ListKind:   k.kind + "List",
				Plural:     k.plural,
				Singular:   strings.ToLower(k.kind),
				ShortNames: []string{k.short},
				Categories: []string{"hopguard"},
			},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name:    crdVersion,
				Served:  true,
				Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type:        "object",
					Description: def["description"].(string),
					Required:    required,
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"apiVersion": {Type: "string", Description: "APIVersion is " + crdGroup + "/" + crdVersion + "."},
						"kind":       {Type: "string", Description: "Kind is " + k.kind + "."},
						"metadata":   {Type: "object"},
						"spec":       spec,
					},
				}},
			}},
		},
	}
	crd.APIVersion = "apiextensions.k8s.io/v1"
	crd.Kind = "CustomResourceDefinition"
	crd.Name = k.plural + "." + crdGroup
	crd.Labels = map[string]string{"app.kubernetes.io/name": "hopguard"}
	return crd
}

func anyStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

// crdYAML renders crd as committed: without status and the empty creation
// timestamp the Go types carry, with a header saying where it comes from.
func crdYAML(crd *apiextensionsv1.CustomResourceDefinition) ([]byte, error) {
	j, err := json.Marshal(crd)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	delete(m, "status")
	delete(m["metadata"].(map[string]any), "creationTimestamp")
	y, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	header := "# Generated from api/v1alpha1/schema/hopguard.schema.json; do not edit.\n" +
		"# Regenerate: go test ./deploy -run KubernetesCRDs -update-crds\n"
	return append([]byte(header), y...), nil
}

func TestKubernetesCRDsMatchJSONSchema(t *testing.T) {
	defs := jsonSchemaDefs(t)
	for _, k := range crdKinds() {
		t.Run(k.kind, func(t *testing.T) {
			want := wantCRD(t, defs, k)
			if *updateCRDs {
				y, err := crdYAML(want)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(k.file(), y, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ms, err := decodeManifests(k.file())
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != 1 {
				t.Fatalf("%s holds %d documents, want 1", k.file(), len(ms))
			}
			got, ok := ms[0].obj.(*apiextensionsv1.CustomResourceDefinition)
			if !ok {
				t.Fatalf("%s holds a %T, want a CustomResourceDefinition", k.file(), ms[0].obj)
			}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("%s differs from the JSON Schema (-got +want); regenerate with -update-crds:\n%s", k.file(), diff)
			}
			// Independently of the converter: the field names at every
			// level of spec are the JSON Schema's.
			spec := got.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
			gotFields := crdFieldPaths("spec", spec)
			wantFields := jsonSchemaFieldPaths(t, defs, "spec", map[string]any{"$ref": "#/$defs/" + k.kind + "Spec"})
			if diff := cmp.Diff(gotFields, wantFields); diff != "" {
				t.Errorf("%s: spec field paths (-got +want):\n%s", k.file(), diff)
			}
		})
	}
}

// crdFieldPaths lists every property path under p, sorted.
func crdFieldPaths(path string, p apiextensionsv1.JSONSchemaProps) []string {
	var out []string
	for name, sub := range p.Properties {
		out = append(out, path+"."+name)
		out = append(out, crdFieldPaths(path+"."+name, sub)...)
	}
	if p.Items != nil && p.Items.Schema != nil {
		out = append(out, crdFieldPaths(path+"[]", *p.Items.Schema)...)
	}
	if p.AdditionalProperties != nil && p.AdditionalProperties.Schema != nil {
		out = append(out, crdFieldPaths(path+"[*]", *p.AdditionalProperties.Schema)...)
	}
	sort.Strings(out)
	return out
}

// jsonSchemaFieldPaths lists every property path under node of the JSON
// Schema, following $ref, sorted.
func jsonSchemaFieldPaths(t *testing.T, defs map[string]any, path string, node map[string]any) []string {
	t.Helper()
	if ref, ok := node["$ref"].(string); ok {
		return jsonSchemaFieldPaths(t, defs, path, defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any))
	}
	var out []string
	if props, ok := node["properties"].(map[string]any); ok {
		for name, sub := range props {
			out = append(out, path+"."+name)
			out = append(out, jsonSchemaFieldPaths(t, defs, path+"."+name, sub.(map[string]any))...)
		}
	}
	if items, ok := node["items"].(map[string]any); ok {
		out = append(out, jsonSchemaFieldPaths(t, defs, path+"[]", items)...)
	}
	if ap, ok := node["additionalProperties"].(map[string]any); ok {
		out = append(out, jsonSchemaFieldPaths(t, defs, path+"[*]", ap)...)
	}
	sort.Strings(out)
	return out
}

func TestKubernetesCRDsPassAPIServerValidation(t *testing.T) {
	for _, k := range crdKinds() {
		ms, err := decodeManifests(k.file())
		if err != nil {
			t.Fatal(err)
		}
		v1crd := ms[0].obj.(*apiextensionsv1.CustomResourceDefinition)
		apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(v1crd)
		var crd apiextensions.CustomResourceDefinition
		if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(v1crd, &crd, nil); err != nil {
			t.Fatalf("%s: %v", k.file(), err)
		}
		if errs := validation.ValidateCustomResourceDefinition(context.Background(), &crd); len(errs) > 0 {
			t.Errorf("%s: the API server would refuse it: %v", k.file(), errs.ToAggregate())
		}
	}
}

func TestKubernetesSchemaConverter_Success(t *testing.T) {
	defs := map[string]any{
		"Duration": map[string]any{"type": "string", "pattern": "^[0-9]+s$", "description": "D."},
	}
	tests := []struct {
		name string
		node map[string]any
		want apiextensionsv1.JSONSchemaProps
	}{
		{
			name: "ref inlined, local description wins",
			node: map[string]any{"$ref": "#/$defs/Duration", "description": "Local."},
			want: apiextensionsv1.JSONSchemaProps{Type: "string", Pattern: "^[0-9]+s$", Description: "Local."},
		},
		{
			name: "const and untyped enum get a type",
			node: map[string]any{"type": "object", "additionalProperties": false, "properties": map[string]any{
				"a": map[string]any{"const": "x"},
				"b": map[string]any{"enum": []any{"p", "q"}},
			}},
			want: apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"a": {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"x"`)}}},
				"b": {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"p"`)}, {Raw: []byte(`"q"`)}}},
			}},
		},
		{
			name: "string anyOf keeps its alternatives untyped",
			node: map[string]any{"anyOf": []any{map[string]any{"const": "auto"}, map[string]any{"$ref": "#/$defs/Duration"}}},
			want: apiextensionsv1.JSONSchemaProps{Type: "string", AnyOf: []apiextensionsv1.JSONSchemaProps{
				{Enum: []apiextensionsv1.JSON{{Raw: []byte(`"auto"`)}}},
				{Pattern: "^[0-9]+s$"},
			}},
		},
		{
			name: "integer or string",
			node: map[string]any{"anyOf": []any{map[string]any{"enum": []any{"5xx"}}, map[string]any{"type": "integer", "minimum": 100.0}}},
			want: apiextensionsv1.JSONSchemaProps{XIntOrString: true, AnyOf: []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}}},
		},
		{
			name: "unique string list is a set",
			node: map[string]any{"type": "array", "uniqueItems": true, "items": map[string]any{"type": "string"}},
			want: apiextensionsv1.JSONSchemaProps{Type: "array", XListType: ptr("set"), Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := schemaConverter{defs: defs}.convert("x", tt.node)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("convert (-got +want):\n%s", diff)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestKubernetesSchemaConverter_Errors(t *testing.T) {
	tests := []struct {
		name    string
		node    map[string]any
		wantErr string
	}{
		{name: "unknown keyword", node: map[string]any{"type": "string", "format": "email"}, wantErr: `keyword "format"`},
		{name: "dangling ref", node: map[string]any{"$ref": "#/$defs/Nope"}, wantErr: "unresolvable $ref"},
		{name: "untyped", node: map[string]any{"description": "x"}, wantErr: "no type"},
		{name: "anyOf over objects", node: map[string]any{"anyOf": []any{map[string]any{"type": "object"}, map[string]any{"type": "string"}}}, wantErr: "no structural form"},
		{name: "open object", node: map[string]any{"type": "object", "additionalProperties": true}, wantErr: "not structural"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := schemaConverter{defs: map[string]any{}}.convert("x", tt.node)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "deploy: ") {
				t.Errorf("convert: error %v, want one starting deploy: and containing %q", err, tt.wantErr)
			}
		})
	}
}

// kustomizations are the two entry points: the control plane and the
// application example.
func kustomizations() []string {
	return []string{k8sDir, filepath.Join(k8sDir, "sidecar-example")}
}

func TestKubernetesManifestsDecodeAndEveryFileIsBuilt(t *testing.T) {
	read := map[string]bool{}
	for _, dir := range kustomizations() {
		b := mustBuild(t, dir)
		for _, f := range b.files {
			read[filepath.Clean(f)] = true
		}
		for _, m := range b.manifests {
			if o, ok := m.obj.(interface{ GetName() string }); !ok || o.GetName() == "" {
				t.Errorf("%s document %d: no metadata.name", m.file, m.doc)
			}
		}
	}
	var unread []string
	err := filepath.WalkDir(k8sDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".yaml") && !read[filepath.Clean(p)] {
			unread = append(unread, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(unread) > 0 {
		t.Errorf("no kustomization lists %v", unread)
	}
	for _, k := range crdKinds() {
		if !read[k.file()] {
			t.Errorf("%s is not in any kustomization", k.file())
		}
	}
}

func TestKubernetesDecodeManifests_Errors(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
	}{
		{name: "unknown field", doc: "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n", wantErr: `unknown field "selectr"`},
		{name: "unknown kind", doc: "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", wantErr: "no Go type"},
		{name: "wrong type", doc: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two}\n", wantErr: "replicas"},
		{name: "empty", doc: "# nothing\n", wantErr: "holds no manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "m.yaml")
			if err := os.WriteFile(f, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := decodeManifests(f)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("decodeManifests: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// workload is what runs pods: a Deployment or a StatefulSet.
type workload struct {
	kind, namespace, name string
	selector              *metav1.LabelSelector
	template              *corev1.PodTemplateSpec
	// claims are the names of a StatefulSet's volumeClaimTemplates.
	claims map[string]corev1.PersistentVolumeClaim
}

func (w workload) String() string {
	return strings.ToLower(w.kind) + " " + w.namespace + "/" + w.name
}

func workloads(b *built) []workload {
	var out []workload
	for _, d := range objects[*appsv1.Deployment](b) {
		out = append(out, workload{kind: "Deployment", namespace: d.Namespace, name: d.Name, selector: d.Spec.Selector, template: &d.Spec.Template})
	}
	for _, s := range objects[*appsv1.StatefulSet](b) {
		w := workload{kind: "StatefulSet", namespace: s.Namespace, name: s.Name, selector: s.Spec.Selector, template: &s.Spec.Template,
			claims: map[string]corev1.PersistentVolumeClaim{}}
		for _, c := range s.Spec.VolumeClaimTemplates {
			w.claims[c.Name] = c
		}
		out = append(out, w)
	}
	return out
}

// allContainers are the init containers and the containers of w's pods.
func (w workload) allContainers() []corev1.Container {
	return append(slices.Clone(w.template.Spec.InitContainers), w.template.Spec.Containers...)
}

// selects reports whether sel, a non-empty selector, selects the labels.
func selects(sel *metav1.LabelSelector, lbls map[string]string) bool {
	if sel == nil || len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(k8slabels.Set(lbls))
}

// selected returns the workloads of namespace whose pods sel selects.
func selected(ws []workload, namespace string, sel *metav1.LabelSelector) []workload {
	var out []workload
	for _, w := range ws {
		if w.namespace == namespace && selects(sel, w.template.Labels) {
			out = append(out, w)
		}
	}
	return out
}

// external are the objects the manifests use but do not ship, because they
// hold an installation's keys, with the command of the README that creates
// each (the README also names every key the pods read, as --from-file=KEY=).
var external = map[string]string{
	"Secret hopguard-system/hopguard-signing-key": "kubectl -n hopguard-system create secret generic hopguard-signing-key",
	"ConfigMap shop/hopguard-verify-key":          "kubectl -n shop create configmap hopguard-verify-key",
}

const k8sReadme = k8sDir + "/README.md"

// checkWiring checks the references inside one build: a workload's
// selector selects its pods, every ConfigMap volume names a ConfigMap of
// the build or a documented external one, every Secret volume a documented
// external Secret, its service account exists, every mount names a volume
// or claim template, every probe a container port; every Service selects
// exactly one workload whose containers have the Service's target ports; a
// StatefulSet's serviceName is a headless Service selecting it; every
// PodDisruptionBudget and NetworkPolicy selects exactly one workload, and a
// NetworkPolicy's ports are its containers'; every RoleBinding binds an
// existing Role to an existing ServiceAccount.
func checkWiring(t *testing.T, b *built) {
	t.Helper()
	configMaps := map[string]bool{}
	for name := range b.configMaps {
		configMaps[name] = true
	}
	for _, cm := range objects[*corev1.ConfigMap](b) {
		configMaps[cm.Name] = true
	}
	accounts := map[string]bool{"default": true}
	for _, sa := range objects[*corev1.ServiceAccount](b) {
		accounts[sa.Name] = true
	}
	ws := workloads(b)
	for _, w := range ws {
		if w.selector == nil || len(w.selector.MatchLabels) == 0 || !subset(w.selector.MatchLabels, w.template.Labels) {
			t.Errorf("%s: selector %v does not select its pod labels %v", w, w.selector, w.template.Labels)
		}
		if sa := w.template.Spec.ServiceAccountName; sa != "" && !accounts[sa] {
			t.Errorf("%s: service account %s is not in the build", w, sa)
		}
		volumes := map[string]bool{}
		for name := range w.claims {
			volumes[name] = true
		}
		for _, v := range w.template.Spec.Volumes {
			volumes[v.Name] = true
			switch {
			case v.ConfigMap != nil && !configMaps[v.ConfigMap.Name]:
				if _, ok := external["ConfigMap "+w.namespace+"/"+v.ConfigMap.Name]; !ok {
					t.Errorf("%s: volume %s names ConfigMap %s, which the build does not make (have %v) and is no documented external object", w, v.Name, v.ConfigMap.Name, slices.Sorted(keys(configMaps)))
				}
			case v.Secret != nil:
				if _, ok := external["Secret "+w.namespace+"/"+v.Secret.SecretName]; !ok {
					t.Errorf("%s: volume %s names Secret %s, which is no documented external object", w, v.Name, v.Secret.SecretName)
				}
			}
		}
		for _, c := range w.allContainers() {
			for _, m := range c.VolumeMounts {
				if !volumes[m.Name] {
					t.Errorf("%s container %s: mount of unknown volume %s", w, c.Name, m.Name)
				}
			}
			for _, probe := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
				switch {
				case probe == nil:
				case probe.HTTPGet != nil && !hasPort(c, probe.HTTPGet.Port):
					t.Errorf("%s container %s: probe port %s is not a container port", w, c.Name, probe.HTTPGet.Port.String())
				case probe.TCPSocket != nil && !hasPort(c, probe.TCPSocket.Port):
					t.Errorf("%s container %s: probe port %s is not a container port", w, c.Name, probe.TCPSocket.Port.String())
				}
			}
		}
	}
	services := objects[*corev1.Service](b)
	for _, s := range services {
		sel := selected(ws, s.Namespace, &metav1.LabelSelector{MatchLabels: s.Spec.Selector})
		if len(sel) != 1 {
			t.Errorf("service %s/%s: selector %v selects %d workloads, want 1", s.Namespace, s.Name, s.Spec.Selector, len(sel))
			continue
		}
		for _, p := range s.Spec.Ports {
			if !slices.ContainsFunc(sel[0].template.Spec.Containers, func(c corev1.Container) bool { return hasPort(c, p.TargetPort) }) {
				t.Errorf("service %s port %s: target port %s is no container port of %s", s.Name, p.Name, p.TargetPort.String(), sel[0])
			}
		}
	}
	for _, s := range objects[*appsv1.StatefulSet](b) {
		i := slices.IndexFunc(services, func(svc *corev1.Service) bool { return svc.Namespace == s.Namespace && svc.Name == s.Spec.ServiceName })
		if i < 0 || services[i].Spec.ClusterIP != corev1.ClusterIPNone || !selects(&metav1.LabelSelector{MatchLabels: services[i].Spec.Selector}, s.Spec.Template.Labels) {
			t.Errorf("statefulset %s: serviceName %q is no headless Service of the build selecting its pods", s.Name, s.Spec.ServiceName)
		}
	}
	for _, p := range objects[*policyv1.PodDisruptionBudget](b) {
		if n := len(selected(ws, p.Namespace, p.Spec.Selector)); n != 1 {
			t.Errorf("poddisruptionbudget %s: selector %v selects %d workloads, want 1", p.Name, p.Spec.Selector, n)
		}
	}
	for _, np := range objects[*networkingv1.NetworkPolicy](b) {
		sel := selected(ws, np.Namespace, &np.Spec.PodSelector)
		if len(sel) != 1 {
			t.Errorf("networkpolicy %s: podSelector %v selects %d workloads, want 1", np.Name, np.Spec.PodSelector, len(sel))
			continue
		}
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port == nil || !slices.ContainsFunc(sel[0].template.Spec.Containers, func(c corev1.Container) bool { return hasPort(c, *p.Port) }) {
					t.Errorf("networkpolicy %s: port %v is no container port of %s", np.Name, p.Port, sel[0])
				}
			}
		}
	}
	roles := map[string]*rbacv1.Role{}
	for _, r := range objects[*rbacv1.Role](b) {
		roles[r.Namespace+"/"+r.Name] = r
	}
	for _, rb := range objects[*rbacv1.RoleBinding](b) {
		if rb.RoleRef.Kind != "Role" || roles[rb.Namespace+"/"+rb.RoleRef.Name] == nil {
			t.Errorf("rolebinding %s: roleRef %+v names no Role of its namespace", rb.Name, rb.RoleRef)
		}
		for _, s := range rb.Subjects {
			if s.Kind != "ServiceAccount" || !accounts[s.Name] || s.Namespace != rb.Namespace {
				t.Errorf("rolebinding %s: subject %+v is not a ServiceAccount of the build in namespace %s", rb.Name, s, rb.Namespace)
			}
		}
	}
}

func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func hasPort(c corev1.Container, port intstr.IntOrString) bool {
	return slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
		if port.Type == intstr.String {
			return p.Name == port.StrVal
		}
		return p.ContainerPort == port.IntVal
	})
}

// containerPort resolves port, a number or a name, among c's ports; 0 when
// it is none of them.
func containerPort(c corev1.Container, port intstr.IntOrString) int32 {
	for _, p := range c.Ports {
		if port.Type == intstr.String && p.Name == port.StrVal || port.Type == intstr.Int && p.ContainerPort == port.IntVal {
			return p.ContainerPort
		}
	}
	return 0
}

func TestKubernetesWiring(t *testing.T) {
	for _, dir := range kustomizations() {
		t.Run(dir, func(t *testing.T) {
			checkWiring(t, mustBuild(t, dir))
		})
	}
}

// TestKubernetesExternalObjectsDocumented: the README shows how to create
// every object the manifests use without shipping it, with every key the
// pods read from it.
func TestKubernetesExternalObjectsDocumented(t *testing.T) {
	data, err := os.ReadFile(k8sReadme)
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.Join(strings.Fields(strings.ReplaceAll(string(data), "\\\n", " ")), " ")
	used := map[string]bool{}
	for _, dir := range kustomizations() {
		for _, w := range workloads(mustBuild(t, dir)) {
			for _, v := range w.template.Spec.Volumes {
				var (
					id    string
					items []corev1.KeyToPath
				)
				switch {
				case v.Secret != nil:
					id, items = "Secret "+w.namespace+"/"+v.Secret.SecretName, v.Secret.Items
				case v.ConfigMap != nil:
					id, items = "ConfigMap "+w.namespace+"/"+v.ConfigMap.Name, v.ConfigMap.Items
				}
				cmd, ok := external[id]
				if !ok {
					continue
				}
				used[id] = true
				if !strings.Contains(readme, cmd) {
					t.Errorf("%s: %s is not shipped and %s does not show `%s`", w, id, k8sReadme, cmd)
				}
				// The keys: the items it projects, or the files of it
				// that containers are given as arguments.
				var keys []string
				for _, it := range items {
					keys = append(keys, it.Key)
				}
				for _, c := range w.allContainers() {
					for _, m := range c.VolumeMounts {
						if m.Name != v.Name || len(items) > 0 {
							continue
						}
						for _, a := range append(slices.Clone(c.Command), c.Args...) {
							if rel, ok := strings.CutPrefix(a, m.MountPath+"/"); ok {
								keys = append(keys, rel)
							}
						}
					}
				}
				if len(keys) == 0 {
					t.Errorf("%s: no key of %s is read", w, id)
				}
				for _, k := range keys {
					if !strings.Contains(readme, cmd+" --from-file="+k+"=") {
						t.Errorf("%s: %s does not show `%s --from-file=%s=…`", w, k8sReadme, cmd, k)
					}
				}
			}
		}
	}
	for id := range external {
		if !used[id] {
			t.Errorf("external object %s is used by no workload", id)
		}
	}
}

func deployment(t *testing.T, b *built, name string) workload {
	t.Helper()
	for _, w := range workloads(b) {
		if w.kind == "Deployment" && w.name == name {
			return w
		}
	}
	t.Fatalf("no deployment %s", name)
	return workload{}
}

func statefulSet(t *testing.T, b *built, name string) *appsv1.StatefulSet {
	t.Helper()
	for _, s := range objects[*appsv1.StatefulSet](b) {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no statefulset %s", name)
	return nil
}

func container(t *testing.T, w workload, name string) corev1.Container {
	t.Helper()
	for _, c := range w.template.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("%s has no container %s", w, name)
	return corev1.Container{}
}

// mountOf returns the mount of c holding path (the longest mount path that
// is a parent of it), or false.
func mountOf(c corev1.Container, path string) (corev1.VolumeMount, bool) {
	var best corev1.VolumeMount
	found := false
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") && len(m.MountPath) > len(best.MountPath) {
			best, found = m, true
		}
	}
	return best, found
}

func volume(w workload, name string) (corev1.Volume, bool) {
	i := slices.IndexFunc(w.template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == name })
	if i < 0 {
		return corev1.Volume{}, false
	}
	return w.template.Spec.Volumes[i], true
}

func TestKubernetesControlPlane(t *testing.T) {
	b := mustBuild(t, k8sDir)
	if n := len(objects[*appsv1.Deployment](b)); n != 0 {
		t.Errorf("%d Deployments: the control plane is a StatefulSet, each replica with its own audit log", n)
	}
	s := statefulSet(t, b, controlPlaneApp)
	w := selected(workloads(b), s.Namespace, s.Spec.Selector)[0]
	if s.Namespace != "hopguard-system" {
		t.Errorf("statefulset namespace %q, want hopguard-system", s.Namespace)
	}
	if s.Spec.Replicas == nil || *s.Spec.Replicas < 2 {
		t.Errorf("replicas %v, want at least 2", s.Spec.Replicas)
	}
	c := container(t, w, "hopguard")
	const (
		auditLog   = "/var/lib/hopguard/audit.jsonl"
		signingKey = "/run/hopguard/signing/hopguard-signing.key"
	)
	wantArgs := []string{"run", "--config", "/etc/hopguard", "--xds-addr", "0.0.0.0:18000", "--admin-addr", "0.0.0.0:18080", "--extproc-addr", "0.0.0.0:18001",
		"--audit-log", auditLog, "--signing-key", signingKey}
	if diff := cmp.Diff(c.Args, wantArgs); diff != "" {
		t.Errorf("args (-got +want):\n%s", diff)
	}
	if c.Image != "ghcr.io/hopguard/hopguard:latest" {
		t.Errorf("image %q, want the documented placeholder", c.Image)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if diff := cmp.Diff(ports, map[string]int32{"xds": 18000, "extproc": 18001, "admin": 18080}); diff != "" {
		t.Errorf("container ports (-got +want):\n%s", diff)
	}
	for name, tc := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"readiness": {c.ReadinessProbe, "/readyz"}, "liveness": {c.LivenessProbe, "/healthz"}} {
		if tc.probe == nil || tc.probe.HTTPGet == nil || tc.probe.HTTPGet.Path != tc.path || ports[tc.probe.HTTPGet.Port.StrVal] != 18080 {
			t.Errorf("%s probe %+v, want GET %s on the admin port", name, tc.probe, tc.path)
		}
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("security context %+v: want a read-only root filesystem", sc)
	}
	mount := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/etc/hopguard" })
	if mount < 0 || !c.VolumeMounts[mount].ReadOnly || c.VolumeMounts[mount].SubPath != "" {
		// A subPath mount is never updated by the kubelet: reloads need
		// the whole volume.
		t.Fatalf("mounts %+v: want a read-only whole-volume mount at /etc/hopguard", c.VolumeMounts)
	}
	vol, _ := volume(w, c.VolumeMounts[mount].Name)
	if vol.ConfigMap == nil || len(vol.ConfigMap.Items) != 0 {
		t.Fatalf("volume %+v: want the whole ConfigMap", vol)
	}
	if _, ok := b.configMaps[vol.ConfigMap.Name]; !ok {
		t.Errorf("ConfigMap %s is not generated by the kustomization", vol.ConfigMap.Name)
	}

	// The audit log: on a claim of each replica's own, writable by the
	// container's non-root user (fsGroup), under a read-only root.
	if m, ok := mountOf(c, auditLog); !ok || m.ReadOnly || m.SubPath != "" {
		t.Errorf("--audit-log %s: mount %+v, want a writable whole-volume mount", auditLog, m)
	} else if claim, ok := w.claims[m.Name]; !ok || !slices.Contains(claim.Spec.AccessModes, corev1.ReadWriteOnce) || claim.Spec.Resources.Requests.Storage().IsZero() {
		t.Errorf("--audit-log %s: volume %s is no ReadWriteOnce volumeClaimTemplate with a storage request (have %v)", auditLog, m.Name, slices.Sorted(maps.Keys(w.claims)))
	}
	if psc := s.Spec.Template.Spec.SecurityContext; psc == nil || psc.FSGroup == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("pod security context %+v: want non-root with an fsGroup, so the audit claim is writable", psc)
	}
	if p := s.Spec.PersistentVolumeClaimRetentionPolicy; p != nil && (p.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType || p.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType) {
		t.Errorf("PVC retention %+v: the audit logs must be retained", p)
	}

	// The signing key: copied with mode 0600 by an init container from the
	// Secret (whose files fsGroup makes group-readable, which the control
	// plane refuses) into a memory-backed emptyDir, read-only for hopguard.
	km, ok := mountOf(c, signingKey)
	kv, _ := volume(w, km.Name)
	if !ok || !km.ReadOnly || kv.EmptyDir == nil || kv.EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Errorf("--signing-key %s: mount %+v of volume %+v, want a read-only mount of a memory-backed emptyDir", signingKey, km, kv)
	}
	copied := false
	for _, ic := range s.Spec.Template.Spec.InitContainers {
		dst, ok := mountOf(ic, signingKey)
		if !ok || dst.Name != km.Name || dst.ReadOnly {
			continue
		}
		cmd := ic.Command
		if len(cmd) < 3 || cmd[0] != "install" || flagValue(cmd, "-m") != "0600" || cmd[len(cmd)-1] != signingKey {
			t.Errorf("init container %s: command %q, want install -m 0600 SECRET_FILE %s", ic.Name, cmd, signingKey)
			continue
		}
		src, ok := mountOf(ic, cmd[len(cmd)-2])
		sv, _ := volume(w, src.Name)
		if !ok || sv.Secret == nil || sv.Secret.SecretName != "hopguard-signing-key" || sv.Secret.DefaultMode == nil || *sv.Secret.DefaultMode&0o007 != 0 {
			t.Errorf("init container %s: copies from %s, want a file of Secret hopguard-signing-key readable by no others (volume %+v)", ic.Name, cmd[len(cmd)-2], sv)
			continue
		}
		if sc := ic.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("init container %s: security context %+v, want read-only root, no privilege escalation", ic.Name, sc)
		}
		copied = true
	}
	if !copied {
		t.Errorf("no init container writes %s", signingKey)
	}

	// Services: the client-facing one without the admin API; the headless
	// one, the StatefulSet's, with it.
	svcPorts := func(name string) (*corev1.Service, map[int32]int32) {
		for _, svc := range objects[*corev1.Service](b) {
			if svc.Name == name {
				out := map[int32]int32{}
				for _, p := range svc.Spec.Ports {
					out[p.Port] = ports[p.TargetPort.StrVal]
				}
				return svc, out
			}
		}
		t.Fatalf("no Service %s", name)
		return nil, nil
	}
	_, got := svcPorts(controlPlaneApp)
	if diff := cmp.Diff(got, map[int32]int32{18000: 18000, 18001: 18001}); diff != "" {
		t.Errorf("service %s: port → container port (-got +want); the admin API must not be on it:\n%s", controlPlaneApp, diff)
	}
	headless, got := svcPorts(s.Spec.ServiceName)
	if diff := cmp.Diff(got, map[int32]int32{18080: 18080}); diff != "" || headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("service %s: clusterIP %q publishNotReadyAddresses %v, ports (-got +want):\n%s; want headless, not-ready replicas published, the admin port", headless.Name, headless.Spec.ClusterIP, headless.Spec.PublishNotReadyAddresses, diff)
	}

	// NetworkPolicy: xDS and ext_proc from anywhere, admin only from
	// labelled operator pods of the namespace and selected pods of others.
	var open, admin []string
	for _, np := range objects[*networkingv1.NetworkPolicy](b) {
		if !selects(&np.Spec.PodSelector, s.Spec.Template.Labels) {
			continue
		}
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			t.Errorf("networkpolicy %s: policyTypes %v lack Ingress", np.Name, np.Spec.PolicyTypes)
		}
		for i, r := range np.Spec.Ingress {
			if len(r.Ports) == 0 {
				t.Errorf("networkpolicy %s rule %d opens every port, the admin port included", np.Name, i)
			}
			for _, p := range r.Ports {
				port := containerPort(c, *p.Port)
				switch {
				case port != 18080 && len(r.From) == 0:
					open = append(open, fmt.Sprint(port))
				case port == 18080 && len(r.From) == 0:
					t.Errorf("networkpolicy %s rule %d admits anyone to the admin port", np.Name, i)
				case port == 18080:
					for _, peer := range r.From {
						if peer.PodSelector == nil || len(peer.PodSelector.MatchLabels)+len(peer.PodSelector.MatchExpressions) == 0 || peer.IPBlock != nil {
							t.Errorf("networkpolicy %s rule %d: peer %+v admits more than selected pods to the admin port", np.Name, i, peer)
							continue
						}
						if peer.NamespaceSelector == nil {
							admin = append(admin, fmt.Sprint(peer.PodSelector.MatchLabels))
						}
					}
				}
			}
		}
	}
	slices.Sort(open)
	if diff := cmp.Diff(open, []string{"18000", "18001"}); diff != "" {
		t.Errorf("ports open to every pod (-got +want):\n%s", diff)
	}
	if !slices.Contains(admin, fmt.Sprint(map[string]string{"hopguard.dev/operator": "true"})) {
		t.Errorf("admin port admits %v from the namespace, want pods labelled hopguard.dev/operator: \"true\"", admin)
	}

	// At most one replica disrupted at a time.
	pdbs := 0
	for _, p := range objects[*policyv1.PodDisruptionBudget](b) {
		if selects(p.Spec.Selector, s.Spec.Template.Labels) {
			pdbs++
			if p.Spec.MinAvailable == nil || p.Spec.MinAvailable.String() != "1" {
				t.Errorf("poddisruptionbudget %s: minAvailable %v, want 1", p.Name, p.Spec.MinAvailable)
			}
		}
	}
	if pdbs != 1 {
		t.Errorf("%d PodDisruptionBudgets select the control plane, want 1", pdbs)
	}

	// RBAC: the control plane's account may read its ConfigMap, and nothing else.
	var grants []string
	for _, r := range objects[*rbacv1.Role](b) {
		for _, rule := range r.Rules {
			for _, res := range rule.Resources {
				for _, name := range rule.ResourceNames {
					for _, verb := range rule.Verbs {
						grants = append(grants, fmt.Sprintf("%s %s/%s", verb, res, name))
					}
				}
				if len(rule.ResourceNames) == 0 {
					grants = append(grants, "unrestricted "+res)
				}
			}
		}
	}
	sort.Strings(grants)
	want := []string{"get configmaps/" + vol.ConfigMap.Name, "watch configmaps/" + vol.ConfigMap.Name}
	if diff := cmp.Diff(grants, want); diff != "" {
		t.Errorf("RBAC grants (-got +want):\n%s", diff)
	}
	bound := false
	for _, rb := range objects[*rbacv1.RoleBinding](b) {
		bound = bound || slices.ContainsFunc(rb.Subjects, func(sub rbacv1.Subject) bool { return sub.Name == w.template.Spec.ServiceAccountName })
	}
	if !bound || w.template.Spec.ServiceAccountName == "" {
		t.Errorf("service account %q of the control plane is bound to no Role", w.template.Spec.ServiceAccountName)
	}
}

// loadConfig loads a budget directory with hopguard's own loader and fails
// on any violation.
func loadConfig(t *testing.T, files ...string) *v1alpha1.Config {
	t.Helper()
	cfg, vs, err := v1alpha1.Load(files...)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) > 0 || cfg == nil {
		t.Fatalf("%v: violations:\n%v", files, vs)
	}
	return cfg
}

func sameFile(t *testing.T, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(g), string(w)); diff != "" {
		t.Errorf("%s is a copy of %s and differs (-got +want):\n%s", got, want, diff)
	}
}

func TestKubernetesBudgetsConfigMap(t *testing.T) {
	b := mustBuild(t, k8sDir)
	files := b.configMaps["hopguard-config"]
	if len(files) == 0 {
		t.Fatal("no generated ConfigMap hopguard-config")
	}
	cfg := loadConfig(t, files...)
	if len(cfg.Services) != 5 || len(cfg.RouteBudgets) == 0 {
		t.Errorf("%d services and %d route budgets, want the shop's 5 and its budgets", len(cfg.Services), len(cfg.RouteBudgets))
	}
	for _, s := range cfg.Services {
		if want := s.Metadata.Name + ".shop.svc.cluster.local:15006"; s.Spec.DNS != want {
			t.Errorf("service %s: dns %q, want its sidecar's inbound listener %s", s.Metadata.Name, s.Spec.DNS, want)
		}
	}
	sameFile(t, filepath.Join(k8sDir, "config", "budgets.yaml"), shopBudgets)
	shop := loadConfig(t, "../examples/shop/config")
	if diff := cmp.Diff(names(cfg), names(shop)); diff != "" {
		t.Errorf("documents differ from examples/shop/config (-got +want):\n%s", diff)
	}
}

func names(cfg *v1alpha1.Config) []string {
	var out []string
	for _, s := range cfg.Services {
		out = append(out, "Service "+s.Metadata.Name+" → "+strings.Join(s.Spec.DependsOn, ","))
	}
	for _, r := range cfg.RouteBudgets {
		out = append(out, "RouteBudget "+r.Metadata.Name)
	}
	return out
}

func TestKubernetesSidecarExample(t *testing.T) {
	b := mustBuild(t, filepath.Join(k8sDir, "sidecar-example"))
	cp := mustBuild(t, k8sDir)
	d := deployment(t, b, "payments")
	cfg := loadConfig(t, cp.configMaps["hopguard-config"]...)
	x := container(t, d, "hopguard-extproc")
	if got := flagValue(x.Args, "--addr"); x.Args[0] != "extproc" || got != cfg.Mesh.Spec.ExtProc.Address || !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("ext_proc sidecar args %v: want extproc --addr on loopback at MeshConfig extProc.address %s", x.Args, cfg.Mesh.Spec.ExtProc.Address)
	}

	// The filter follows the control plane's signed bundles, so freeze and
	// pin reach it: a --config filter never sees them.
	var xdsPort int32
	for _, svc := range objects[*corev1.Service](cp) {
		for _, p := range svc.Spec.Ports {
			if svc.Name == controlPlaneApp && p.TargetPort.StrVal == "xds" {
				xdsPort = p.Port
			}
		}
	}
	wantCP := fmt.Sprintf("%s.hopguard-system.svc.cluster.local:%d", controlPlaneApp, xdsPort)
	if flagValue(x.Args, "--config") != "" || slices.Contains(x.Args, "--allow-unsigned") || flagValue(x.Args, "--control-plane") != wantCP {
		t.Errorf("ext_proc sidecar args %v: want --control-plane %s (the control plane Service's xDS port), no --config, no --allow-unsigned", x.Args, wantCP)
	}
	if got := flagValue(x.Args, "--environment"); got == "" || got != cfg.Mesh.Spec.Environment {
		t.Errorf("ext_proc sidecar --environment %q, want the MeshConfig's spec.environment %q", got, cfg.Mesh.Spec.Environment)
	}
	key := flagValue(x.Args, "--verify-key")
	km, ok := mountOf(x, key)
	kv, _ := volume(d, km.Name)
	if !ok || !km.ReadOnly || kv.ConfigMap == nil && kv.Secret == nil {
		t.Errorf("--verify-key %q: mount %+v of volume %+v, want a read-only ConfigMap or Secret mount", key, km, kv)
	}

	// Probes on the metrics address: /readyz is 503 until the first
	// verified bundle, /healthz answers from the start.
	_, metricsPort, _ := strings.Cut(flagValue(x.Args, "--metrics-addr"), ":")
	want, _ := strconv.Atoi(metricsPort)
	for name, tc := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"readiness": {x.ReadinessProbe, "/readyz"}, "liveness": {x.LivenessProbe, "/healthz"}} {
		if tc.probe == nil || tc.probe.HTTPGet == nil || tc.probe.HTTPGet.Path != tc.path || int(containerPort(x, tc.probe.HTTPGet.Port)) != want || want == 0 {
			t.Errorf("ext_proc sidecar %s probe %+v, want GET %s on the --metrics-addr port %s", name, tc.probe, tc.path, metricsPort)
		}
	}

	var svcs []string
	for _, s := range cfg.Services {
		svcs = append(svcs, s.Metadata.Name)
	}
	if !slices.Contains(svcs, d.name) {
		t.Errorf("deployment %s is no Service of the budgets %v", d.name, svcs)
	}
	app := container(t, d, d.name)
	for _, s := range cfg.Services {
		if s.Metadata.Name == d.name && !hasPort(app, intstr.FromInt32(int32(s.Spec.Port))) {
			t.Errorf("app container ports %+v lack spec.port %d", app.Ports, s.Spec.Port)
		}
	}
	e := container(t, d, "envoy")
	if !strings.HasPrefix(e.Image, "envoyproxy/envoy:") || flagValue(e.Args, "-c") != "/etc/envoy/envoy.yaml" {
		t.Errorf("envoy container image %q args %v, want the official image reading /etc/envoy/envoy.yaml", e.Image, e.Args)
	}
	for _, port := range []int32{15006, 15001} {
		if !hasPort(e, intstr.FromInt32(port)) {
			t.Errorf("envoy container lacks port %d", port)
		}
	}
	// Envoy's admin is on loopback, out of the kubelet's reach; it listens
	// on the inbound port only once it has its listener from the control
	// plane.
	if p := e.ReadinessProbe; p == nil || p.TCPSocket == nil || containerPort(e, p.TCPSocket.Port) != 15006 {
		t.Errorf("envoy readiness probe %+v, want a TCP check of the inbound listener 15006", p)
	}

	// Shutdown: both sidecars sleep while the pod leaves the endpoints, the
	// filter at least as long as Envoy, which it serves.
	sleep := func(c corev1.Container) int64 {
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
			return 0
		}
		return c.Lifecycle.PreStop.Sleep.Seconds
	}
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if g := d.template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	if se, sx := sleep(e), sleep(x); se <= 0 || sx < se || sx >= grace {
		t.Errorf("preStop sleep: envoy %ds, ext_proc %ds; want both, the filter's at least Envoy's, below the grace period %ds", se, sx, grace)
	}

	envoyFiles := b.configMaps["payments-envoy"]
	if len(envoyFiles) != 1 || filepath.Base(envoyFiles[0]) != "envoy.yaml" {
		t.Fatalf("ConfigMap payments-envoy holds %v, want envoy.yaml", envoyFiles)
	}
	opts := checkBootstrapFile(t, envoyFiles[0])
	if opts.Service != d.name || opts.XDSAddr != wantCP {
		t.Errorf("bootstrap for service %q at %q, want %s reaching the control plane Service at %s", opts.Service, opts.XDSAddr, d.name, wantCP)
	}
}

// flagValue returns the argument after name in args, or "".
func flagValue(args []string, name string) string {
	i := slices.Index(args, name)
	if i < 0 || i+1 >= len(args) {
		return ""
	}
	return args[i+1]
}

const generatedWith = "# Generated with: hopguard bootstrap "

// checkXDSKeepalive checks that the xDS cluster of b pings the control
// plane over HTTP/2: an ADS stream is silent while nothing changes, so
// without pings a hung control plane or a flow a middlebox dropped goes
// unnoticed until the kernel's TCP keepalive, hours later. The interval
// must stay at or above the 10s the control plane allows
// (bundles.ServerEnforcement) and well below a minute.
func checkXDSKeepalive(b *bootstrapv3.Bootstrap) error {
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != bootstrap.XDSCluster {
			continue
		}
		const key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
		var o httpv3.HttpProtocolOptions
		if err := c.GetTypedExtensionProtocolOptions()[key].UnmarshalTo(&o); err != nil {
			return fmt.Errorf("deploy: cluster %s: %s: %w", c.GetName(), key, err)
		}
		k := o.GetExplicitHttpConfig().GetHttp2ProtocolOptions().GetConnectionKeepalive()
		interval, timeout := k.GetInterval().AsDuration(), k.GetTimeout().AsDuration()
		if k == nil || interval < 10*time.Second || interval > time.Minute || timeout <= 0 || timeout > interval {
			return fmt.Errorf("deploy: cluster %s: HTTP/2 connection_keepalive %v, want an interval of 10s to 1m and a timeout up to it", c.GetName(), k)
		}
		return nil
	}
	return fmt.Errorf("deploy: no cluster %s", bootstrap.XDSCluster)
}

// checkBootstrapFile checks a committed Envoy bootstrap: its header names
// the `hopguard bootstrap` flags it came from, its body is byte for byte
// what bootstrap.Render and bootstrap.YAML produce for them (so it cannot go
// stale), the body parses as an Envoy Bootstrap that passes ValidateAll,
// and its xDS cluster keeps the connection alive. It returns the options.
func checkBootstrapFile(t *testing.T, file string) bootstrap.Options {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var (
		args []string
		body strings.Builder
	)
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, generatedWith); ok {
			args = strings.Fields(rest)
		}
		if !strings.HasPrefix(line, "#") {
			body.WriteString(line + "\n")
		}
	}
	opts, err := parseBootstrapArgs(args)
	if err != nil || args == nil {
		t.Fatalf("%s: header %q: %v", file, generatedWith+strings.Join(args, " "), err)
	}
	b, err := bootstrap.Render(opts)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	want, err := bootstrap.YAML(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.TrimRight(body.String(), "\n"), strings.TrimRight(string(want), "\n")); diff != "" {
		t.Errorf("%s is stale; regenerate it with `hopguard bootstrap %s` (-got +want):\n%s", file, strings.Join(args, " "), diff)
	}
	j, err := yaml.YAMLToJSON([]byte(body.String()))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var parsed bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(j, &parsed); err != nil {
		t.Fatalf("%s: not an Envoy Bootstrap: %v", file, err)
	}
	if err := parsed.ValidateAll(); err != nil {
		t.Errorf("%s: %v", file, err)
	}
	if parsed.GetNode().GetCluster() != opts.Service {
		t.Errorf("%s: node cluster %q, want %q", file, parsed.GetNode().GetCluster(), opts.Service)
	}
	if err := checkXDSKeepalive(&parsed); err != nil {
		t.Errorf("%s: %v", file, err)
	}
	return opts
}

// parseBootstrapArgs reads the flags of `hopguard bootstrap`.
func parseBootstrapArgs(args []string) (bootstrap.Options, error) {
	var o bootstrap.Options
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.Service, "service", "", "")
	fs.StringVar(&o.XDSAddr, "xds-addr", "", "")
	fs.StringVar(&o.NodeID, "node-id", "", "")
	adminPort := fs.Uint("admin-port", bootstrap.DefaultAdminPort, "")
	fs.StringVar(&o.Region, "region", "", "")
	fs.StringVar(&o.Zone, "zone", "", "")
	fs.StringVar(&o.SubZone, "sub-zone", "", "")
	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("deploy: %w", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("deploy: unexpected arguments %v", fs.Args())
	}
	o.AdminPort = uint32(*adminPort)
	return o, nil
}

const composeDir = "../examples/shop/compose"

// composeFile is the part of the Compose specification the example uses;
// strict decoding rejects anything else.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
}

type composeService struct {
	Image       string   `json:"image"`
	Command     []string `json:"command,omitempty"`
	Volumes     []string `json:"volumes,omitempty"`
	Ports       []string `json:"ports,omitempty"`
	NetworkMode string   `json:"network_mode,omitempty"`
	DependsOn   []string `json:"depends_on,omitempty"`
	Restart     string   `json:"restart,omitempty"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(composeDir, "docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		t.Fatalf("docker-compose.yaml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yaml: no services")
	}
	return c
}

// bindMounts splits a service's volumes into host source → container target,
// failing on volumes that are not relative bind mounts.
func bindMounts(t *testing.T, name string, s composeService) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) != 3 || parts[2] != "ro" || !strings.HasPrefix(parts[0], "./") {
			t.Errorf("service %s: volume %q, want ./SOURCE:TARGET:ro", name, v)
			continue
		}
		if _, err := os.Stat(filepath.Join(composeDir, parts[0])); err != nil {
			t.Errorf("service %s: volume %q: %v", name, v, err)
		}
		out[parts[0]] = parts[1]
	}
	return out
}

func TestKubernetesComposeExample(t *testing.T) {
	c := loadCompose(t)
	hg, ok := c.Services["hopguard"]
	if !ok {
		t.Fatal("no service hopguard")
	}
	wantCmd := []string{"run", "--config", "/etc/hopguard", "--xds-addr", "0.0.0.0:18000", "--admin-addr", "0.0.0.0:18080", "--extproc-addr", "0.0.0.0:18001"}
	if diff := cmp.Diff(hg.Command, wantCmd); diff != "" {
		t.Errorf("hopguard command (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(bindMounts(t, "hopguard", hg), map[string]string{"./config": "/etc/hopguard"}); diff != "" {
		t.Errorf("hopguard volumes (-got +want):\n%s", diff)
	}
	cfg := loadConfig(t, filepath.Join(composeDir, "config"))
	sameFile(t, filepath.Join(composeDir, "config", "budgets.yaml"), shopBudgets)
	if got, want := cfg.Mesh.Spec.ExtProc.Address, "hopguard"+strings.TrimPrefix(flagValue(hg.Command, "--extproc-addr"), "0.0.0.0"); got != want {
		t.Errorf("MeshConfig extProc.address %q, want %q (the hopguard service's ext_proc port)", got, want)
	}
	dns := map[string]string{}
	for _, s := range cfg.Services {
		dns[s.Metadata.Name] = s.Spec.DNS
	}

	mounted := map[string]bool{}
	sidecars := 0
	for name, s := range c.Services {
		if s.Image == "" {
			t.Errorf("service %s: no image", name)
		}
		for _, dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on unknown service %s", name, dep)
			}
		}
		for _, p := range s.Ports {
			if host, ctr, ok := strings.Cut(p, ":"); !ok || host == "" || ctr == "" {
				t.Errorf("service %s: port %q, want HOST:CONTAINER", name, p)
			}
		}
		mounts := bindMounts(t, name, s)
		for src := range mounts {
			mounted[filepath.Clean(src)] = true
		}
		app, isSidecar := strings.CutSuffix(name, "-envoy")
		if !isSidecar {
			continue
		}
		sidecars++
		if !strings.HasPrefix(s.Image, "envoyproxy/envoy:") {
			t.Errorf("service %s: image %q, want the official envoyproxy/envoy", name, s.Image)
		}
		if s.NetworkMode != "service:"+app || !slices.Contains(s.DependsOn, app) || !slices.Contains(s.DependsOn, "hopguard") {
			t.Errorf("service %s: network_mode %q depends_on %v, want service:%s and both %s and hopguard", name, s.NetworkMode, s.DependsOn, app, app)
		}
		if _, ok := c.Services[app]; !ok {
			t.Errorf("service %s: no application service %s", name, app)
		}
		if want := app + ":15006"; dns[app] != want {
			t.Errorf("budgets: service %s dns %q, want %q (its sidecar's inbound listener)", app, dns[app], want)
		}
		src := "./envoy/" + app + ".yaml"
		if mounts[src] != "/etc/envoy/envoy.yaml" || flagValue(s.Command, "-c") != "/etc/envoy/envoy.yaml" {
			t.Errorf("service %s: mounts %v command %v, want %s at /etc/envoy/envoy.yaml and -c to it", name, mounts, s.Command, src)
			continue
		}
		opts := checkBootstrapFile(t, filepath.Join(composeDir, src))
		if want := "hopguard" + strings.TrimPrefix(flagValue(hg.Command, "--xds-addr"), "0.0.0.0"); opts.Service != app || opts.XDSAddr != want {
			t.Errorf("%s: bootstrap for %q at %q, want %q at %q", src, opts.Service, opts.XDSAddr, app, want)
		}
	}
	if sidecars == 0 {
		t.Error("no Envoy sidecar service (NAME-envoy)")
	}
	entries, err := os.ReadDir(filepath.Join(composeDir, "envoy"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !mounted[filepath.Join("envoy", e.Name())] {
			t.Errorf("envoy/%s is mounted by no service", e.Name())
		}
	}
}

func TestKubernetesParseBootstrapArgs_Errors(t *testing.T) {
	for _, args := range [][]string{{"--colour", "x"}, {"--service", "a", "extra"}, {"--admin-port", "x"}} {
		if _, err := parseBootstrapArgs(args); err == nil || !strings.HasPrefix(err.Error(), "deploy: ") {
			t.Errorf("parseBootstrapArgs(%q): %v, want a deploy: error", args, err)
		}
	}
}

// TestKubernetesConfigMapMountLoads lays the generated ConfigMap out as the
// kubelet mounts it — the files in a timestamped directory, a "..data"
// symlink to it, and one symlink per key through "..data" — and checks
// hopguard loads exactly the documents of the key files from it.
func TestKubernetesConfigMapMountLoads(t *testing.T) {
	b := mustBuild(t, k8sDir)
	files := b.configMaps["hopguard-config"]
	mount := t.TempDir()
	stamp := filepath.Join(mount, "..2026_01_01_00_00_00.000000001")
	if err := os.Mkdir(stamp, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(stamp, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", filepath.Base(f)), filepath.Join(mount, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(stamp), filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	got := loadConfig(t, mount)
	want := loadConfig(t, files...)
	if diff := cmp.Diff(names(got), names(want)); diff != "" {
		t.Errorf("documents loaded from the mount (-got +want):\n%s", diff)
	}
	if len(got.Files) != len(files) {
		t.Errorf("loaded %v, want one file per key (%d)", got.Files, len(files))
	}
}
