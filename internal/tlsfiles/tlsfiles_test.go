package tlsfiles

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hopguard/hopguard/internal/testutil/testcerts"
)

// serve accepts TLS connections with cfg on loopback, answering "ok" to
// each, until the test ends.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if tc, ok := c.(*tls.Conn); ok && tc.Handshake() == nil {
					_, _ = c.Write([]byte("ok"))
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = lis.Close(); <-done })
	return lis.Addr().String()
}

// call dials addr with cfg and returns the server certificate's subject
// and the first bytes read.
func call(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.Write(t, dir, "a")
	other := testcerts.Write(t, dir, "other")
	scfg, err := Server{Cert: a.ServerCert, Key: a.ServerKey, ClientCA: a.CA}.Config()
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, scfg)

	good, err := Client{CA: a.CA, Cert: a.ClientCert, Key: a.ClientKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if cn, err := call(addr, good); err != nil || cn != "a-server" {
		t.Errorf("client with a certificate of the CA: %q, %v", cn, err)
	}
	for name, c := range map[string]Client{
		"no client certificate":              {CA: a.CA},
		"a client certificate of another CA": {CA: a.CA, Cert: other.ClientCert, Key: other.ClientKey},
	} {
		cfg, err := c.Config()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := call(addr, cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	untrusting, err := Client{CA: other.CA, Cert: a.ClientCert, Key: a.ClientKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call(addr, untrusting); err == nil {
		t.Error("a client trusting another CA accepted the server")
	}
}

// TestServerCertificateRotation: new files are served from the next
// handshake on; files that do not load keep the last good pair in use.
func TestServerCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.Write(t, dir, "a")
	b := testcerts.Write(t, dir, "b")
	cert, key := dir+"/served.pem", dir+"/served-key.pem"
	cp := func(src, dst string) {
		t.Helper()
		raw, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cp(a.ServerCert, cert)
	cp(a.ServerKey, key)
	var reloadErrs []error
	var mu sync.Mutex
	scfg, err := Server{Cert: cert, Key: key, OnReloadError: func(err error) { mu.Lock(); reloadErrs = append(reloadErrs, err); mu.Unlock() }}.Config()
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, scfg)
	trustA, _ := Client{CA: a.CA}.Config()
	trustB, _ := Client{CA: b.CA}.Config()
	if cn, err := call(addr, trustA); err != nil || cn != "a-server" {
		t.Fatalf("before rotation: %q, %v", cn, err)
	}

	// Half a rotation: the certificate of b with the key of a does not
	// load, and a stays served.
	cp(b.ServerCert, cert)
	for range 3 {
		if cn, err := call(addr, trustA); err != nil || cn != "a-server" {
			t.Errorf("mid-rotation: %q, %v; want the last good pair (a)", cn, err)
		}
	}
	mu.Lock()
	if len(reloadErrs) != 1 {
		t.Errorf("the half-rotated files were reported %d times over 3 handshakes, want once: %v", len(reloadErrs), reloadErrs)
	}
	mu.Unlock()
	cp(b.ServerKey, key)
	// The modification time may not move within the file system's
	// resolution; the size does, but make sure.
	later := time.Now().Add(2 * time.Second)
	_ = os.Chtimes(cert, later, later)
	_ = os.Chtimes(key, later, later)
	if cn, err := call(addr, trustB); err != nil || cn != "b-server" {
		t.Errorf("after rotation: %q, %v; want b", cn, err)
	}
}

func TestConfigUsage(t *testing.T) {
	dir := t.TempDir()
	a := testcerts.Write(t, dir, "a")
	if cfg, err := (Server{}).Config(); cfg != nil || err != nil {
		t.Errorf("no files: %v, %v; want no TLS", cfg, err)
	}
	for name, s := range map[string]Server{
		"cert without key": {Cert: a.ServerCert},
		"client CA alone":  {ClientCA: a.CA},
	} {
		if _, err := s.Config(); !errors.Is(err, ErrUsage) {
			t.Errorf("%s: %v, want ErrUsage", name, err)
		}
	}
	if _, err := (Client{Cert: a.ClientCert}).Config(); !errors.Is(err, ErrUsage) {
		t.Errorf("client cert without key: %v, want ErrUsage", err)
	}
	if _, err := (Server{Cert: a.ServerCert, Key: a.ClientKey}).Config(); err == nil {
		t.Error("a key that does not match the certificate was accepted")
	}
	if _, err := (Client{CA: a.ServerKey}).Config(); err == nil {
		t.Error("a CA file without certificates was accepted")
	}
}
