package idempotency

// A stored fingerprint carries its scheme: the top byte names what the
// fingerprint covers (which headers, whether a body), the low 56 bits are
// the hash. Two fingerprints tell requests apart only when they were made
// under the same scheme. Under different schemes (records made before a
// change to a route's spec.idempotency.fingerprint, or by a filter still on
// the previous policy during a rollout) they cannot: the hashes differ even
// for the very same request.

const (
	schemeShift = 56
	hashMask    = 1<<schemeShift - 1
)

// Scheme returns the scheme (1 to 255) of fingerprints that cover method,
// path, the values of headers (in this order) and, when body is set, a
// hash of the body. It does not allocate.
func Scheme(headers []string, body bool) uint8 {
	h := hashField(fnvOffset64, "method+path")
	for _, name := range headers {
		h = hashField(h, name)
	}
	if body {
		h = hashField(h, "+body")
	}
	// Fold the 64 bits into one byte, avoiding 0 so a tagged fingerprint is
	// never 0 ("not computed").
	h ^= h >> 32
	h ^= h >> 16
	h ^= h >> 8
	return uint8(h%255) + 1
}

// Tag returns the stored form of hash h (from Fingerprint or a
// Fingerprinter) made under scheme s: s in the top byte, the low 56 bits of
// h below it. With s from Scheme the result is never 0.
func Tag(s uint8, h uint64) uint64 {
	return uint64(s)<<schemeShift | h&hashMask
}

// Reused reports whether a request with fingerprint fp presents the key of
// a record claimed with fingerprint stored by another request: the same
// scheme and another hash. Under different schemes the fingerprints cannot
// be compared, and the request counts as the same one, so the key's
// recorded answer stands: a change to what a route fingerprints never turns
// a retry into a refusal, and never lets a second execution through. Until
// the records made before it expire, a reused key is told apart from a
// retry by the key alone, as it was before fingerprints covered headers or
// bodies.
func Reused(stored, fp uint64) bool {
	if stored>>schemeShift != fp>>schemeShift {
		return false
	}
	return stored != fp
}
