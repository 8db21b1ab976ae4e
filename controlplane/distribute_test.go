package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hopguard/hopguard/controlplane/audit"
	"github.com/hopguard/hopguard/policy/bundle"
	"github.com/hopguard/hopguard/policy/signing"
)

func TestSignedDistribution(t *testing.T) {
	k, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	dir := configDir(t)
	cp := start(t, Options{ConfigDir: dir, SigningKey: k, AuditLog: auditPath})

	code, body := httpGet(t, cp, "/readyz")
	if code != 200 || !strings.Contains(body, `"signing": "enabled"`) || !strings.Contains(body, k.ID()) {
		t.Errorf("/readyz with a signing key: %d %s", code, body)
	}
	// The bundle at /bundle verifies, for the MeshConfig's environment.
	_, raw := httpGet(t, cp, "/bundle")
	v := bundle.NewVerifier(cp.Config().Mesh.Policy.Environment, k.Public())
	b, err := v.Accept([]byte(raw))
	if err != nil {
		t.Fatalf("served bundle does not verify: %v", err)
	}
	if b.Generation != cp.Config().Generation || b.PolicyHash != cp.Config().PolicyHash {
		t.Errorf("bundle generation %d hash %s, /config says %d %s", b.Generation, b.PolicyHash, cp.Config().Generation, cp.Config().PolicyHash)
	}

	// A refused change is recorded with its errors; the next valid one
	// gets a higher generation and records what changed.
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("500ms", 0))
	if err := cp.Reload(context.Background()); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Reload of an invalid config = %v", err)
	}
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("500ms", 2))
	if err := cp.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := readAuditLog(t, auditPath)
	var refused, changed *audit.Record
	for i := range recs {
		switch recs[i].Kind {
		case audit.KindRefused:
			refused = &recs[i]
		case audit.KindChange:
			changed = &recs[i]
		}
	}
	if refused == nil || len(refused.Errors) == 0 || !strings.Contains(strings.Join(refused.Errors, "\n"), "attempts") {
		t.Errorf("refused change record = %+v, want its errors", refused)
	}
	if changed == nil || changed.Generation <= b.Generation || len(changed.Summary.Changed) != 1 || changed.OldPolicyHash != b.PolicyHash {
		t.Errorf("last change record = %+v, want a newer generation changing one route from %s", changed, b.PolicyHash)
	}
	if len(changed.Sources) != 2 || changed.Sources[0].Path != "budgets.yaml" {
		t.Errorf("sources = %+v, want budgets.yaml and mesh.yaml", changed.Sources)
	}
}

// readAuditLog parses and verifies the audit log at path (appends are
// synchronous with Reload).
func readAuditLog(t *testing.T, path string) []audit.Record {
	t.Helper()
	var recs []audit.Record
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(b)
	for _, line := range strings.Split(strings.TrimSpace(raw), "\n") {
		var r audit.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	if n, err := audit.Verify(strings.NewReader(raw)); err != nil || n != len(recs) {
		t.Fatalf("audit.Verify = %d, %v", n, err)
	}
	return recs
}

func TestUnsignedDistributionIsReported(t *testing.T) {
	cp := start(t, Options{ConfigDir: configDir(t)})
	code, body := httpGet(t, cp, "/readyz")
	if code != 200 || !strings.Contains(body, `"signing": "disabled"`) {
		t.Errorf("/readyz without a key: %d %s", code, body)
	}
	if _, err := cp.Pin(1, "x"); !errors.Is(err, ErrNoAuditLog) {
		t.Errorf("Pin without an audit log = %v, want ErrNoAuditLog", err)
	}
	_, raw := httpGet(t, cp, "/bundle")
	v := bundle.NewVerifier(cp.Config().Mesh.Policy.Environment)
	if _, err := v.Accept([]byte(raw)); !errors.Is(err, bundle.ErrUnsigned) {
		t.Errorf("unsigned bundle verified: %v", err)
	}
}

func TestNextGeneration(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	if got := nextGeneration(5, now); got != 1_800_000_000 {
		t.Errorf("nextGeneration(5) = %d, want the Unix time", got)
	}
	if got := nextGeneration(1_800_000_000, now); got != 1_800_000_001 {
		t.Errorf("nextGeneration(now) = %d, want now+1", got)
	}
}
