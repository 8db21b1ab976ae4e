package redisstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ParseURL parses redis://[[user]:password@]host[:port][/db] or the TLS
// form rediss://… into client options suited to the store: commands are
// not retried by the client (MaxRetries -1) and context deadlines bound
// network I/O (ContextTimeoutEnabled), and a failed dial is not retried
// (DialerRetries 1): the next operation dials again. Other schemes are refused. The
// password may come from the URL or be set on the result afterwards.
func ParseURL(raw string) (*redis.Options, error) {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok || (scheme != "redis" && scheme != "rediss") {
		return nil, fmt.Errorf("redisstore: store URL %q: want redis:// or rediss://", redact(raw))
	}
	o, err := redis.ParseURL(raw)
	if err != nil {
		// go-redis's errors may quote the URL (url.Parse's do): the
		// password must not reach logs, so the message is cleaned and the
		// error not wrapped.
		return nil, fmt.Errorf("redisstore: store URL %q: %s", redact(raw), hidePassword(err.Error(), raw))
	}
	o.MaxRetries = -1
	o.ContextTimeoutEnabled = true
	// One dial per attempt: the operation timeout is far shorter than
	// go-redis's dial backoff, and a down Redis must fail fast.
	o.DialerRetries = 1
	return o, nil
}

// ConfigureTLS sets up TLS on o (creating o.TLSConfig if the URL was not
// rediss://): caPEM, when not empty, replaces the system roots for
// verifying the server; insecureSkipVerify turns verification off (tests
// only).
func ConfigureTLS(o *redis.Options, caPEM []byte, insecureSkipVerify bool) error {
	if o == nil {
		return errors.New("redisstore: nil options")
	}
	if o.TLSConfig == nil {
		host, _, _ := strings.Cut(o.Addr, ":")
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return errors.New("redisstore: TLS CA: no certificate found in PEM")
		}
		o.TLSConfig.RootCAs = pool
	}
	o.TLSConfig.InsecureSkipVerify = insecureSkipVerify //nolint:gosec // explicit operator choice
	return nil
}

// splitUserinfo splits scheme://user:password@rest at its userinfo; ok is
// false when raw has no scheme or no userinfo.
func splitUserinfo(raw string) (scheme, user, password, rest string, ok bool) {
	scheme, after, found := strings.Cut(raw, "://")
	if !found {
		return "", "", "", "", false
	}
	at := strings.LastIndex(after, "@")
	if at < 0 {
		return "", "", "", "", false
	}
	user, password, _ = strings.Cut(after[:at], ":")
	return scheme, user, password, after[at+1:], true
}

// hidePassword replaces every occurrence in msg of the password written in
// raw (as written and percent-decoded) with xxxxx.
func hidePassword(msg, raw string) string {
	_, _, pw, _, ok := splitUserinfo(raw)
	if !ok || pw == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, pw, "xxxxx")
	if dec, err := url.PathUnescape(pw); err == nil && dec != "" {
		msg = strings.ReplaceAll(msg, dec, "xxxxx")
	}
	return msg
}

// redact hides the password of a URL for error messages.
func redact(raw string) string {
	scheme, user, _, rest, ok := splitUserinfo(raw)
	if !ok {
		return raw
	}
	return scheme + "://" + user + ":xxxxx@" + rest
}
