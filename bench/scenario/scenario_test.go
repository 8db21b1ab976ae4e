package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadDir_ShippedScenarios keeps bench/scenarios loadable.
func TestLoadDir_ShippedScenarios(t *testing.T) {
	scs, err := LoadDir("../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, sc := range scs {
		kinds[sc.Kind]++
		switch sc.Kind {
		case KindOverhead:
			if sc.Overhead == nil || !filepath.IsAbs(sc.Overhead.Policy) {
				t.Errorf("%s: overhead %+v, want an absolute policy dir", sc.Path, sc.Overhead)
			}
		case KindCPScale:
			if sc.CPScale == nil || sc.CPScale.Full.Services != 1000 || sc.CPScale.Full.RoutesPerService != 10 {
				t.Errorf("%s: full size %+v, want 1000 services × 10 routes", sc.Path, sc.CPScale)
			}
		}
	}
	if kinds[KindOverhead] == 0 || kinds[KindCPScale] == 0 {
		t.Errorf("kinds %v: want at least one overhead and one cpscale scenario", kinds)
	}
}

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const validCPScale = `kind: cpscale
full: {services: 10, routesPerService: 2, clients: [5]}
quick: {services: 4, routesPerService: 1, clients: [2]}
dependsOn: 1
ackTimeout: 5s
`

func TestLoad_Success(t *testing.T) {
	dir := t.TempDir()
	sc, err := Load(write(t, dir, "scale.yaml", validCPScale))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name != "scale" || sc.Kind != KindCPScale {
		t.Errorf("name %q kind %q, want the file name and cpscale", sc.Name, sc.Kind)
	}
	if got := sc.CPScale.Size(true); got.Services != 4 || sc.CPScale.AckTimeout.D() != 5*time.Second {
		t.Errorf("quick size %+v, ack timeout %v", got, sc.CPScale.AckTimeout.D())
	}
	storm, err := Load(write(t, dir, "storm-x.yaml", "kind: storm\nname: my-storm\nanything: goes\n"))
	if err != nil {
		t.Fatal(err)
	}
	if storm.Name != "my-storm" || storm.Overhead != nil || storm.CPScale != nil {
		t.Errorf("storm scenario %+v: want only its name and path", storm)
	}
}

func TestLoad_Errors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"unknown kind", "kind: chaos\n", `kind "chaos"`},
		{"unknown field", validCPScale + "extra: 1\n", "field extra not found"},
		{"bad duration", strings.Replace(validCPScale, "5s", "soon", 1), "invalid duration"},
		{"no clients", strings.Replace(validCPScale, "clients: [5]", "clients: []", 1), "full"},
		{"overhead without policy or mix", "kind: overhead\nfull: {rates: [1], step: 1s, rounds: 1}\nquick: {rates: [1], step: 1s, rounds: 1}\np99Bound: 1ms\nmaxInFlight: 1\nfloorRoundTrips: 1\n", "policy: required"},
		{"overhead rates unsorted", "kind: overhead\npolicy: p\nfull: {rates: [2, 1], step: 1s, rounds: 1}\nquick: {rates: [1], step: 1s, rounds: 1}\np99Bound: 1ms\nmaxInFlight: 1\nfloorRoundTrips: 1\nmix: [{name: a, weight: 1, route: r, path: /p, expect: continue}]\n", "ascending"},
		{"overhead bad expect", "kind: overhead\npolicy: p\nfull: {rates: [1], step: 1s, rounds: 1}\nquick: {rates: [1], step: 1s, rounds: 1}\np99Bound: 1ms\nmaxInFlight: 1\nfloorRoundTrips: 1\nmix: [{name: a, weight: 1, route: r, path: /p, expect: maybe}]\n", "expect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(write(t, t.TempDir(), "s.yaml", tt.body))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadDir_Errors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadDir(dir); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty dir: %v, want ErrInvalid", err)
	}
	write(t, dir, "a.yaml", "kind: storm\nname: same\n")
	write(t, dir, "b.yaml", "kind: storm\nname: same\n")
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("duplicate names: %v", err)
	}
}
