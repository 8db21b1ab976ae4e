package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hopguard/hopguard/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func budgets(attempts string) string {
	return `apiVersion: hopguard.dev/v1alpha1
kind: Service
metadata: {name: payments, namespace: shop}
spec:
  port: 9000
  endpoints: [{address: 127.0.0.1:9000}]
---
apiVersion: hopguard.dev/v1alpha1
kind: RouteBudget
metadata: {name: charge, namespace: shop}
spec:
  service: payments
  match: {grpcMethod: shop.Payments/Charge}
  retry: {authority: mesh, attempts: ` + attempts + `}
  sideEffects: false
`
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.yaml"), budgets("3"))
	b, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Routes) != 1 || b.Routes[0].ID != "shop/charge" || b.Routes[0].Retry.Attempts != 3 {
		t.Fatalf("bundle routes = %+v, want shop/charge with 3 attempts", b.Routes)
	}
	write(t, filepath.Join(dir, "b.yaml"), budgets("three"))
	if _, err := LoadDir(dir); !errors.Is(err, ErrInvalid) {
		t.Errorf("LoadDir(invalid) = %v, want ErrInvalid", err)
	}
	if _, err := LoadDir(filepath.Join(dir, "missing")); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("LoadDir(missing) = %v, want an I/O error", err)
	}
}

func TestOpenInstallsValidChangesOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.yaml")
	write(t, path, budgets("3"))
	var mu sync.Mutex
	var seen []int
	install := func(b *policy.Bundle) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, b.Routes[0].Retry.Attempts)
	}
	d, err := Open(dir, install, Options{Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	wait := func(what string, cond func() bool) {
		t.Helper()
		for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(10 * time.Millisecond) {
			if cond() {
				return
			}
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }

	write(t, path, budgets("zero"))
	wait("the refused change", func() bool { return d.LastError() != nil })
	if !errors.Is(d.LastError(), ErrInvalid) || count() != 1 {
		t.Errorf("after an invalid change: LastError %v, installs %d; want ErrInvalid and 1", d.LastError(), count())
	}
	write(t, path, budgets("2"))
	wait("the accepted change", func() bool { return count() == 2 })
	mu.Lock()
	defer mu.Unlock()
	if seen[0] != 3 || seen[1] != 2 || d.LastError() != nil {
		t.Errorf("installs %v, LastError %v; want [3 2] and nil", seen, d.LastError())
	}
}

func TestOpenRefusesInvalidDir(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.yaml"), budgets("0"))
	called := false
	if _, err := Open(dir, func(*policy.Bundle) { called = true }, Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Open(invalid) = %v, want ErrInvalid", err)
	}
	if called {
		t.Error("Open installed policies from an invalid directory")
	}
}

// TestEmptyDirIsRefused: a directory without route budgets is refused at
// Open and on reload (the policies in force stay), unless AllowEmpty.
func TestEmptyDirIsRefused(t *testing.T) {
	empty := t.TempDir()
	if _, err := Open(empty, func(*policy.Bundle) { t.Error("installed an empty directory") }, Options{}); !errors.Is(err, ErrEmpty) || !errors.Is(err, ErrInvalid) {
		t.Errorf("Open(empty) = %v, want ErrEmpty", err)
	}
	d, err := Open(empty, func(b *policy.Bundle) {
		if len(b.Routes) != 0 {
			t.Errorf("AllowEmpty installed %d routes", len(b.Routes))
		}
	}, Options{AllowEmpty: true})
	if err != nil {
		t.Fatalf("Open(empty, AllowEmpty) = %v", err)
	}
	_ = d.Close()

	dir := t.TempDir()
	path := filepath.Join(dir, "b.yaml")
	write(t, path, budgets("3"))
	var mu sync.Mutex
	installs := 0
	d, err = Open(dir, func(*policy.Bundle) { mu.Lock(); installs++; mu.Unlock() }, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := d.reload(context.Background()); !errors.Is(err, ErrEmpty) || !errors.Is(d.LastError(), ErrEmpty) {
		t.Errorf("reload of the emptied directory = %v (LastError %v), want ErrEmpty", err, d.LastError())
	}
	mu.Lock()
	defer mu.Unlock()
	if installs != 1 {
		t.Errorf("%d installs, want only the first: the emptied directory must not be installed", installs)
	}
}
