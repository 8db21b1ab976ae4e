package signing

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteKeyPair_RoundTripAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	priv, pub, id, err := WriteKeyPair(dir)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{priv: 0o600, pub: 0o644, dir: 0o700} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s mode %v, want %v", path, got, want)
		}
	}
	k, err := LoadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID() != id || p.ID() != id || !strings.HasPrefix(id, "ed25519:") {
		t.Errorf("ids: private %s public %s written %s", k.ID(), p.ID(), id)
	}
	sig := k.Sign("d", []byte("msg"))
	if err := p.Verify("d", []byte("msg"), sig); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := p.Verify("other-domain", []byte("msg"), sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a signature verified in another domain: %v", err)
	}
	if err := p.Verify("d", []byte("msh"), sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a signature verified over another message: %v", err)
	}
}

func TestWriteKeyPair_RefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	priv, _, _, err := WriteKeyPair(dir)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(priv)
	if _, _, _, err := WriteKeyPair(dir); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second WriteKeyPair = %v, want a refusal", err)
	}
	after, _ := os.ReadFile(priv)
	if string(before) != string(after) {
		t.Error("the private key changed")
	}
}

func TestLoad_Errors(t *testing.T) {
	dir := t.TempDir()
	priv, pub, _, err := WriteKeyPair(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(priv, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKey(priv); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable private key: %v, want a refusal naming chmod 600", err)
	}
	if _, err := LoadPublicKey(priv); err == nil {
		t.Error("a private key loaded as a public key")
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKey(garbage); err == nil {
		t.Error("garbage loaded as a private key")
	}
	if _, err := LoadPublicKey(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file loaded")
	}
	if _, err := LoadPublicKey(pub); err != nil {
		t.Errorf("public key: %v", err)
	}
}
