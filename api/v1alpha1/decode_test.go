package v1alpha1

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// render turns violations into their "file:line:col: path: message" lines.
func render(vs Violations) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.String())
	}
	return out
}

func TestDecode_Success(t *testing.T) {
	ignorePositions := cmpopts.IgnoreFields(Service{}, "Positions")
	tests := []struct {
		name string
		in   string
		want []any
	}{
		{
			name: "service in block and flow style",
			in: `apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata:
  name: payments
  namespace: shop
  labels: {team: pay}
spec:
  protocol: http
  port: 8080
  endpoints:
    - {address: 10.0.0.1:80, locality: {region: r, zone: z, subZone: s}, weight: 3}
  dependsOn: [ledger, "users"]
`,
			want: []any{&Service{
				TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindService},
				Metadata: ObjectMeta{Name: "payments", Namespace: "shop", Labels: map[string]string{"team": "pay"}},
				Spec: ServiceSpec{
					Protocol:  ProtocolHTTP,
					Port:      8080,
					Endpoints: []Endpoint{{Address: "10.0.0.1:80", Locality: Locality{Region: "r", Zone: "z", SubZone: "s"}, Weight: 3}},
					DependsOn: []string{"ledger", "users"},
				},
				Pos: Pos{File: "f.yaml", Line: 1, Col: 1},
			}},
		},
		{
			name: "multi-document with empty and comment-only documents skipped",
			in: `---
# nothing here
---
apiVersion: hopguard.dev/v1alpha1
kind: MeshConfig
metadata: {name: m}
---
---
apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: s}
spec: {port: 1, dns: "s:1"}
`,
			want: []any{
				&MeshConfig{TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindMeshConfig}, Metadata: ObjectMeta{Name: "m"}, Pos: Pos{File: "f.yaml", Line: 4, Col: 1}},
				&Service{TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindService}, Metadata: ObjectMeta{Name: "s"}, Spec: ServiceSpec{Port: 1, DNS: "s:1"}, Pos: Pos{File: "f.yaml", Line: 9, Col: 1}},
			},
		},
		{
			name: "durations, auto, explicit zeros and null",
			in: `apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: r}
spec:
  service: s
  match: {path: /x, methods: [GET]}
  deadline: {default: 1h30m, max: 2h, minRemaining: 250ms}
  retry:
    attempts: 3
    on: [503, reset]
    perTryTimeout: ~
    minRemaining: auto
    budget: {ratio: 0, minPerSecond: 0}
  sideEffects: false
  idempotency: {ttl: 0s}
`,
			want: []any{&RouteBudget{
				TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindRouteBudget},
				Metadata: ObjectMeta{Name: "r"},
				Spec: RouteBudgetSpec{
					Service:  "s",
					Match:    Match{Path: "/x", Methods: []string{"GET"}},
					Deadline: Deadline{Default: Duration(90 * time.Minute), Max: Duration(2 * time.Hour), MinRemaining: Duration(250 * time.Millisecond)},
					Retry: Retry{
						Attempts:     3,
						On:           []string{"503", "reset"},
						MinRemaining: MinRemaining{Auto: true, Set: true},
						Budget:       Budget{Ratio: new(0.0), MinPerSecond: new(0)},
					},
					SideEffects: new(false),
				},
				Pos: Pos{File: "f.yaml", Line: 1, Col: 1},
			}},
		},
		{
			name: "minRemaining duration and anchors",
			in: `apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: r}
spec:
  service: s
  match: {grpcMethod: a.B/C}
  deadline: {default: &d 2s, max: *d}
  retry: {minRemaining: 10ms, backoff: {base: 1ms, max: 1ms}}
`,
			want: []any{&RouteBudget{
				TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindRouteBudget},
				Metadata: ObjectMeta{Name: "r"},
				Spec: RouteBudgetSpec{
					Service:  "s",
					Match:    Match{GRPCMethod: "a.B/C"},
					Deadline: Deadline{Default: Duration(2 * time.Second), Max: Duration(2 * time.Second)},
					Retry: Retry{
						MinRemaining: MinRemaining{Value: Duration(10 * time.Millisecond), Set: true},
						Backoff:      Backoff{Base: Duration(time.Millisecond), Max: Duration(time.Millisecond)},
					},
				},
				Pos: Pos{File: "f.yaml", Line: 1, Col: 1},
			}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, vs := Decode("f.yaml", []byte(tc.in))
			if len(vs) > 0 {
				t.Fatalf("Decode() violations:\n%s", vs.Error())
			}
			opts := cmp.Options{ignorePositions,
				cmpopts.IgnoreFields(RouteBudget{}, "Positions"),
				cmpopts.IgnoreFields(MeshConfig{}, "Positions")}
			if diff := cmp.Diff(got, tc.want, opts); diff != "" {
				t.Errorf("Decode() (-got +want):\n%s", diff)
			}
		})
	}
}

