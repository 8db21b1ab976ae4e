package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hopguard/hopguard/controlplane"
	"github.com/hopguard/hopguard/controlplane/xds/xdstest"
	"github.com/hopguard/hopguard/policy/bundle"
	"github.com/hopguard/hopguard/policy/signing"
)

func TestKeygen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	code, out, errOut := run(t, context.Background(), "keygen", "--out", dir)
	if code != ExitOK || !strings.Contains(out, "ed25519:") {
		t.Fatalf("keygen: %d %q %q", code, out, errOut)
	}
	if _, err := signing.LoadPrivateKey(filepath.Join(dir, signing.PrivateKeyFile)); err != nil {
		t.Errorf("written private key: %v", err)
	}
	if code, _, errOut := run(t, context.Background(), "keygen", "--out", dir); code != ExitError || !strings.Contains(errOut, "refusing to overwrite") {
		t.Errorf("second keygen: %d %q, want exit 2 and a refusal", code, errOut)
	}
	if code, _, _ := run(t, context.Background(), "keygen"); code != ExitError {
		t.Errorf("keygen without --out: exit %d, want 2", code)
	}
}

// TestOperatorCommands drives a signed, audited control plane through the
// commands an operator uses in an incident.
func TestOperatorCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	keyDir := t.TempDir()
	privPath, pubPath, _, err := signing.WriteKeyPair(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := signing.LoadPrivateKey(privPath)
	if err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	cp, err := controlplane.Start(ctx, controlplane.Options{
		ConfigDir: "../../examples/shop/config", XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Registry: prometheus.NewRegistry(), SigningKey: key, AuditLog: auditPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cp.Stop(); _ = cp.Wait() }()
	admin := cp.AdminAddr()
	first := cp.Config().Generation

	node, err := xdstest.Dial(ctx, cp.XDSAddr(), &corev3.Node{Id: "ledger-1", Cluster: "ledger", UserAgentName: "envoy",
		Locality: &corev3.Locality{Region: "eu-west-1"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if err := node.Subscribe(resourcev3.ListenerType); err != nil {
		t.Fatal(err)
	}
	if _, err := node.WaitFor(ctx, resourcev3.ListenerType, ""); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := run(t, ctx, "manifest", "get", "--admin", admin)
	if code != ExitOK || !strings.Contains(out, "ledger-1") || !strings.Contains(out, "eu-west-1") || !strings.Contains(out, key.ID()) {
		t.Fatalf("manifest get: %d\n%s%s", code, out, errOut)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, errOut = run(t, ctx, "manifest", "verify", "--verify-key", pubPath, "--admin", admin)
		if strings.Contains(out, "OK       ledger-1") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the node's ACK may still be on its way
	}
	if code != ExitOK || !strings.Contains(out, "OK       ledger-1") {
		t.Fatalf("manifest verify: %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := run(t, ctx, "manifest", "get", "--admin", admin); code != ExitOK || !strings.Contains(out, "STATE") || !regexp.MustCompile(`ledger-1\s+ledger\s+eu-west-1\s+ok\s`).MatchString(out) {
		t.Errorf("manifest get once acknowledged: %d\n%s", code, out)
	}
	_, otherPub, _, err := signing.WriteKeyPair(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := run(t, ctx, "manifest", "verify", "--verify-key", otherPub, "--admin", admin); code != ExitFindings || !strings.Contains(out, "BAD") {
		t.Errorf("manifest verify with another key: %d\n%s", code, out)
	}

	if code, out, errOut := run(t, ctx, "freeze", "--admin", admin, "--reason", "INC-1"); code != ExitOK || !strings.Contains(out, "frozen") {
		t.Fatalf("freeze: %d %s %s", code, out, errOut)
	}
	if !cp.Config().Overrides.Frozen {
		t.Error("freeze did not reach the control plane")
	}
	if code, _, errOut := run(t, ctx, "unfreeze", "--admin", admin); code != ExitOK {
		t.Fatalf("unfreeze: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, ctx, "pin", "--admin", admin, "--generation", "1"); code != ExitError || !strings.Contains(errOut, "unknown generation") {
		t.Errorf("pin of an unknown generation: %d %q", code, errOut)
	}
	if code, _, errOut := run(t, ctx, "pin", "--admin", admin, "--generation", strconv.FormatUint(first, 10)); code != ExitOK {
		t.Fatalf("pin: %d %s", code, errOut)
	}
	if got := cp.Config().Overrides.PinnedTo; got != first {
		t.Errorf("pinned to %d, want %d", got, first)
	}
	if code, _, errOut := run(t, ctx, "unpin", "--admin", admin); code != ExitOK {
		t.Fatalf("unpin: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, ctx, "unpin", "--admin", admin); code != ExitError || !strings.Contains(errOut, "not pinned") {
		t.Errorf("second unpin: %d %q", code, errOut)
	}

	// The audit log holds every step, intact; an edit is caught.
	code, out, _ = run(t, ctx, "audit", "verify", auditPath)
	if code != ExitOK || !strings.Contains(out, "5 records, chain intact") {
		t.Fatalf("audit verify: %d %s", code, out)
	}
	raw, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(tampered, []byte(strings.Replace(string(raw), `"kind":"freeze"`, `"kind":"change"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := run(t, ctx, "audit", "verify", tampered); code != ExitFindings || !strings.Contains(out, ":2:") {
		t.Errorf("audit verify of an edited log: %d %s, want exit 1 naming line 2", code, out)
	}
}

// TestManifestVerify_States: verify fails on a bad signature and on a node
// the control plane counts as drifted, and reports without failing a node
// still applying a change (within the drift grace) and one that has
// disconnected.
func TestManifestVerify_States(t *testing.T) {
	privPath, pubPath, _, err := signing.WriteKeyPair(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, err := signing.LoadPrivateKey(privPath)
	if err != nil {
		t.Fatal(err)
	}
	manifest := func(node, running string, connected, drifted bool) bundle.Manifest {
		m := bundle.Manifest{Service: "ledger", Node: node, SnapshotVersion: running, ConfigHash: "v2",
			Connected: connected, Drifted: drifted, PolicyHash: "p", Generation: 7}
		if err := m.Sign(key); err != nil {
			t.Fatal(err)
		}
		return m
	}
	var served []bundle.Manifest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(served)
	}))
	defer srv.Close()
	admin := srv.Listener.Addr().String()
	verify := func() (int, string) {
		code, out, _ := run(t, context.Background(), "manifest", "verify", "--verify-key", pubPath, "--admin", admin)
		return code, out
	}

	served = []bundle.Manifest{
		manifest("ok-1", "v2", true, false),
		manifest("applying-1", "v1", true, false),
		manifest("gone-1", "v1", false, false),
	}
	code, out := verify()
	for _, want := range []string{"OK       ok-1", "APPLYING applying-1", "GONE     gone-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	if code != ExitOK {
		t.Errorf("verify with nodes applying or gone: exit %d, want %d\n%s", code, ExitOK, out)
	}

	tampered := manifest("tampered-1", "v2", true, false)
	tampered.ConfigHash = "v3"
	served = append(served, manifest("drifted-1", "v1", true, true), tampered)
	code, out = verify()
	if code != ExitFindings || !strings.Contains(out, "DRIFTED  drifted-1") || !strings.Contains(out, "BAD      tampered-1") ||
		!strings.Contains(out, "2 of 5 manifests failed") {
		t.Errorf("verify with a drifted and a tampered manifest: exit %d\n%s", code, out)
	}

	served = []bundle.Manifest{}
	if code, out = verify(); code != ExitOK || !strings.Contains(out, "no manifests") {
		t.Errorf("verify with no nodes: exit %d %q, want %d and a note", code, out, ExitOK)
	}
}

func TestNodeSegment(t *testing.T) {
	for id, want := range map[string]string{
		"payments-1": "payments-1", "a/b": "a%2Fb", ".": "%2E", "..": "%2E%2E", "a.b": "a.b", "50%": "50%25",
	} {
		if got := nodeSegment(id); got != want {
			t.Errorf("nodeSegment(%q) = %q, want %q", id, got, want)
		}
	}
}
