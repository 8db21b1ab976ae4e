package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hopguard/hopguard/policy/signing"
)

func TestKeygenCmd_Success(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	var out strings.Builder
	_, _, err := execute(t, newKeygenCmd(Env{Stdout: &out}, &globalFlags{}), "--out", dir)
	if err != nil {
		t.Fatalf("keygen: %v", err)
	}
	priv, err := signing.LoadPrivateKey(filepath.Join(dir, signing.PrivateKeyFile))
	if err != nil {
		t.Fatalf("load written private key: %v", err)
	}
	pub, err := signing.LoadPublicKey(filepath.Join(dir, signing.PublicKeyFile))
	if err != nil {
		t.Fatalf("load written public key: %v", err)
	}
	if pub.ID() != priv.ID() {
		t.Errorf("public key id %s, private key id %s", pub.ID(), priv.ID())
	}
	for _, want := range []string{"key id:      " + priv.ID(), filepath.Join(dir, signing.PrivateKeyFile), filepath.Join(dir, signing.PublicKeyFile)} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %v, want 0700", st.Mode().Perm())
	}
}

func TestKeygenCmd_Errors(t *testing.T) {
	existing := t.TempDir()
	if _, _, err := execute(t, newKeygenCmd(Env{Stdout: &strings.Builder{}}, &globalFlags{}), "--out", existing); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(existing, signing.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no --out", []string{"keygen"}, ExitError, "--out DIR is required"},
		{"stray argument", []string{"keygen", "--out", t.TempDir(), "extra"}, ExitError, "unknown command"},
		{"existing key", []string{"keygen", "--out", existing}, ExitError, "refusing to overwrite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut strings.Builder
			code := Main(t.Context(), Env{Args: tt.args, Stdout: &out, Stderr: &errOut})
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.wantCode, errOut.String())
			}
			if !strings.Contains(errOut.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut.String(), tt.wantErr)
			}
		})
	}
	after, err := os.ReadFile(filepath.Join(existing, signing.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Error("an existing private key was overwritten")
	}
}
