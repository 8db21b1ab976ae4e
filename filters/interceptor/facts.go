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

	if v, ok := lookup(md, engine.HeaderHopguardDeadline); ok {
		if t, ok := engine.ParseUnixMillis(v); ok {
			f.HopguardDeadline = t
		} else {
			bad(engine.HeaderHopguardDeadline)
		}
	}
	// grpc-go turns grpc-timeout into the context deadline and does not
	// show it as metadata; read it anyway for callers that relay it.
	if v, ok := lookup(md, engine.HeaderGRPCTimeout); ok {
		if d, ok := engine.ParseGRPCTimeout(v); ok {
			f.GRPCTimeout = d
		} else {
			bad(engine.HeaderGRPCTimeout)
		}
	}
	if v, ok := lookup(md, engine.HeaderEnvoyExpectedTimeout); ok {
		if d, ok := engine.ParseMillis(v); ok {
			f.EnvoyExpectedTimeout = d
		} else {
			bad(engine.HeaderEnvoyExpectedTimeout)
		}
	}
	f.EnvoyAttemptCount = attempt(md, engine.HeaderEnvoyAttemptCount, bad)
	f.GRPCPreviousAttempts = attempt(md, engine.HeaderGRPCPreviousAttempts, bad)
	f.HopguardAttempt = attempt(md, engine.HeaderHopguardAttempt, bad)

	if idemHeader != "" {
		f.Key, f.HasKey = lookup(md, strings.ToLower(idemHeader))
	}
	if principalHeader != "" {
		f.Principal = first(md, strings.ToLower(principalHeader))
	}
}

// attempt parses the attempt header key of md (0 when absent or malformed).
func attempt(md metadata.MD, key string, bad func(string)) int {
	v, ok := lookup(md, key)
	if !ok {
		return 0
	}
	n, ok := engine.ParseAttempt(v)
	if !ok {
		bad(key)
	}
	return n
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
