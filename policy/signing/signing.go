// Package signing holds hopguard's ed25519 keys: generating them, writing
// and reading them as PEM files, and signing messages with a domain
// separation prefix so a signature made for one kind of document (a policy
// bundle, a runtime manifest) can never be replayed as another.
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File names WriteKeyPair uses inside its directory.
const (
	PrivateKeyFile = "hopguard-signing.key"
	PublicKeyFile  = "hopguard-signing.pub"
)

// ErrBadSignature is wrapped by Verify's errors.
var ErrBadSignature = errors.New("signing: signature does not verify")

// PrivateKey is an ed25519 signing key.
type PrivateKey struct {
	key ed25519.PrivateKey
	id  string
}

// PublicKey is an ed25519 verification key.
type PublicKey struct {
	key ed25519.PublicKey
	id  string
}

// Generate returns a new random key.
func Generate() (*PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing: generate: %w", err)
	}
	return newPrivate(k), nil
}

func newPrivate(k ed25519.PrivateKey) *PrivateKey {
	return &PrivateKey{key: k, id: keyID(k.Public().(ed25519.PublicKey))}
}

// keyID is "ed25519:" and the first 8 bytes of the public key's SHA-256.
func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

// ID identifies the key pair; it is what documents record as signed_by.
func (k *PrivateKey) ID() string { return k.id }

// Public returns the matching public key.
func (k *PrivateKey) Public() *PublicKey {
	pub := k.key.Public().(ed25519.PublicKey)
	return &PublicKey{key: pub, id: k.id}
}

// ID identifies the key pair.
func (k *PublicKey) ID() string { return k.id }

// Sign signs msg in domain: the signature covers domain, a zero byte, and msg.
func (k *PrivateKey) Sign(domain string, msg []byte) []byte {
	return ed25519.Sign(k.key, framed(domain, msg))
}

// Verify checks sig over msg in domain.
func (k *PublicKey) Verify(domain string, msg, sig []byte) error {
	if !ed25519.Verify(k.key, framed(domain, msg), sig) {
		return fmt.Errorf("%w (key %s)", ErrBadSignature, k.id)
	}
	return nil
}

func framed(domain string, msg []byte) []byte {
	b := make([]byte, 0, len(domain)+1+len(msg))
	b = append(b, domain...)
	b = append(b, 0)
	return append(b, msg...)
}

// WriteKeyPair generates a key pair and writes it into dir (created 0700
// when missing): the private key as PKCS#8 PEM with mode 0600, the public
// key as PKIX PEM with mode 0644. It refuses to overwrite either file.
func WriteKeyPair(dir string) (privPath, pubPath string, id string, err error) {
	k, err := Generate()
	if err != nil {
		return "", "", "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", "", fmt.Errorf("signing: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(k.key)
	if err != nil {
		return "", "", "", fmt.Errorf("signing: encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(k.key.Public())
	if err != nil {
		return "", "", "", fmt.Errorf("signing: encode public key: %w", err)
	}
	privPath, pubPath = filepath.Join(dir, PrivateKeyFile), filepath.Join(dir, PublicKeyFile)
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", "", fmt.Errorf("signing: %s exists; refusing to overwrite a key", p)
		}
	}
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return "", "", "", err
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return "", "", "", errors.Join(err, os.Remove(privPath))
	}
	return privPath, pubPath, k.id, nil
}

// writeNew creates path exclusively with mode and writes b to it.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("signing: %s exists; refusing to overwrite a key", path)
		}
		return fmt.Errorf("signing: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return fmt.Errorf("signing: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("signing: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("signing: close %s: %w", path, err)
	}
	return nil
}

// LoadPrivateKey reads a PKCS#8 PEM ed25519 private key. It refuses a
// file that group or others may read.
func LoadPrivateKey(path string) (*PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signing: private key %s is accessible by group or others (mode %v); run: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	block, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(block)
	if err != nil {
		return nil, fmt.Errorf("signing: %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing: %s: not an ed25519 key (%T)", path, k)
	}
	return newPrivate(ek), nil
}

// LoadPublicKey reads a PKIX PEM ed25519 public key.
func LoadPublicKey(path string) (*PublicKey, error) {
	block, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(block)
	if err != nil {
		return nil, fmt.Errorf("signing: %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("signing: %s: not an ed25519 key (%T)", path, k)
	}
	return &PublicKey{key: ek, id: keyID(ek)}, nil
}

func readPEM(path, typ string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("signing: %s: no PEM %q block", path, typ)
	}
	return block.Bytes, nil
}
