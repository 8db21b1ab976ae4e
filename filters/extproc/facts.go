package extproc

import (
	"context"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hopguard/hopguard/filters/engine"
)

// Names of the request information the adapter reads besides the engine's
// headers (engine.Header*).
const (
	headerMethod      = ":method"
	headerPath        = ":path"
	headerAuthority   = ":authority"
	headerStatus      = ":status"
	headerContentType = "content-type"
	headerGRPCStatus  = "grpc-status"

	// attributesKey is the filter name under which data planes put the
	// request_attributes the control plane asks for.
	attributesKey = "envoy.filters.http.ext_proc"
	attrPath      = "request.path"
	attrHost      = "request.host"
)

// streamInfo is what the Process stream's own metadata says about the
// request: the per-route initial_metadata the control plane renders.
type streamInfo struct {
	// routeID is x-hopguard-route ("" when absent).
	routeID string
	// policyDigest is x-hopguard-policy ("" when absent).
	policyDigest string
	// side is x-hopguard-side (inbound unless "outbound").
	side engine.Side
}

// streamInfoFromContext reads the x-hopguard-* entries of the stream's
// incoming metadata; absent entries leave their zero value. It looks up
// the three keys instead of copying the whole metadata.
func streamInfoFromContext(ctx context.Context) streamInfo {
	var si streamInfo
	si.routeID = firstValue(ctx, engine.HeaderHopguardRoute)
	si.policyDigest = firstValue(ctx, engine.HeaderHopguardPolicy)
	if strings.EqualFold(firstValue(ctx, engine.HeaderHopguardSide), "outbound") {
		si.side = engine.Outbound
	}
	return si
}

// firstValue returns the first incoming metadata value of key ("" when absent).
func firstValue(ctx context.Context, key string) string {
	if v := metadata.ValueFromIncomingContext(ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// requestInfo is what one request_headers message says, before routing.
type requestInfo struct {
	// method and path are the HTTP method and the path without its query
	// (gRPC: POST and /pkg.Service/Method).
	method, path string
	// rawPath is the path as sent, query included ("" when absent).
	rawPath string
	// authority is :authority or the request.host attribute.
	authority string
	// hasPathHeader is true when the data plane sent :path: Envoy does,
	// grpc-go (proxyless) does not.
	hasPathHeader bool
	// grpc is true for gRPC requests (content-type application/grpc*, or
	// proxyless, where everything is gRPC).
	grpc bool
}

// headerValue returns the value of h: raw_value when set (grpc-go and newer
// Envoys), else value.
func headerValue(h *corev3.HeaderValue) string {
	if raw := h.GetRawValue(); len(raw) > 0 {
		return string(raw)
	}
	return h.GetValue()
}

// headerIn returns the first value of the lower-case header name in hm and
// whether it was sent.
func headerIn(hm *corev3.HeaderMap, name string) (string, bool) {
	for _, h := range hm.GetHeaders() {
		if lowerKey(h.GetKey()) == name {
			return headerValue(h), true
		}
	}
	return "", false
}

// lowerKey returns k in lower case, allocating only when k holds an upper
// case ASCII letter (data planes send lower-case keys already).
func lowerKey(k string) string {
	for i := 0; i < len(k); i++ {
		if c := k[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(k)
		}
	}
	return k
}

// attribute returns the string attribute name that the data plane attached
// under attributesKey, looking in the request-level attributes first and in
// the (deprecated) headers-level ones second. It returns "" when absent or
// not a string.
func attribute(req *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders, name string) string {
	for _, attrs := range []map[string]*structpb.Struct{req.GetAttributes(), h.GetAttributes()} {
		if v, ok := attrs[attributesKey].GetFields()[name]; ok {
			if s, ok := v.GetKind().(*structpb.Value_StringValue); ok {
				return s.StringValue
			}
		}
	}
	return ""
}

// parseError is called with the name of a header whose value was
// malformed and therefore ignored.
type parseError func(header string)

// factsFromHeaders fills the engine facts of one request from its
// request_headers message. idemHeader and principalHeader are the route's
// idempotency header and the mesh principal header (lower case; "" skips
// them). Malformed values leave their fact zero and are reported to bad.
// Facts.Side and PolicyDigest come from the stream and are left alone.
func factsFromHeaders(f *engine.Facts, hm *corev3.HeaderMap, idemHeader, principalHeader string, bad parseError) {
	for _, h := range hm.GetHeaders() {
		f.SetHeader(lowerKey(h.GetKey()), headerValue(h), idemHeader, principalHeader, bad)
	}
}

// requestInfoFromHeaders reads the method, path, authority and protocol of
// a request from its request_headers message and, for grpc-go which sends
// no pseudo-headers, from the request.path / request.host attributes.
func requestInfoFromHeaders(req *extprocv3.ProcessingRequest, h *extprocv3.HttpHeaders) requestInfo {
	var ri requestInfo
	var contentType string
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch lowerKey(hv.GetKey()) {
		case headerMethod:
			ri.method = headerValue(hv)
		case headerPath:
			ri.rawPath, ri.hasPathHeader = headerValue(hv), true
		case headerAuthority:
			ri.authority = headerValue(hv)
		case headerContentType:
			contentType = headerValue(hv)
		}
	}
	if !ri.hasPathHeader {
		ri.rawPath = attribute(req, h, attrPath)
	}
	if ri.authority == "" {
		ri.authority = attribute(req, h, attrHost)
	}
	ri.grpc = !ri.hasPathHeader || isGRPCContentType(contentType)
	if ri.method == "" && ri.grpc {
		ri.method = "POST"
	}
	ri.path = ri.rawPath
	if i := strings.IndexByte(ri.path, '?'); i >= 0 {
		ri.path = ri.path[:i]
	}
	return ri
}

// isGRPCContentType reports whether a content-type is gRPC's
// (application/grpc, application/grpc+proto, ...).
func isGRPCContentType(ct string) bool {
	const p = "application/grpc"
	return len(ct) >= len(p) && strings.EqualFold(ct[:len(p)], p)
}
