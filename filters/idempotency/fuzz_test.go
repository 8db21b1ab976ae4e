package idempotency

import (
	"bytes"
	"testing"
)

// FuzzValidKey checks ValidKey against its definition, byte by byte.
func FuzzValidKey(f *testing.F) {
	for _, s := range []string{"", "a", " a", "a ", "a b", "\x7f", "\x1f", "clé", string(make([]byte, 256))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		want := len(k) >= 1 && len(k) <= MaxKeyLen && k[0] != ' ' && k[len(k)-1] != ' '
		for i := 0; want && i < len(k); i++ {
			want = k[i] >= 0x20 && k[i] <= 0x7e
		}
		if got := ValidKey(k); got != want {
			t.Errorf("ValidKey(%q) = %v, want %v", k, got, want)
		}
	})
}

// FuzzFingerprint checks that Fingerprint hashes the length-prefixed
// encoding, is never 0, and that moving a field boundary changes the
// encoding it hashes.
func FuzzFingerprint(f *testing.F) {
	f.Add("POST", "/a", "x", uint8(1))
	f.Add("", "", "", uint8(0))
	f.Add("a", "bc", "", uint8(2))
	f.Fuzz(func(t *testing.T, method, path, extra string, cut uint8) {
		got := Fingerprint(method, path, extra)
		if got == 0 {
			t.Fatalf("Fingerprint(%q, %q, %q) = 0", method, path, extra)
		}
		if want := refFingerprint(method, path, extra); got != want {
			t.Fatalf("Fingerprint(%q, %q, %q) = %#x, want %#x", method, path, extra, got, want)
		}
		// Move the method/path boundary: the fields differ, so must the
		// hashed encodings.
		joined := method + path
		i := int(cut) % (len(joined) + 1)
		if i == len(method) {
			return
		}
		a := encodeFields(method, path, extra)
		b := encodeFields(joined[:i], joined[i:], extra)
		if bytes.Equal(a, b) {
			t.Fatalf("encodings of (%q, %q) and (%q, %q) collide", method, path, joined[:i], joined[i:])
		}
	})
}
