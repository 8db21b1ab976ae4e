package bundle

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/policy"
	"github.com/hopguard/hopguard/policy/signing"
)

// shopPolicies compiles the bundled example from the given directory.
func shopPolicies(t *testing.T, dir string) *policy.Bundle {
	t.Helper()
	cfg, vs, err := v1alpha1.Load(dir)
	if err != nil || len(vs.Errors()) > 0 {
		t.Fatalf("load %s: %v %v", dir, err, vs.Errors())
	}
	m, err := ir.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m.Bundle()
}

func signedBundle(t *testing.T, k *signing.PrivateKey, env string, gen uint64) []byte {
	t.Helper()
	return signedPolicies(t, k, shopPolicies(t, "../../examples/shop/config"), env, gen)
}

// changedPolicies is the example with one route's default deadline changed:
// other policies, another policy_hash.
func changedPolicies(t *testing.T) *policy.Bundle {
	t.Helper()
	p := shopPolicies(t, "../../examples/shop/config")
	p.Routes[0].Deadline.Default += time.Millisecond
	return p
}

func signedPolicies(t *testing.T, k *signing.PrivateKey, p *policy.Bundle, env string, gen uint64) []byte {
	t.Helper()
	b := New(*p, SchemaRev, env, gen, time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	if err := b.Sign(k); err != nil {
		t.Fatal(err)
	}
	raw, err := Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func key(t *testing.T) *signing.PrivateKey {
	t.Helper()
	k, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPolicyHash_IndependentOfFileOrderAndFormatting(t *testing.T) {
	src := "../../examples/shop/config"
	want := PolicyHash(shopPolicies(t, src))
	// The same documents, all in one file, in reverse order, reformatted.
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range strings.Split(string(b), "\n---\n") {
			if strings.TrimSpace(d) != "" {
				docs = append(docs, "# reformatted\n"+strings.ReplaceAll(d, ": ", ":   ")+"\n")
			}
		}
	}
	for i, j := 0, len(docs)-1; i < j; i, j = i+1, j-1 {
		docs[i], docs[j] = docs[j], docs[i]
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "all.yaml"), []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := PolicyHash(shopPolicies(t, dir)); got != want {
		t.Errorf("policy hash of the reordered config = %s, want %s", got, want)
	}
	p := shopPolicies(t, src)
	p.Routes[0].Retry.Attempts++
	if PolicyHash(p) == want {
		t.Error("a changed policy kept its hash")
	}
}

func TestVerifier_AcceptsAGoodBundle(t *testing.T) {
	k := key(t)
	v := NewVerifier("prod", k.Public())
	b, err := v.Accept(signedBundle(t, k, "prod", 7))
	if err != nil {
		t.Fatal(err)
	}
	if b.Generation != 7 || b.SignedBy != k.ID() || len(b.Policies.Routes) == 0 {
		t.Errorf("accepted %+v", b)
	}
}

func TestVerifier_Refusals(t *testing.T) {
	k, other := key(t), key(t)
	good := signedBundle(t, k, "prod", 5)
	unsigned := func() []byte {
		b := New(*shopPolicies(t, "../../examples/shop/config"), SchemaRev, "prod", 6, time.Now())
		raw, _ := Marshal(b)
		return raw
	}()
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"wrong key", signedBundle(t, other, "prod", 6), ErrBadSignature},
		{"other environment", signedBundle(t, k, "staging", 6), ErrWrongEnvironment},
		{"other policies, older generation", signedPolicies(t, k, changedPolicies(t), "prod", 4), ErrStale},
		{"other policies, same generation", signedPolicies(t, k, changedPolicies(t), "prod", 5), ErrStale},
		{"unsigned", unsigned, ErrUnsigned},
		{"not json", []byte("{"), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewVerifier("prod", k.Public())
			if _, err := v.Accept(good); err != nil {
				t.Fatal(err)
			}
			_, err := v.Accept(tt.raw)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Accept = %v, want %v", err, tt.want)
			}
			if Reason(err) == "other" {
				t.Errorf("Reason(%v) = other", err)
			}
			// A refusal changes nothing: the next good bundle is judged
			// against the one in force.
			if _, err := v.Accept(signedPolicies(t, k, changedPolicies(t), "prod", 6)); err != nil {
				t.Errorf("next good bundle after a refusal: %v", err)
			}
		})
	}
}

