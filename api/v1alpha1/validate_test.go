package v1alpha1

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// validBase declares the services the validation cases refer to: s (gRPC)
// and h (HTTP), both in namespace default.
const validBase = `apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: s}
spec: {port: 80, dns: s.default.svc:80}
---
apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: h}
spec: {protocol: http, port: 80, endpoints: [{address: 10.0.0.1:80}]}
`

// checkStrings decodes base.yaml (validBase) and f.yaml (in) and runs what
// Load runs after reading files, returning the Config and every violation.
func checkStrings(t *testing.T, in string) (*Config, Violations) {
	t.Helper()
	base, vs := decodeFile("base.yaml", []byte(validBase))
	if len(vs) > 0 {
		t.Fatalf("base.yaml: %s", vs.Error())
	}
	docs, vs := decodeFile("f.yaml", []byte(in))
	return check([]string{"base.yaml", "f.yaml"}, append(base, docs...), vs)
}

func TestValidate_Success(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // warnings only
	}{
		{name: "nothing but services", in: ""},
		{
			name: "routes with every field",
			in: `apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: r1}
spec:
  service: s
  match: {grpcMethod: Greeter/SayHello}
  deadline: {default: 800ms, max: 2s, minRemaining: 20ms}
  retry: {attempts: 3, on: [unavailable, "503"], perTryTimeout: 250ms, backoff: {base: 25ms, max: 250ms}, minRemaining: 100ms}
  idempotency: {require: always}
---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: r2}
spec:
  service: h
  match: {path: /a, methods: [GET]}
---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: r3}
spec:
  service: h
  match: {path: /a, methods: [POST]}
`,
		},
		{
			name: "weights up to the uint32 limit, nulls and defaults",
			in: `apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: w, namespace: other}
spec:
  port: 80
  endpoints:
    - {address: 10.0.0.1:80, locality: {zone: a}, weight: 4294967294}
    - {address: 10.0.0.2:80, locality: {zone: b}}
---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: r, namespace: other}
spec:
  service: w
  match: {grpcMethod: a.B/C}
  deadline: {default: ~, max: 3s}
  retry: {authority: none}
---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: r}
spec:
  service: s
  match: {grpcMethod: a.B/C}
`,
		},
		{
			name: "warnings keep the config valid",
			in: `apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: r1}
spec:
  service: s
  match: {grpcMethod: a.B/C}
  deadline: {default: 10s}
  retry: {attempts: 6}
---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: r2}
spec:
  service: s
  match: {grpcMethod: a.B/D}
  retry: {attempts: 3, authority: none}
  idempotency: {require: never}
`,
			want: []string{
				"f.yaml:8:21: warning: spec.retry.attempts: 6 attempts multiply load 6-fold under failure; 5 or fewer is advised",
				"f.yaml:16:21: warning: spec.retry.attempts: attempts 3 has no effect with authority none (nobody retries)",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, vs := checkStrings(t, tc.in)
			if cfg == nil {
				t.Fatalf("config is nil; violations:\n%s", vs.Error())
			}
			if diff := cmp.Diff(render(vs), tc.want, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("violations (-got +want):\n%s", diff)
			}
		})
	}
}

