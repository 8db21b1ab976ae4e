package idempotency

import "strings"

// scopeKey encodes s as the store's map key: each field (Route, Side,
// Principal, Key) preceded by its length as a uvarint. Length prefixes make
// the encoding injective, so scopes differing in any field never share a
// key, whatever bytes the fields hold. The key is one fresh allocation: the
// store keeps no reference to the caller's strings (a header value may pin
// a whole request message).
func scopeKey(s *Scope) string {
	fields := [4]string{s.Route, s.Side, s.Principal, s.Key}
	n := 0
	for _, f := range fields {
		n += uvarintLen(len(f)) + len(f)
	}
	var b strings.Builder
	b.Grow(n)
	for _, f := range fields {
		v := uint(len(f))
		for v >= 0x80 {
			b.WriteByte(byte(v) | 0x80)
			v >>= 7
		}
		b.WriteByte(byte(v))
		b.WriteString(f)
	}
	return b.String()
}

// uvarintLen is the number of bytes of n as a uvarint.
func uvarintLen(n int) int {
	l := 1
	for v := uint(n); v >= 0x80; v >>= 7 {
		l++
	}
	return l
}
