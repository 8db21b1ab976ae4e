// Package tlsfiles builds TLS configurations from PEM files, as hopguard's
// servers and clients take them on the command line: a certificate and key
// (reloaded when the files change, so a rotation by cert-manager or a
// secret update needs no restart) and a CA bundle (read once).
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// ErrUsage is wrapped by errors about flags that do not go together.
var ErrUsage = errors.New("usage")

// Server describes a server's TLS files.
type Server struct {
	// Cert and Key are the server's certificate chain and private key
	// (PEM). Both empty: no TLS.
	Cert, Key string
	// ClientCA, when set, makes TLS mutual: clients must present a
	// certificate signed by one of its CAs (PEM).
	ClientCA string
	// OnReloadError, when set, is told once per change of the files when
	// the changed pair does not load (the last good pair stays in use).
	OnReloadError func(error)
}

// Enabled reports whether any file is set.
func (s Server) Enabled() bool { return s.Cert != "" || s.Key != "" || s.ClientCA != "" }

// Config returns the server TLS configuration (nil, nil when not enabled).
// The certificate and key are read now, and again on a handshake after
// either file changed; a pair that no longer loads keeps the last good one
// in use.
func (s Server) Config() (*tls.Config, error) {
	if !s.Enabled() {
		return nil, nil
	}
	if s.Cert == "" || s.Key == "" {
		return nil, fmt.Errorf("%w: a TLS certificate and key go together (a client CA needs them too)", ErrUsage)
	}
	kp, err := newKeyPair(s.Cert, s.Key, s.OnReloadError)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return kp.get()
	}}
	if s.ClientCA != "" {
		pool, err := readPool(s.ClientCA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Client describes a client's TLS files.
type Client struct {
	// CA verifies the server (PEM); empty uses the system roots.
	CA string
	// Cert and Key are the client's own certificate and key, for mutual
	// TLS; both or neither.
	Cert, Key string
	// ServerName overrides the name verified in the server's certificate
	// (default: the host dialled).
	ServerName string
	// OnReloadError is as in Server.
	OnReloadError func(error)
}

// Config returns the client TLS configuration.
func (c Client) Config() (*tls.Config, error) {
	if (c.Cert == "") != (c.Key == "") {
		return nil, fmt.Errorf("%w: a client certificate and key go together", ErrUsage)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CA != "" {
		pool, err := readPool(c.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if c.Cert != "" {
		kp, err := newKeyPair(c.Cert, c.Key, c.OnReloadError)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get() }
	}
	return cfg, nil
}

// readPool reads a PEM bundle of CA certificates.
func readPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tlsfiles: CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tlsfiles: CA %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// keyPair is a certificate and key read from files, read again when
// either file's modification time or size changes.
type keyPair struct {
	cert, key string
	onErr     func(error)

	mu      sync.Mutex
	current *tls.Certificate
	// stamp is the files' version current was read from; failed the last
	// version that did not load (not read again until the files change).
	stamp, failed [2]fileStamp
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

func newKeyPair(cert, key string, onErr func(error)) (*keyPair, error) {
	kp := &keyPair{cert: cert, key: key, onErr: onErr}
	if err := kp.load(); err != nil {
		return nil, err
	}
	return kp, nil
}

// load reads the pair; callers hold mu or own kp.
func (kp *keyPair) load() error {
	cs, err1 := stampOf(kp.cert)
	ks, err2 := stampOf(kp.key)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("tlsfiles: %w", err)
	}
	c, err := tls.LoadX509KeyPair(kp.cert, kp.key)
	if err != nil {
		return fmt.Errorf("tlsfiles: certificate %s and key %s: %w", kp.cert, kp.key, err)
	}
	kp.current, kp.stamp = &c, [2]fileStamp{cs, ks}
	return nil
}

// get returns the pair, read again first when a file changed. While the
// new files do not load (a rotation caught between the certificate and
// the key), the last good pair is returned.
func (kp *keyPair) get() (*tls.Certificate, error) {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	cs, err1 := stampOf(kp.cert)
	ks, err2 := stampOf(kp.key)
	now := [2]fileStamp{cs, ks}
	if err1 == nil && err2 == nil && now != kp.stamp && now != kp.failed {
		prev, prevStamp := kp.current, kp.stamp
		if err := kp.load(); err != nil {
			kp.current, kp.stamp, kp.failed = prev, prevStamp, now
			if kp.onErr != nil {
				kp.onErr(err)
			}
		}
	}
	return kp.current, nil
}
