package idempotency

import (
	"hash/fnv"
	"strings"
	"testing"
)

func TestValidKey_Success(t *testing.T) {
	tests := []string{
		"a",
		"8e03978e-40d5-43e8-bc93-6894a57f9324",
		"order 1234", // interior space
		"!~",
		strings.Repeat("k", MaxKeyLen),
		"all" + string(rune(0x21)) + "printable~",
	}
	for _, k := range tests {
		if !ValidKey(k) {
			t.Errorf("ValidKey(%q) = false, want true", k)
		}
	}
}

func TestValidKey_Errors(t *testing.T) {
	tests := []struct {
		name string
		key  string
	}{
		{"empty", ""},
		{"too long", strings.Repeat("k", MaxKeyLen+1)},
		{"leading space", " abc"},
		{"trailing space", "abc "},
		{"only space", " "},
		{"tab", "a\tb"},
		{"newline", "a\nb"},
		{"nul", "a\x00b"},
		{"del", "a\x7fb"},
		{"non-ascii", "clé"},
		{"high byte", "a\xffb"},
	}
	for _, tt := range tests {
		if ValidKey(tt.key) {
			t.Errorf("%s: ValidKey(%q) = true, want false", tt.name, tt.key)
		}
	}
}

// refFingerprint is Fingerprint written with the standard library's FNV and
// an explicit length-prefixed encoding.
func refFingerprint(fields ...string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(encodeFields(fields...))
	if s := h.Sum64(); s != 0 {
		return s
	}
	return 1
}

// encodeFields is the byte string Fingerprint hashes.
func encodeFields(fields ...string) []byte {
	var b []byte
	for _, f := range fields {
		n := uint64(len(f))
		for n >= 0x80 {
			b = append(b, byte(n)|0x80)
			n >>= 7
		}
		b = append(b, byte(n))
		b = append(b, f...)
	}
	return b
}

func TestFingerprint_Success(t *testing.T) {
	long := strings.Repeat("p", 300) // a two-byte length prefix
	inputs := [][]string{
		{"POST", "/shop.Payments/CreateCharge"},
		{"POST", "/shop.Payments/CreateCharg", "e"},
		{"POST", "/shop.Payments/CreateCharge", ""},
		{"POST", "/shop.Payments/CreateCharge", "body-sha"},
		{"PUT", "/shop.Payments/CreateCharge"},
		{"a", "bc"},
		{"ab", "c"},
		{"", "abc"},
		{"abc", ""},
		{"a\x00", "b"},
		{"a", "\x00b"},
		{"", ""},
		{"", "", ""},
		{"POST", long},
		{"POST", long[:299], "p"},
	}
	seen := map[uint64][]string{}
	for _, in := range inputs {
		got := Fingerprint(in[0], in[1], in[2:]...)
		if want := refFingerprint(in...); got != want {
			t.Errorf("Fingerprint(%q) = %#x, want %#x (reference)", in, got, want)
		}
		if got == 0 {
			t.Errorf("Fingerprint(%q) = 0", in)
		}
		if again := Fingerprint(in[0], in[1], in[2:]...); again != got {
			t.Errorf("Fingerprint(%q) not deterministic: %#x then %#x", in, got, again)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("Fingerprint(%q) = Fingerprint(%q) = %#x", in, prev, got)
		}
		seen[got] = in
		// Field by field, as strings or as bytes, it sums the same.
		fs, fb := NewFingerprinter(in[0], in[1]), NewFingerprinter(in[0], in[1])
		for _, e := range in[2:] {
			fs.Add(e)
			fb.AddBytes([]byte(e))
		}
		if fs.Sum() != got || fb.Sum() != got {
			t.Errorf("Fingerprinter(%q) = %#x (Add), %#x (AddBytes); want %#x", in, fs.Sum(), fb.Sum(), got)
		}
	}
}

func TestFingerprint_NoAllocs(t *testing.T) {
	method, path, hdr := "POST", "/shop.Payments/CreateCharge", "application/grpc"
	var sink uint64
	allocs := testing.AllocsPerRun(100, func() {
		sink += Fingerprint(method, path)
		sink += Fingerprint(method, path, hdr, path)
	})
	if allocs != 0 {
		t.Errorf("Fingerprint allocates %v times per run, want 0", allocs)
	}
	if sink == 0 {
		t.Error("fingerprints summed to 0")
	}
}
