package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/hopguard/hopguard/filters/idempotency"
	"github.com/hopguard/hopguard/filters/idempotency/redisstore"
	"github.com/hopguard/hopguard/filters/metrics"
	"github.com/hopguard/hopguard/internal/testutil/redistest"
)

func TestStoreFlags_Success(t *testing.T) {
	const password = "s3cret pass"
	srv := redistest.Start(t, redistest.Options{Password: password})
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		flags     storeFlags
		wantRedis bool
	}{
		{"default is memory", storeFlags{store: "memory"}, false},
		{"empty is memory", storeFlags{}, false},
		{"redis with password file", storeFlags{store: srv.URL(), prefix: "mesh-a:", timeout: time.Second, passwordFile: pwFile}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store, closeStore, err := tc.flags.open(metrics.Discard(), zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = closeStore() }()
			if _, isRedis := store.(*redisstore.Store); isRedis != tc.wantRedis || (store != nil) != tc.wantRedis {
				t.Fatalf("store = %T, want redis: %v", store, tc.wantRedis)
			}
			if !tc.wantRedis {
				return
			}
			sc := idempotency.Scope{Route: "r", Key: "k"}
			res, err := store.Claim(context.Background(), sc, 1, time.Now(), time.Minute)
			if err != nil || !res.Claimed {
				t.Errorf("Claim through the flag-built store = %+v, %v", res, err)
			}
			if k := store.(*redisstore.Store).Key(sc); !strings.HasPrefix(k, tc.flags.prefix+"{") {
				t.Errorf("key %q does not start with the --idempotency-store-prefix %q", k, tc.flags.prefix)
			}
		})
	}
}

func TestStoreFlags_Errors(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Password: "right"})
	wrongPw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(wrongPw, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		flags   storeFlags
		wantSub string
	}{
		{"unknown scheme", storeFlags{store: "memcached://h:1", timeout: time.Second}, "usage: --idempotency-store"},
		{"bad timeout", storeFlags{store: "redis://127.0.0.1:1/0"}, "usage: --idempotency-store-timeout"},
		{"missing password file", storeFlags{store: "redis://127.0.0.1:1/0", timeout: time.Second, passwordFile: "/nonexistent/pw"}, "--redis-password-file"},
		{"bad CA", storeFlags{store: "rediss://127.0.0.1:1/0", timeout: time.Second, tlsCA: wrongPw}, "--redis-tls-ca"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.flags.open(metrics.Discard(), zap.NewNop())
			if err == nil || !strings.Contains(err.Error(), tc.wantSub) {
				t.Fatalf("open = %v, want an error containing %q", err, tc.wantSub)
			}
		})
	}
	t.Run("wrong password fails the calls, not the start", func(t *testing.T) {
		f := storeFlags{store: srv.URL(), timeout: time.Second, passwordFile: wrongPw}
		store, closeStore, err := f.open(metrics.Discard(), zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = closeStore() }()
		_, err = store.Claim(context.Background(), idempotency.Scope{Key: "k"}, 1, time.Now(), time.Minute)
		if !errors.Is(err, idempotency.ErrUnavailable) {
			t.Errorf("Claim with a wrong password: err = %v, want ErrUnavailable", err)
		}
	})
}

// TestStoreFlags_RecoversWithoutRestart: the store the flags build (the
// production client settings) fails while Redis is down and works again
// once it is back, with the same process and client.
func TestStoreFlags_RecoversWithoutRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendOnly: true})
	f := storeFlags{store: srv.URL(), timeout: 50 * time.Millisecond}
	store, closeStore, err := f.open(metrics.Discard(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = closeStore() }()
	ctx := context.Background()
	claim := func(key string) error {
		_, err := store.Claim(ctx, idempotency.Scope{Route: "r", Key: key}, 1, time.Now(), time.Minute)
		return err
	}
	if err := claim("a"); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	start := time.Now()
	if err := claim("b"); !errors.Is(err, idempotency.ErrUnavailable) {
		t.Fatalf("claim while Redis is down: err = %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a claim against a dead Redis took %v, want about the 50ms timeout (not a hang)", took)
	}
	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for claim("c") != nil {
		if time.Now().After(deadline) {
			t.Fatal("store did not recover within 5s of Redis returning")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExtProcCmd_BadStoreFlag(t *testing.T) {
	var errb strings.Builder
	cmd := newExtProcCmd(Env{Stderr: &errb}, &globalFlags{logFormat: "json", logLevel: "error"})
	_, _, err := execute(t, cmd, "--config", t.TempDir(), "--idempotency-store", "http://127.0.0.1:6379", "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "usage: --idempotency-store") {
		t.Fatalf("extproc with an http:// store: err = %v, want a usage error", err)
	}
}