func TestValidate_Errors(t *testing.T) {
	const rb = "apiVersion: hopguard.dev/v1alpha1\nkind: RouteBudget\n"
	const svc = "apiVersion: hopguard.dev/v1alpha1\nkind: Service\n"
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{
			name: "names and duplicates",
			in: svc + "metadata: {name: Bad_Name, namespace: -x}\nspec: {port: 1, dns: a:1}\n---\n" +
				svc + "metadata: {name: s}\nspec: {port: 1, dns: a:1}\n---\n" +
				svc + "metadata: {namespace: other}\nspec: {port: 1, dns: a:1}\n",
			want: []string{
				`f.yaml:3:18: metadata.name: invalid name "Bad_Name": want a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit)`,
				`f.yaml:3:39: metadata.namespace: invalid namespace "-x": want a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit)`,
				`f.yaml:8:18: metadata.name: duplicate Service "s" in namespace "default" (first at base.yaml:3:18)`,
				`f.yaml:13:1: metadata.name: required`,
			},
		},
		{
			name: "service spec",
			in: svc + `metadata: {name: a}
spec:
  protocol: thrift
  port: 70000
  endpoints:
    - {address: db.local:80}
    - {address: "10.0.0.1", weight: -1}
    - {address: 10.0.0.2:80, weight: 0}
  dns: "bad host:80"
  dependsOn: [a, s, s, nope]
---
` + svc + "metadata: {name: b}\nspec: {}\n",
			want: []string{
				`f.yaml:5:13: spec.protocol: unknown protocol "thrift" (want grpc or http)`,
				`f.yaml:6:9: spec.port: must be between 1 and 65535, got 70000`,
				`f.yaml:8:17: spec.endpoints[0].address: invalid address "db.local:80": host must be an IP address`,
				`f.yaml:9:17: spec.endpoints[1].address: invalid address "10.0.0.1": want host:port`,
				`f.yaml:9:37: spec.endpoints[1].weight: must be at least 1, got -1`,
				`f.yaml:10:38: spec.endpoints[2].weight: must be at least 1 (omit the field for the default 1)`,
				`f.yaml:11:8: spec.dns: endpoints and dns are mutually exclusive`,
				`f.yaml:11:8: spec.dns: invalid dns "bad host:80": host must be an IP address or a DNS name`,
				`f.yaml:12:15: spec.dependsOn[0]: a service cannot depend on itself`,
				`f.yaml:12:21: spec.dependsOn[2]: duplicate entry "s" (first at dependsOn[1])`,
				`f.yaml:12:24: spec.dependsOn[3]: unknown service "nope" in namespace "default"`,
				`f.yaml:17:1: spec.port: required (1–65535)`,
				`f.yaml:17:1: spec: one of endpoints and dns is required`,
			},
		},
		{
			name: "an address twice in one service",
			in: svc + `metadata: {name: a}
spec:
  port: 80
  endpoints:
    - {address: 10.0.0.1:80}
    - {address: "[::1]:80"}
    - {address: 10.0.0.1:81}
    - {address: "[::ffff:10.0.0.1]:80"}
    - {address: "[0:0::1]:80", locality: {zone: b}}
`,
			want: []string{
				`f.yaml:10:17: spec.endpoints[3].address: duplicate endpoint "[::ffff:10.0.0.1]:80" (first at spec.endpoints[0])`,
				`f.yaml:11:17: spec.endpoints[4].address: duplicate endpoint "[0:0::1]:80" (first at spec.endpoints[1])`,
			},
		},
		{
			name: "endpoint weights and their sums fit in uint32",
			in: svc + `metadata: {name: one-locality}
spec:
  port: 80
  endpoints:
    - {address: 10.0.0.1:80, weight: 3000000000}
    - {address: 10.0.0.2:80, locality: {zone: b}}
    - {address: 10.0.0.3:80, weight: 3000000000}
---
` + svc + `metadata: {name: localities}
spec:
  port: 80
  endpoints:
    - {address: 10.0.0.1:80, locality: {region: eu, zone: a}, weight: 3000000000}
    - {address: 10.0.0.2:80, locality: {region: eu, zone: b}, weight: 1294967295}
    - {address: 10.0.0.3:80, locality: {region: eu, zone: b}}
---
` + svc + `metadata: {name: defaulted-weight}
spec:
  port: 80
  endpoints:
    - {address: 10.0.0.1:80, weight: 4294967295}
    - {address: 10.0.0.2:80}
---
` + svc + `metadata: {name: too-heavy}
spec:
  port: 80
  endpoints:
    - {address: 10.0.0.1:80, weight: 4294967296}
    - {address: 10.0.0.2:80, locality: {subZone: r1}, weight: 4294967295}
`,
			want: []string{
				`f.yaml:9:38: spec.endpoints[2].weight: the weights of the endpoints in the locality without region, zone and subZone add up to 6000000000, more than 4294967295: Envoy and grpc-go would reject the endpoints (the sum passes the limit at this endpoint)`,
				`f.yaml:19:7: spec.endpoints[2].weight: the weights of all endpoints add up to 4294967296, more than 4294967295: Envoy and grpc-go would reject the endpoints, as each locality weighs the sum of its endpoints' weights and all localities share one priority (the sum passes the limit at this endpoint)`,
				`f.yaml:28:7: spec.endpoints[1].weight: the weights of the endpoints in the locality without region, zone and subZone add up to 4294967296, more than 4294967295: Envoy and grpc-go would reject the endpoints (the sum passes the limit at this endpoint)`,
				`f.yaml:36:38: spec.endpoints[0].weight: must be at most 4294967295, got 4294967296`,
			},
		},
		{
			name: "service names are unique across namespaces",
			in: svc + "metadata: {name: s, namespace: shop}\nspec: {port: 1, dns: a:1}\n---\n" +
				svc + "metadata: {name: h, namespace: shop}\nspec: {port: 1, dns: a:1}\n---\n" +
				svc + "metadata: {name: h, namespace: shop}\nspec: {port: 1, dns: a:1}\n",
			want: []string{
				`f.yaml:3:18: metadata.name: Service name "s" is already used in namespace "default" (first at base.yaml:3:18); Service names must be unique across namespaces (nodes and xDS clusters identify a Service by name alone)`,
				`f.yaml:8:18: metadata.name: Service name "h" is already used in namespace "default" (first at base.yaml:8:18); Service names must be unique across namespaces (nodes and xDS clusters identify a Service by name alone)`,
				`f.yaml:13:18: metadata.name: duplicate Service "h" in namespace "shop" (first at f.yaml:8:18)`,
			},
		},
		{
			name: "values nobody wrote are named as defaults",
			in: rb + `metadata: {name: r1}
spec:
  service: s
  match: {grpcMethod: a.B/C}
  deadline: {max: 300ms}
---
` + rb + `metadata: {name: r2}
spec:
  service: s
  match: {grpcMethod: a.B/D}
  deadline: {default: ~, max: 2s, minRemaining: 1s}
  retry: {perTryTimeout: 900ms, backoff: {base: 100ms}}
---
` + rb + `metadata: {name: r3}
spec:
  service: s
  match: {grpcMethod: a.B/E}
  deadline: {default: 2ms}
  retry: {attempts: 3, perTryTimeout: 1ms, backoff: {max: 10ms}, minRemaining: 2ms}
  idempotency: {require: never}
---
` + rb + `metadata: {name: r4}
spec:
  service: h
  match: {path: /a, methods: [GET, POST]}
  retry: {perTryTimeout: 200ms, minRemaining: 1s}
  idempotency: {require: never}
`,
			want: []string{
				`f.yaml:7:19: spec.deadline.max: max (300ms) must be at least default (1s); deadline.default is not set and defaults to 1s`,
				`f.yaml:15:49: spec.deadline.minRemaining: minRemaining (1s) must be less than default (1s); deadline.default is not set and defaults to 1s`,
				`f.yaml:16:26: spec.retry.perTryTimeout: worst case perTryTimeout × attempts + backoff.max × (attempts-1) = 900ms × 2 + 1s × 1 = 2.8s exceeds deadline.max (2s); retry.attempts is not set and defaults to 2; retry.backoff.max is not set and defaults to 10 × retry.backoff.base = 1s`,
				`f.yaml:24:3: spec.deadline.minRemaining: minRemaining (5ms) must be less than default (2ms); deadline.minRemaining is not set and defaults to 5ms`,
				`f.yaml:25:39: spec.retry.perTryTimeout: worst case perTryTimeout × attempts + backoff.max × (attempts-1) = 1ms × 3 + 10ms × 2 = 23ms exceeds deadline.max (2ms); deadline.max is not set and defaults to deadline.default = 2ms`,
				`f.yaml:25:59: spec.retry.backoff.max: max (10ms) must be at least base (25ms); retry.backoff.base is not set and defaults to 25ms`,
				`f.yaml:25:80: spec.retry.minRemaining: minRemaining (2ms) must be less than deadline.max (2ms); deadline.max is not set and defaults to deadline.default = 2ms`,
				`f.yaml:26:26: spec.idempotency.require: a route with side effects and retries (attempts 3) must require an idempotency key (always or retries), or set sideEffects: false or attempts: 1; sideEffects is not set and defaults to true for grpcMethod matches`,
				`f.yaml:34:47: spec.retry.minRemaining: minRemaining (1s) must be less than deadline.max (1s); deadline.max and deadline.default are not set and default to 1s`,
				`f.yaml:35:26: spec.idempotency.require: a route with side effects and retries (attempts 2) must require an idempotency key (always or retries), or set sideEffects: false or attempts: 1; sideEffects is not set and defaults to true for matches that allow POST or PATCH; retry.attempts is not set and defaults to 2`,
			},
		},
		{
			name: "match rules",
			in: rb + "metadata: {name: r1}\nspec: {service: h, match: {grpcMethod: a.B/C, methods: [GET]}}\n---\n" +
				rb + "metadata: {name: r2}\nspec: {service: s, match: {grpcMethod: not-a-method}}\n---\n" +
				rb + "metadata: {name: r3}\nspec: {service: s, match: {path: /a, pathPrefix: /b}}\n---\n" +
				rb + "metadata: {name: r4}\nspec: {service: h, match: {path: relative, methods: [get, PUT, PUT]}}\n---\n" +
				rb + "metadata: {name: r5}\nspec: {service: ghost, match: {}}\n---\n" +
				rb + "metadata: {name: r6}\nspec: {match: {pathPrefix: /p}}\n",
			want: []string{
				`f.yaml:4:40: spec.match.grpcMethod: service "h" speaks http; match it with path or pathPrefix`,
				`f.yaml:4:47: spec.match.methods: methods apply only to path and pathPrefix matches`,
				`f.yaml:9:40: spec.match.grpcMethod: invalid gRPC method "not-a-method" (want package.Service/Method or package.Service/*)`,
				`f.yaml:14:50: spec.match.pathPrefix: path and pathPrefix are mutually exclusive`,
				`f.yaml:19:34: spec.match.path: invalid path "relative" (want an absolute path starting with "/", without query or fragment)`,
				`f.yaml:19:54: spec.match.methods[0]: unknown HTTP method "get" (want one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT)`,
				`f.yaml:19:64: spec.match.methods[2]: duplicate method "PUT"`,
				`f.yaml:24:17: spec.service: unknown service "ghost" in namespace "default"`,
				`f.yaml:24:24: spec.match: one of grpcMethod, path and pathPrefix is required`,
				`f.yaml:29:1: spec.service: required`,
			},
		},
		{
			name: "overlapping matches on one service",
			in: rb + "metadata: {name: r1}\nspec: {service: h, match: {path: /a, methods: [GET, POST]}}\n---\n" +
				rb + "metadata: {name: r2}\nspec: {service: h, match: {path: /a, methods: [POST]}}\n---\n" +
				rb + "metadata: {name: r3}\nspec: {service: h, match: {path: /a, methods: [PUT]}}\n---\n" +
				rb + "metadata: {name: r4}\nspec: {service: h, match: {path: /a}}\n",
			want: []string{
				`f.yaml:9:20: spec.match: same match as RouteBudget "r1" (f.yaml:4:20) on service "h"`,
				`f.yaml:19:20: spec.match: same match as RouteBudget "r1" (f.yaml:4:20) on service "h"`,
			},
		},
		{
			name: "deadline and retry numbers",
			in: rb + `metadata: {name: r1}
spec:
  service: s
  match: {grpcMethod: a.B/C}
  deadline: {default: 2s, max: 1s, minRemaining: 3s}
  retry:
    authority: sometimes
    attempts: 11
    on: [unavailable, unavailable, "600", "0503", oops]
    backoff: {base: 1s, max: 10ms}
    budget: {ratio: 1.5, minPerSecond: -1}
    minRemaining: 1s
---
` + rb + `metadata: {name: r2}
spec:
  service: s
  match: {grpcMethod: a.B/D}
  deadline: {default: 1s}
  retry: {attempts: 3, perTryTimeout: 400ms, backoff: {max: 200ms}}
---
` + rb + `metadata: {name: r3}
spec:
  service: s
  match: {grpcMethod: a.B/E}
  retry: {perTryTimeout: 2s, attempts: 0}
`,
			want: []string{
				`f.yaml:7:32: spec.deadline.max: max (1s) must be at least default (2s)`,
				`f.yaml:7:50: spec.deadline.minRemaining: minRemaining (3s) must be less than default (2s)`,
				`f.yaml:9:16: spec.retry.authority: unknown authority "sometimes" (want mesh, app or none)`,
				`f.yaml:10:15: spec.retry.attempts: must be between 1 and 10, got 11`,
				`f.yaml:11:23: spec.retry.on[1]: duplicate retry condition "unavailable"`,
				`f.yaml:11:36: spec.retry.on[2]: unknown retry condition "600" (want one of unavailable, cancelled, deadline-exceeded, internal, resource-exhausted, reset, connect-failure, refused-stream, retriable-4xx, 5xx, gateway-error, or an HTTP status code 100–599)`,
				`f.yaml:11:43: spec.retry.on[3]: unknown retry condition "0503" (want one of unavailable, cancelled, deadline-exceeded, internal, resource-exhausted, reset, connect-failure, refused-stream, retriable-4xx, 5xx, gateway-error, or an HTTP status code 100–599)`,
				`f.yaml:11:51: spec.retry.on[4]: unknown retry condition "oops" (want one of unavailable, cancelled, deadline-exceeded, internal, resource-exhausted, reset, connect-failure, refused-stream, retriable-4xx, 5xx, gateway-error, or an HTTP status code 100–599)`,
				`f.yaml:12:30: spec.retry.backoff.max: max (10ms) must be at least base (1s)`,
				`f.yaml:13:21: spec.retry.budget.ratio: must be between 0 and 1, got 1.5`,
				`f.yaml:13:40: spec.retry.budget.minPerSecond: must not be negative, got -1`,
				`f.yaml:14:19: spec.retry.minRemaining: minRemaining (1s) must be less than deadline.max (1s)`,
				`f.yaml:23:39: spec.retry.perTryTimeout: worst case perTryTimeout × attempts + backoff.max × (attempts-1) = 400ms × 3 + 200ms × 2 = 1.6s exceeds deadline.max (1s); deadline.max is not set and defaults to deadline.default = 1s`,
				`f.yaml:31:26: spec.retry.perTryTimeout: perTryTimeout (2s) exceeds deadline.max (1s); deadline.max and deadline.default are not set and default to 1s`,
				`f.yaml:31:40: spec.retry.attempts: must be at least 1 (1 means no retries)`,
			},
		},
		{
			name: "gRPC conditions on an http service",
			in:   rb + "metadata: {name: r1}\nspec: {service: h, match: {path: /x}, retry: {on: [deadline-exceeded, 5xx, \"429\"]}}\n",
			want: []string{
				`f.yaml:4:52: spec.retry.on[0]: "deadline-exceeded" is a gRPC status condition; service "h" speaks http`,
			},
		},
		{
			name: "idempotency and mode",
			in: rb + `metadata: {name: r1}
spec:
  service: s
  match: {grpcMethod: a.B/C}
  retry: {attempts: 3}
  idempotency: {require: never, header: "Bad Header", onDuplicate: ignore, ttl: 0s}
  mode: audit
---
` + rb + `metadata: {name: r2}
spec:
  service: s
  match: {grpcMethod: a.B/D}
  idempotency: {require: sometimes, onStoreFailure: half}
`,
			want: []string{
				`f.yaml:8:26: spec.idempotency.require: a route with side effects and retries (attempts 3) must require an idempotency key (always or retries), or set sideEffects: false or attempts: 1; sideEffects is not set and defaults to true for grpcMethod matches`,
				`f.yaml:8:41: spec.idempotency.header: invalid header name "Bad Header" (want an HTTP token)`,
				`f.yaml:8:68: spec.idempotency.onDuplicate: unknown value "ignore" (want reject or replay)`,
				`f.yaml:8:81: spec.idempotency.ttl: must be greater than 0 (omit the field for the default)`,
				`f.yaml:9:9: spec.mode: unknown mode "audit" (want enforce or dry-run)`,
				`f.yaml:17:26: spec.idempotency.require: unknown value "sometimes" (want always, retries or never)`,
				`f.yaml:17:53: spec.idempotency.onStoreFailure: unknown value "half" (want closed or open)`,
			},
		},
		{
			name: "idempotency fingerprint headers",
			in: rb + `metadata: {name: r1}
spec:
  service: s
  match: {grpcMethod: a.B/C}
  idempotency:
    header: Idempotency-Key
    fingerprint: {headers: [x-amount, "bad header", X-Amount, idempotency-key]}
---
` + rb + `metadata: {name: r2}
spec:
  service: s
  match: {grpcMethod: a.B/D}
  idempotency: {fingerprint: {headers: [h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17]}}
---
` + rb + `metadata: {name: r3}
spec:
  service: s
  match: {grpcMethod: a.B/E}
  idempotency: {fingerprint: {headers: [X-Envoy-Attempt-Count, grpc-timeout]}}
`,
			want: []string{
				`f.yaml:9:39: spec.idempotency.fingerprint.headers[1]: invalid header name "bad header" (want an HTTP token)`,
				`f.yaml:9:53: spec.idempotency.fingerprint.headers[2]: header "X-Amount" is listed twice`,
				`f.yaml:9:63: spec.idempotency.fingerprint.headers[3]: "idempotency-key" is the idempotency key header itself: the key already scopes the record`,
				`f.yaml:17:31: spec.idempotency.fingerprint.headers: 17 headers, at most 16`,
				`f.yaml:25:41: spec.idempotency.fingerprint.headers[0]: "X-Envoy-Attempt-Count" changes from one attempt to the next: every retry would look like another request`,
				`f.yaml:25:64: spec.idempotency.fingerprint.headers[1]: "grpc-timeout" changes from one attempt to the next: every retry would look like another request`,
			},
		},
		{
			name: "mesh config",
			in: `apiVersion: hopguard.dev/v1alpha1
kind: MeshConfig
metadata: {name: m}
spec:
  environment: Prod_EU
  principalHeader: "x:y"
  changeWindows:
    - {days: [Mon, Funday, Mon], from: "9:00", to: "25:00", timezone: Mars/Olympus}
    - {days: [], from: "17:00", to: "09:00", timezone: Local}
  drift: {action: panic, maxQuarantinePercent: 101}
  extProc: {address: localhost, timeout: 0s}
---
apiVersion: hopguard.dev/v1alpha1
kind: MeshConfig
metadata: {name: second}
`,
			want: []string{
				`f.yaml:5:16: spec.environment: invalid environment "Prod_EU": want a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit)`,
				`f.yaml:6:20: spec.principalHeader: invalid header name "x:y" (want an HTTP token)`,
				`f.yaml:8:20: spec.changeWindows[0].days[1]: unknown day "Funday" (want one of Mon, Tue, Wed, Thu, Fri, Sat, Sun)`,
				`f.yaml:8:28: spec.changeWindows[0].days[2]: duplicate day "Mon"`,
				`f.yaml:8:40: spec.changeWindows[0].from: invalid time "9:00" (want HH:MM, 00:00–23:59)`,
				`f.yaml:8:52: spec.changeWindows[0].to: invalid time "25:00" (want HH:MM, 00:00–23:59)`,
				`f.yaml:8:71: spec.changeWindows[0].timezone: invalid timezone "Mars/Olympus" (want an IANA zone name such as UTC or Europe/Paris)`,
				`f.yaml:9:8: spec.changeWindows[1].days: required: at least one of Mon, Tue, Wed, Thu, Fri, Sat, Sun`,
				`f.yaml:9:37: spec.changeWindows[1].to: to (09:00) must be after from (17:00)`,
				`f.yaml:9:56: spec.changeWindows[1].timezone: invalid timezone "Local" (want an IANA zone name such as UTC or Europe/Paris)`,
				`f.yaml:10:19: spec.drift.action: unknown action "panic" (want alert or quarantine)`,
				`f.yaml:10:48: spec.drift.maxQuarantinePercent: must be between 0 and 100, got 101`,
				`f.yaml:11:22: spec.extProc.address: invalid address "localhost": want host:port`,
				`f.yaml:11:42: spec.extProc.timeout: must be greater than 0 (omit the field for the default)`,
				`f.yaml:13:1: kind: at most one MeshConfig is allowed (first at f.yaml:1:1)`,
			},
		},
		{
			name: "refused values do not feed other rules",
			in: rb + `metadata: {name: r1}
spec:
  service: s
  match: {grpcMethod: a.B/C}
  deadline: {default: soon, max: 300ms}
---
` + rb + `metadata: {name: r2}
spec:
  service: s
  match: {grpcMethod: a.B/D}
  retry: {attempts: 0, perTryTimeout: 400ms}
`,
			want: []string{
				`f.yaml:7:23: spec.deadline.default: invalid duration "soon" (use Go syntax such as 250ms, 2s or 1h30m)`,
				`f.yaml:15:21: spec.retry.attempts: must be at least 1 (1 means no retries)`,
			},
		},
		{
			name: "decode errors are not reported twice",
			in:   svc + "metadata: {name: a}\nspec: {port: eighty, dns: a:1}\n---\n" + rb + "metadata: {name: r}\nspec: {service: s, match: {grpcMethod: a.B/C}, deadline: {default: soon}, retry: {attempts: many}}\n",
			want: []string{
				`f.yaml:4:14: spec.port: expected an integer, got "eighty"`,
				`f.yaml:9:68: spec.deadline.default: invalid duration "soon" (use Go syntax such as 250ms, 2s or 1h30m)`,
				`f.yaml:9:93: spec.retry.attempts: expected an integer, got "many"`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, vs := checkStrings(t, tc.in)
			if cfg != nil {
				t.Errorf("config is not nil despite errors")
			}
			if diff := cmp.Diff(render(vs), tc.want); diff != "" {
				t.Errorf("violations (-got +want):\n%s", diff)
			}
		})
	}
}

