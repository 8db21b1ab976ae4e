package idempotency

import (
	"testing"
)

func TestScheme(t *testing.T) {
	settings := []struct {
		name    string
		headers []string
		body    bool
	}{
		{"method+path", nil, false},
		{"empty header list", []string{}, false},
		{"body", nil, true},
		{"x-amount", []string{"x-amount"}, false},
		{"x-amount+body", []string{"x-amount"}, true},
		{"x-amount,x-account", []string{"x-amount", "x-account"}, false},
		{"x-account,x-amount", []string{"x-account", "x-amount"}, false},
		{"x-amountx-account", []string{"x-amountx-account"}, false},
	}
	seen := map[uint8]string{}
	for _, s := range settings {
		got := Scheme(s.headers, s.body)
		if got == 0 {
			t.Errorf("Scheme(%s) = 0", s.name)
		}
		if again := Scheme(s.headers, s.body); again != got {
			t.Errorf("Scheme(%s) not deterministic: %d then %d", s.name, got, again)
		}
		if s.name == "empty header list" {
			if got != Scheme(nil, false) {
				t.Errorf("an empty header list is scheme %d, nil is %d; want equal", got, Scheme(nil, false))
			}
			continue
		}
		// One byte cannot keep every setting apart, but these few do.
		if prev, dup := seen[got]; dup {
			t.Errorf("Scheme(%s) = Scheme(%s) = %d", s.name, prev, got)
		}
		seen[got] = s.name
	}
}

func TestTagAndReused(t *testing.T) {
	plain, headers := Scheme(nil, false), Scheme([]string{"x-amount"}, false)
	a := Tag(plain, Fingerprint("POST", "/pay"))
	b := Tag(plain, Fingerprint("POST", "/refund"))
	c := Tag(headers, Fingerprint("POST", "/pay", "h", "10"))
	if a>>56 != uint64(plain) || c>>56 != uint64(headers) {
		t.Fatalf("Tag put schemes %d and %d in the top byte, want %d and %d", a>>56, c>>56, plain, headers)
	}
	if Tag(plain, 0) == 0 || Tag(1, ^uint64(0))>>56 != 1 {
		t.Error("Tag: the scheme byte is not kept apart from the hash")
	}
	tests := []struct {
		name       string
		stored, fp uint64
		wantReused bool
	}{
		{"same request", a, a, false},
		{"another request, same scheme", a, b, true},
		{"another scheme (settings changed)", a, c, false},
		{"another scheme, the other way", c, b, false},
		{"an untagged record of an older filter", Fingerprint("POST", "/pay") | 0xff<<56, b, false},
	}
	// A record of a version without schemes holds the bare hash; the same
	// request is never a reuse of it, whatever its top byte happens to be.
	for _, path := range []string{"/pay", "/refund", "/a", "/b", "/c", "/d"} {
		bare := Fingerprint("POST", path)
		if Reused(bare, Tag(plain, bare)) {
			t.Errorf("bare record %#x: the same request tagged %#x is a reuse", bare, Tag(plain, bare))
		}
	}
	for _, tt := range tests {
		if got := Reused(tt.stored, tt.fp); got != tt.wantReused {
			t.Errorf("%s: Reused(%#x, %#x) = %v, want %v", tt.name, tt.stored, tt.fp, got, tt.wantReused)
		}
	}
}

func TestScheme_NoAllocs(t *testing.T) {
	headers := []string{"x-amount", "x-account"}
	var sink uint8
	if allocs := testing.AllocsPerRun(100, func() { sink += Scheme(headers, true) }); allocs != 0 {
		t.Errorf("Scheme allocates %v times per run, want 0", allocs)
	}
	_ = sink
}
