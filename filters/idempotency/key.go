package idempotency

// MaxKeyLen is the longest idempotency key accepted, in bytes (Stripe's
// limit).
const MaxKeyLen = 255

// ValidKey reports whether k is an acceptable idempotency key: 1 to
// MaxKeyLen bytes of printable ASCII (0x20–0x7E), not starting or ending
// with a space.
//
// Interior spaces are printable and survive every hop, so they are
// allowed. Leading and trailing spaces are not: HTTP field values carry
// optional whitespace that parsers and proxies trim (RFC 9110 §5.5), so
// such a key would not reach every hop byte for byte, and two hops could
// scope one request under two keys. Control characters, DEL and non-ASCII
// bytes are refused.
func ValidKey(k string) bool {
	if len(k) == 0 || len(k) > MaxKeyLen || k[0] == ' ' || k[len(k)-1] == ' ' {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// FNV-1a, 64 bit.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// Fingerprint identifies a request for key-reuse detection: FNV-1a (64
// bit) over method, path and extra (selected header values, a body hash),
// each preceded by its length as a uvarint. The length prefixes make the
// encoding injective, so ("a","bc") and ("ab","c") hash different inputs,
// and so do (m, p) and (m, p, ""). The result is never 0 (a hash of 0 is
// returned as 1), so 0 can mean "not computed". It does not allocate.
//
// Fingerprint is not a cryptographic hash: it tells honest requests apart,
// it does not resist a caller crafting a collision for its own key.
func Fingerprint(method, path string, extra ...string) uint64 {
	h := hashField(fnvOffset64, method)
	h = hashField(h, path)
	for _, s := range extra {
		h = hashField(h, s)
	}
	if h == 0 {
		h = 1
	}
	return h
}

// Fingerprinter computes a Fingerprint field by field, without building
// the extra fields as strings first: NewFingerprinter(m, p) followed by
// Add(e1) … Add(en) sums to Fingerprint(m, p, e1, …, en). AddBytes is Add
// for a byte slice. The zero value is not usable.
type Fingerprinter struct{ h uint64 }

// NewFingerprinter starts a fingerprint of method and path.
func NewFingerprinter(method, path string) Fingerprinter {
	return Fingerprinter{h: hashField(hashField(fnvOffset64, method), path)}
}

// Add feeds one more field.
func (f *Fingerprinter) Add(s string) { f.h = hashField(f.h, s) }

// AddBytes feeds one more field given as bytes.
func (f *Fingerprinter) AddBytes(b []byte) { f.h = hashBytesField(f.h, b) }

// Sum returns the fingerprint of the fields fed so far (never 0).
func (f *Fingerprinter) Sum() uint64 {
	if f.h == 0 {
		return 1
	}
	return f.h
}

// hashBytesField is hashField for a byte slice.
func hashBytesField(h uint64, b []byte) uint64 {
	h = hashLen(h, len(b))
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime64
	}
	return h
}

// hashLen feeds n as a uvarint into the FNV-1a state h.
func hashLen(h uint64, length int) uint64 {
	n := uint64(length)
	for n >= 0x80 {
		h = (h ^ (n&0x7f | 0x80)) * fnvPrime64
		n >>= 7
	}
	return (h ^ n) * fnvPrime64
}

// hashField feeds len(s) as a uvarint, then s, into the FNV-1a state h.
func hashField(h uint64, s string) uint64 {
	h = hashLen(h, len(s))
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime64
	}
	return h
}