// TestValidate_GoBuilt checks configs built in Go (no positions): violations
// point at the document and rules that need positions stay quiet.
func TestValidate_GoBuilt(t *testing.T) {
	cfg := &Config{
		Services: []*Service{{
			TypeMeta: TypeMeta{APIVersion: "v1", Kind: KindService},
			Metadata: ObjectMeta{Name: "s"},
			Spec:     ServiceSpec{Port: 80, DNS: "s:80"},
			Pos:      Pos{File: "go", Line: 1, Col: 1},
		}},
		RouteBudgets: []*RouteBudget{{
			TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindService},
			Metadata: ObjectMeta{Name: "r"},
			Spec: RouteBudgetSpec{
				Service:  "s",
				Match:    Match{GRPCMethod: "a.B/C"},
				Deadline: Deadline{Default: Duration(time.Second), Max: Duration(time.Second)},
				Retry:    Retry{PerTryTimeout: Duration(600 * time.Millisecond)},
			},
		}},
	}
	SetDefaults(cfg)
	// Documents without positions are reported at their Pos (unknown here
	// for the route budget); the defaulted MeshConfig is valid.
	want := []string{
		`kind: kind "Service" does not match the document type RouteBudget`,
		`spec.retry.perTryTimeout: worst case perTryTimeout × attempts + backoff.max × (attempts-1) = 600ms × 2 + 250ms × 1 = 1.45s exceeds deadline.max (1s)`,
		`go:1:1: apiVersion: unsupported apiVersion "v1" (want hopguard.dev/v1alpha1)`,
	}
	if diff := cmp.Diff(render(Validate(cfg)), want); diff != "" {
		t.Errorf("Validate() (-got +want):\n%s", diff)
	}
	if got := Validate(nil); got != nil {
		t.Errorf("Validate(nil) = %v, want nil", got)
	}
	if !strings.Contains(Violations{{Message: "a"}, {Message: "b"}}.Error(), "a\nb") {
		t.Errorf("Violations.Error() does not list every violation")
	}
}
