package engine

import (
	"crypto/sha256"

	"github.com/hopguard/hopguard/filters/idempotency"
)

// plainScheme is the scheme of fingerprints over method and path alone.
var plainScheme = idempotency.Scheme(nil, false)

// plainFingerprint is the fingerprint of a request known by method and path
// alone: what the engine computes for a zero Facts.Fingerprint without a
// FingerprintFunc.
func plainFingerprint(method, path string) uint64 {
	return idempotency.Tag(plainScheme, idempotency.Fingerprint(method, path))
}

// RequestFingerprint returns the idempotency fingerprint of a request on
// route r, for Facts.Fingerprint: its method and path, the values of the
// route's fingerprint headers (header returns a header's first value and
// whether it was sent at all), and, when the route fingerprints bodies and
// hasBody is set, a sha256 of body. A sent header differs from an absent
// one even when empty. The result is tagged with its scheme (see
// idempotency.Scheme): the header names and whether a body was hashed.
// With neither headers nor a body to add it equals what the engine
// computes for a zero Facts.Fingerprint, so adapters may call it
// unconditionally.
func RequestFingerprint(r *Route, method, path string, header func(name string) (string, bool), body []byte, hasBody bool) uint64 {
	id := &r.Policy.Idempotency
	withBody := hasBody && id.FingerprintBody
	if len(id.FingerprintHeaders) == 0 && !withBody {
		return plainFingerprint(method, path)
	}
	fp := idempotency.NewFingerprinter(method, path)
	// Each header adds ("h", value) when sent and ("-") when not: with
	// length-prefixed fields the sequence decodes one way only.
	for _, name := range id.FingerprintHeaders {
		v, ok := "", false
		if header != nil {
			v, ok = header(name)
		}
		if ok {
			fp.Add("h")
			fp.Add(v)
		} else {
			fp.Add("-")
		}
	}
	if withBody {
		sum := sha256.Sum256(body)
		fp.Add("b")
		fp.AddBytes(sum[:])
	}
	return idempotency.Tag(idempotency.Scheme(id.FingerprintHeaders, withBody), fp.Sum())
}