func TestDecode_Positions(t *testing.T) {
	in := `apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata:
  name: r
spec:
  service: s
  match: {grpcMethod: a.B/C}
  retry:
    on:
      - reset
      - "503"
`
	docs, vs := Decode("f.yaml", []byte(in))
	if len(vs) > 0 || len(docs) != 1 {
		t.Fatalf("Decode() = %d docs, violations:\n%s", len(docs), vs.Error())
	}
	rb := docs[0].(*RouteBudget)
	got := map[string]Pos{}
	for _, p := range []string{"metadata", "metadata.name", "spec.match", "spec.match.grpcMethod", "spec.retry", "spec.retry.on", "spec.retry.on[1]", "spec.retry.attempts", "spec.deadline.max"} {
		got[p] = rb.Positions.Lookup(p, rb.Pos)
	}
	at := func(line, col int) Pos { return Pos{File: "f.yaml", Line: line, Col: col} }
	want := map[string]Pos{
		"metadata":              at(3, 1),
		"metadata.name":         at(4, 9),
		"spec.match":            at(7, 3),
		"spec.match.grpcMethod": at(7, 23),
		"spec.retry":            at(8, 3),
		"spec.retry.on":         at(9, 5),
		"spec.retry.on[1]":      at(11, 9),
		"spec.retry.attempts":   at(8, 3), // absent: its parent
		"spec.deadline.max":     at(5, 1), // absent: spec
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Positions.Lookup (-got +want):\n%s", diff)
	}
	if got, want := (Positions)(nil).Lookup("spec.port", at(2, 1)), at(2, 1); got != want {
		t.Errorf("nil Positions.Lookup() = %v, want %v", got, want)
	}
}

