package interceptor

import (
	"strings"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/hopguard/hopguard/filters/engine"
)

// factsFromMetadata fills the engine facts of one incoming RPC from its
// metadata. The RPC is inbound and proxyless: grpc-go itself is the data
// plane, so grpc-previous-rpc-attempts counts the caller channel's xDS
// retries (mesh). idemHeader and principalHeader are the route's
// idempotency header and the mesh principal header ("" skips them).
// Malformed values leave their fact zero and are reported to bad.
func factsFromMetadata(f *engine.Facts, md metadata.MD, fullMethod string, deadline time.Time, idemHeader, principalHeader string, bad func(header string)) {
	f.Side = engine.Inbound
	f.Proxyless = true
	f.Method = "POST"
	f.Path = fullMethod
	f.StreamDeadline = deadline
	f.PolicyDigest = first(md, engine.HeaderHopguardPolicy)

	idemHeader, principalHeader = strings.ToLower(idemHeader), strings.ToLower(principalHeader)
	// grpc-go lower-cases metadata keys. It also turns grpc-timeout into the
	// context deadline and does not show it as metadata; a caller relaying
	// it is read all the same.
	for k, vs := range md {
		for _, v := range vs {
			f.SetHeader(k, v, idemHeader, principalHeader, bad)
		}
	}
}

// lookup returns the first value of key (lower case) in md.
func lookup(md metadata.MD, key string) (string, bool) {
	if v := md[key]; len(v) > 0 {
		return v[0], true
	}
	return "", false
}

// first returns the first value of key in md, "" when absent.
func first(md metadata.MD, key string) string {
	v, _ := lookup(md, key)
	return v
}