// TestVerifier_SamePoliciesAreUnchanged: the bundle in force sent again
// (after a reconnect, or by a replica that numbers generations on its own,
// higher or lower) verifies as unchanged, not as a stale refusal; a higher
// generation raises the one in force.
func TestVerifier_SamePoliciesAreUnchanged(t *testing.T) {
	k := key(t)
	v := NewVerifier("prod", k.Public())
	if _, err := v.Accept(signedBundle(t, k, "prod", 5)); err != nil {
		t.Fatal(err)
	}
	for _, gen := range []uint64{5, 3, 8} {
		b, err := v.Accept(signedBundle(t, k, "prod", gen))
		if !errors.Is(err, ErrUnchanged) || b == nil || b.Generation != gen {
			t.Fatalf("same policies at generation %d: %v (bundle %v), want ErrUnchanged with the bundle", gen, err, b != nil)
		}
		if Reason(err) != "unchanged" {
			t.Errorf("Reason = %q, want unchanged", Reason(err))
		}
	}
	// The unchanged bundle at 8 raised the generation in force to 8: other
	// policies below it are stale (no rollback past a resend), above it a
	// change.
	if g := v.Generation(); g != 8 {
		t.Errorf("generation in force = %d, want 8", g)
	}
	if _, err := v.Accept(signedPolicies(t, k, changedPolicies(t), "prod", 7)); !errors.Is(err, ErrStale) {
		t.Errorf("other policies at generation 7, below the unchanged 8: %v, want %v", err, ErrStale)
	}
	if _, err := v.Accept(signedPolicies(t, k, changedPolicies(t), "prod", 9)); err != nil {
		t.Fatalf("other policies at generation 9: %v", err)
	}
	if _, err := v.Accept(signedBundle(t, k, "prod", 4)); !errors.Is(err, ErrStale) {
		t.Errorf("earlier policies at an older generation: %v, want %v", err, ErrStale)
	}
	if _, err := v.Accept(signedBundle(t, k, "prod", 10)); err != nil {
		t.Errorf("earlier policies at a newer generation: %v", err)
	}
	// Verification still comes first: a tampered copy of the bundle in
	// force is refused, not reported as unchanged.
	raw := signedBundle(t, key(t), "prod", 11)
	if _, err := v.Accept(raw); !errors.Is(err, ErrBadSignature) {
		t.Errorf("bundle in force signed by an unknown key: %v, want %v", err, ErrBadSignature)
	}
}

// TestVerifier_EveryFlippedByteIsRefused flips each byte of a signed
// bundle in turn (its low bit, and bit 5, which changes a letter's case or
// turns a space into a NUL): none may be accepted, even a flip that leaves
// JSON decoding to the same values (the wire form is canonical), and every
// refusal must carry one of the package's reasons.
func TestVerifier_EveryFlippedByteIsRefused(t *testing.T) {
	k := key(t)
	good := signedBundle(t, k, "prod", 9)
	reasons := map[string]int{}
	for i := range good {
		for _, flip := range []byte{0x01, 0x20} {
			raw := append([]byte(nil), good...)
			raw[i] ^= flip
			v := NewVerifier("prod", k.Public())
			b, err := v.Accept(raw)
			if err == nil {
				t.Fatalf("byte %d (%q) ^ %#x accepted: generation %d", i, good[i], flip, b.Generation)
			}
			r := Reason(err)
			if r == "other" {
				t.Fatalf("byte %d (%q) ^ %#x refused without a reason: %v", i, good[i], flip, err)
			}
			reasons[r]++
		}
	}
	t.Logf("%d bytes, %d flips refused: %v", len(good), 2*len(good), reasons)
	if reasons["signature"] == 0 || reasons["malformed"] == 0 {
		t.Errorf("refusal reasons %v: want both signature and malformed refusals", reasons)
	}
}