func TestDecode_Errors(t *testing.T) {
	const head = "apiVersion: hopguard.dev/v1alpha1\n"
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{
			name: "unknown field with a suggestion",
			in:   head + "kind: RouteBudget\nmetadata: {name: r}\nspec:\n  retry:\n    atempts: 3\n",
			want: []string{`f.yaml:6:5: spec.retry.atempts: unknown field "atempts", did you mean "attempts"?`},
		},
		{
			name: "unknown field listing the allowed ones",
			in:   head + "kind: Service\nmetadata: {name: s}\nspec:\n  endpoints: [{address: 1.2.3.4:5, locality: {planet: mars}}]\n",
			want: []string{`f.yaml:5:47: spec.endpoints[0].locality.planet: unknown field "planet" (allowed: region, subZone, zone)`},
		},
		{
			name: "wrong scalar types",
			in: head + `kind: RouteBudget
metadata: {name: [r]}
spec:
  service: {a: b}
  retry: {attempts: three, budget: {ratio: high, minPerSecond: 1.5}, on: reset}
  sideEffects: "yes"
`,
			want: []string{
				`f.yaml:3:18: metadata.name: expected a string, got a list`,
				`f.yaml:5:12: spec.service: expected a string, got a mapping`,
				`f.yaml:6:21: spec.retry.attempts: expected an integer, got "three"`,
				`f.yaml:6:44: spec.retry.budget.ratio: expected a number, got "high"`,
				`f.yaml:6:64: spec.retry.budget.minPerSecond: expected an integer, got 1.5`,
				`f.yaml:6:74: spec.retry.on: expected a list, got "reset"`,
				`f.yaml:7:16: spec.sideEffects: expected true or false, got "yes"`,
			},
		},
		{
			name: "non-finite and out-of-range numbers",
			in:   head + "kind: RouteBudget\nmetadata: {name: r}\nspec:\n  retry: {attempts: 99999999999999999999, budget: {ratio: .nan}}\n",
			want: []string{
				`f.yaml:5:21: spec.retry.attempts: expected an integer, got 99999999999999999999`,
				`f.yaml:5:59: spec.retry.budget.ratio: expected a finite number, got .nan`,
			},
		},
		{
			name: "bad, unitless and negative durations",
			in:   head + "kind: RouteBudget\nmetadata: {name: r}\nspec:\n  deadline: {default: 5 s, max: 5, minRemaining: -1s}\n  retry: {minRemaining: soon, perTryTimeout: [1s]}\n",
			want: []string{
				`f.yaml:5:23: spec.deadline.default: invalid duration "5 s" (use Go syntax such as 250ms, 2s or 1h30m)`,
				`f.yaml:5:33: spec.deadline.max: invalid duration "5" (a unit is required, e.g. 5ms or 5s)`,
				`f.yaml:5:50: spec.deadline.minRemaining: negative duration "-1s" is not allowed`,
				`f.yaml:6:25: spec.retry.minRemaining: invalid duration "soon" (use Go syntax such as 250ms, 2s or 1h30m)`,
				`f.yaml:6:46: spec.retry.perTryTimeout: expected a duration such as 250ms, 2s or 1h30m, got a list`,
			},
		},
		{
			name: "duplicate keys",
			in:   head + "kind: Service\nmetadata: {name: s, labels: {a: x, a: y}}\nspec:\n  port: 1\n  port: 2\n",
			want: []string{
				`f.yaml:3:36: metadata.labels.a: duplicate key "a" (first at line 3)`,
				`f.yaml:6:3: spec.port: duplicate key "port" (first at line 5)`,
			},
		},
		{
			name: "syntax error after a good document keeps the good one's problems",
			in:   head + "kind: Service\nmetadata: {name: s, nme: x}\n---\n" + head + "kind: Service\nspec: {port: [1\n",
			want: []string{
				`f.yaml:3:21: metadata.nme: unknown field "nme", did you mean "name"?`,
				`f.yaml:7:1: syntax error: did not find expected ',' or ']'`,
			},
		},
		{
			name: "syntax error on the first line",
			in:   "a: b: c\n",
			want: []string{`f.yaml:1:1: syntax error: mapping values are not allowed in this context`},
		},
		{
			name: "documents that are not mappings",
			in:   "- a\n---\nplain\n",
			want: []string{
				`f.yaml:1:1: a document must be a mapping with apiVersion, kind, metadata and spec, got a list`,
				`f.yaml:3:1: a document must be a mapping with apiVersion, kind, metadata and spec, got "plain"`,
			},
		},
		{
			name: "missing and bad apiVersion and kind",
			in:   "kind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\n---\n" + head + "metadata: {}\n---\n" + head + "kind: Pod\n---\n" + head + "kind: 3\n",
			want: []string{
				`f.yaml:1:1: apiVersion: missing apiVersion (want hopguard.dev/v1alpha1)`,
				`f.yaml:4:13: apiVersion: unsupported apiVersion "v1" (want hopguard.dev/v1alpha1)`,
				`f.yaml:7:1: kind: missing kind (want Service, RouteBudget or MeshConfig)`,
				`f.yaml:11:7: kind: unknown kind "Pod" (want Service, RouteBudget or MeshConfig)`,
				`f.yaml:14:7: kind: expected a string, got 3`,
			},
		},
		{
			name: "merge keys and non-string keys",
			in:   head + "kind: Service\nmetadata: {<<: {name: s}}\nspec: {[a]: 1}\n",
			want: []string{
				`f.yaml:3:12: metadata.<<: merge keys (<<) are not supported; write the fields out`,
				`f.yaml:4:8: spec: expected a field name, got a list`,
			},
		},
		{
			name: "several documents report everything",
			in:   head + "kind: MeshConfig\nmetadata: {name: m}\nspec: {drift: {action: 1.5}, extProc: {timeout: fast}}\n---\n" + head + "kind: Service\nmetadata: {name: s}\nspec: {port: true}\n",
			want: []string{
				`f.yaml:4:24: spec.drift.action: expected a string, got 1.5`,
				`f.yaml:4:49: spec.extProc.timeout: invalid duration "fast" (use Go syntax such as 250ms, 2s or 1h30m)`,
				`f.yaml:9:14: spec.port: expected an integer, got true`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, vs := Decode("f.yaml", []byte(tc.in))
			if diff := cmp.Diff(render(vs), tc.want); diff != "" {
				t.Errorf("Decode() violations (-got +want):\n%s", diff)
			}
		})
	}
}
