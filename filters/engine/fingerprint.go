package engine

import (
	"crypto/sha256"

	"github.com/hopguard/hopguard/filters/idempotency"
)

// RequestFingerprint returns the idempotency fingerprint of a request on
// route r, for Facts.Fingerprint: its method and path, the values of the
// route's fingerprint headers (header returns a header's first value and
// whether it was sent at all), and, when the route fingerprints bodies and
// hasBody is set, a sha256 of body. A sent header differs from an absent
// one even when empty. With neither headers nor a body to add it equals
// what the engine computes for a zero Facts.Fingerprint, so adapters may
// call it unconditionally.
func RequestFingerprint(r *Route, method, path string, header func(name string) (string, bool), body []byte, hasBody bool) uint64 {
	id := &r.Policy.Idempotency
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
	if hasBody && id.FingerprintBody {
		sum := sha256.Sum256(body)
		fp.Add("b")
		fp.AddBytes(sum[:])
	}
	return fp.Sum()
}