// TestVerifier_RefusesEquivalentRewrites: JSON that decodes to the very
// same bundle but is not the canonical bytes is refused as malformed.
func TestVerifier_RefusesEquivalentRewrites(t *testing.T) {
	k := key(t)
	good := signedBundle(t, k, "prod", 9)
	var indented bytes.Buffer
	if err := json.Indent(&indented, good, "", "  "); err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string][]byte{
		"indented":         indented.Bytes(),
		"trailing newline": append(append([]byte(nil), good...), '\n'),
		"leading space":    append([]byte(" "), good...),
		"escaped letter":   bytes.Replace(good, []byte(`"prod"`), []byte(`"pro\u0064"`), 1),
	} {
		t.Run(name, func(t *testing.T) {
			if bytes.Equal(raw, good) {
				t.Fatal("rewrite left the bytes unchanged")
			}
			if _, err := NewVerifier("prod", k.Public()).Accept(raw); !errors.Is(err, ErrMalformed) {
				t.Errorf("Accept = %v, want %v", err, ErrMalformed)
			}
		})
	}
	if _, err := NewVerifier("prod", k.Public()).Accept(good); err != nil {
		t.Errorf("the canonical bytes: %v", err)
	}
}

// TestManifest_SignatureIsNotABundleSignature: the same key signs both
// kinds of document under different domains.
func TestManifest_SignatureIsNotABundleSignature(t *testing.T) {
	k := key(t)
	b := New(*shopPolicies(t, "../../examples/shop/config"), SchemaRev, "prod", 3, time.Now())
	b.SignedBy = k.ID()
	msg, err := b.signedBytes()
	if err != nil {
		t.Fatal(err)
	}
	b.Signature = base64.StdEncoding.EncodeToString(k.Sign(manifestDomain, msg))
	raw, err := Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier("prod", k.Public()).Accept(raw); !errors.Is(err, ErrBadSignature) {
		t.Errorf("bundle signed in the manifest domain: %v, want %v", err, ErrBadSignature)
	}
}

func TestVerifier_KeyRotation(t *testing.T) {
	oldKey, newKey := key(t), key(t)
	v := NewVerifier("prod", oldKey.Public(), newKey.Public())
	if _, err := v.Accept(signedBundle(t, oldKey, "prod", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Accept(signedPolicies(t, newKey, changedPolicies(t), "prod", 2)); err != nil {
		t.Fatal(err)
	}
}

func TestVerifier_AllowUnsigned(t *testing.T) {
	v := NewVerifier("prod")
	v.AllowUnsigned()
	b := New(*shopPolicies(t, "../../examples/shop/config"), SchemaRev, "prod", 3, time.Now())
	raw, _ := Marshal(b)
	if _, err := v.Accept(raw); err != nil {
		t.Errorf("unsigned bundle with AllowUnsigned: %v", err)
	}
	// A signed bundle from an unknown key is still refused.
	if _, err := v.Accept(signedBundle(t, key(t), "prod", 4)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("unknown signer with AllowUnsigned: %v", err)
	}
}

func TestManifest_SignVerify(t *testing.T) {
	k := key(t)
	m := Manifest{Service: "ledger", Node: "ledger-1", SnapshotVersion: "v1", ConfigHash: "v1", PolicyHash: "p", Generation: 3,
		SchemaRev: SchemaRev, ExpectedEnv: "prod", IssuedAt: time.Now()}
	m.Locality.Region = "eu-west-1"
	if err := m.Sign(k); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(k.Public()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	tampered := m
	tampered.SnapshotVersion = "v0"
	if err := tampered.Verify(k.Public()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered manifest: %v", err)
	}
	if err := m.Verify(key(t).Public()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("wrong key: %v", err)
	}
	unsigned := Manifest{Node: "n"}
	if err := unsigned.Verify(k.Public()); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned manifest: %v", err)
	}
}
