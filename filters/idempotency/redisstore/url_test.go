package redisstore

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseURL_Success(t *testing.T) {
	type view struct {
		Addr     string
		Password string
		DB       int
		TLS      bool
		Retries  int
		CtxTO    bool
	}
	tests := []struct {
		raw  string
		want view
	}{
		{"redis://127.0.0.1:6379/0", view{Addr: "127.0.0.1:6379", Retries: -1, CtxTO: true}},
		{"redis://:s3cret@redis.example:6380/2", view{Addr: "redis.example:6380", Password: "s3cret", DB: 2, Retries: -1, CtxTO: true}},
		{"rediss://redis.example/1", view{Addr: "redis.example:6379", DB: 1, TLS: true, Retries: -1, CtxTO: true}},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			o, err := ParseURL(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			got := view{o.Addr, o.Password, o.DB, o.TLSConfig != nil, o.MaxRetries, o.ContextTimeoutEnabled}
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
		})
	}
}

func TestParseURL_Errors(t *testing.T) {
	tests := []struct {
		raw     string
		wantSub string
	}{
		{"memory", "want redis:// or rediss://"},
		{"http://host:6379", "want redis:// or rediss://"},
		{"unix:///tmp/redis.sock", "want redis:// or rediss://"},
		{"redis://:hunter2@host:6379/notadb", "invalid database number"},
		// url.Parse's own errors quote the URL, password included.
		{"redis://:hunter2%zz@host:6379/0", "invalid URL escape"},
		{"redis://user:hunter2@host:badport/0", "port"},
		{"redis://:hunter%32@host:badport/0", "port"}, // hunter2, percent-encoded
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			_, err := ParseURL(tc.raw)
			if err == nil || !strings.Contains(err.Error(), tc.wantSub) || !strings.HasPrefix(err.Error(), "redisstore: ") {
				t.Fatalf("err = %v, want redisstore: …%q…", err, tc.wantSub)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("err %q leaks the password", err)
			}
		})
	}
}

func TestConfigureTLS_Errors(t *testing.T) {
	o, err := ParseURL("redis://host:6379/0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ConfigureTLS(o, []byte("not pem"), false); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Errorf("ConfigureTLS(bad PEM) = %v, want a PEM error", err)
	}
	if err := ConfigureTLS(nil, nil, false); err == nil {
		t.Error("ConfigureTLS(nil) = nil, want an error")
	}
}

func TestConfigureTLS_Success(t *testing.T) {
	o, err := ParseURL("redis://cache.internal:6379/0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ConfigureTLS(o, nil, true); err != nil {
		t.Fatal(err)
	}
	if o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.internal" || !o.TLSConfig.InsecureSkipVerify {
		t.Errorf("TLSConfig = %+v, want ServerName cache.internal, InsecureSkipVerify", o.TLSConfig)
	}
}
