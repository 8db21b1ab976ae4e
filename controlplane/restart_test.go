package controlplane

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hopguard/hopguard/controlplane/admin"
	"github.com/hopguard/hopguard/controlplane/audit"
	"github.com/hopguard/hopguard/controlplane/bundles"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
)

// TestEmptiedDirectoryIsRefused: a directory that suddenly declares no
// services (files moved away, a mount gone) is refused and the served
// mesh stays; with AllowEmpty it is served.
func TestEmptiedDirectoryIsRefused(t *testing.T) {
	for _, allow := range []bool{false, true} {
		dir := configDir(t)
		cp := start(t, Options{ConfigDir: dir, AllowEmpty: allow})
		before := cp.Config()
		for _, f := range []string{"mesh.yaml", "budgets.yaml"} {
			if err := os.Remove(filepath.Join(dir, f)); err != nil {
				t.Fatal(err)
			}
		}
		err := cp.Reload(context.Background())
		after := cp.Config()
		if allow {
			if err != nil || len(after.Mesh.Services) != 0 {
				t.Errorf("AllowEmpty: Reload = %v with %d services, want the empty mesh served", err, len(after.Mesh.Services))
			}
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "declares no services where 2 are served") {
			t.Errorf("Reload of an emptied directory = %v, want it refused", err)
		}
		if after.Version != before.Version || len(after.Mesh.Services) != 2 || after.LastError == nil {
			t.Errorf("after the refusal /config serves version %s with %d services (last error %v), want %s with 2 and the error",
				after.Version, len(after.Mesh.Services), after.LastError, before.Version)
		}
	}
}

// TestRestartKeepsOverridesAndRecordsNoChange: a restart with the same
// audit log restores the freeze and the pin, serves the pinned
// configuration under the generation it had, and records no change; a
// change made while stopped is recorded against what was served, not as
// every route added.
func TestRestartKeepsOverridesAndRecordsNoChange(t *testing.T) {
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	dir := configDir(t)
	cp := start(t, Options{ConfigDir: dir, AuditLog: auditPath})
	first := cp.Config().Generation
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("700ms", 3))
	if err := cp.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Freeze(true, "incident"); err != nil {
		t.Fatal(err)
	}
	pinnedGen, err := cp.Pin(first, "incident")
	if err != nil {
		t.Fatal(err)
	}
	served := cp.Config()
	cp.Stop()
	recs := len(readAuditLog(t, auditPath))

	cp = start(t, Options{ConfigDir: dir, AuditLog: auditPath})
	got := cp.Config()
	if !got.Overrides.Frozen || got.Overrides.PinnedTo != first {
		t.Errorf("after restart overrides = %+v, want frozen and pinned to %d", got.Overrides, first)
	}
	if got.PolicyHash != served.PolicyHash || got.Version != served.Version || got.Generation != pinnedGen {
		t.Errorf("after restart serving %s/%s generation %d, want %s/%s generation %d",
			got.PolicyHash, got.Version, got.Generation, served.PolicyHash, served.Version, pinnedGen)
	}
	log := readAuditLog(t, auditPath)
	for _, r := range log[recs:] {
		// Nothing served changed, and the directory's configuration was
		// recorded as accepted before the restart.
		t.Errorf("restart appended %+v, want nothing", r)
	}

	// Unpin and unfreeze, stop, change the directory, start: one change
	// record, measured against what was served.
	if _, err := cp.Unpin("over"); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Freeze(false, "over"); err != nil {
		t.Fatal(err)
	}
	served = cp.Config()
	cp.Stop()
	recs = len(readAuditLog(t, auditPath))
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("900ms", 3))
	cp = start(t, Options{ConfigDir: dir, AuditLog: auditPath})
	log = readAuditLog(t, auditPath)
	if len(log) != recs+1 {
		t.Fatalf("restart with a changed directory appended %d records, want 1", len(log)-recs)
	}
	r := log[recs]
	if r.Kind != audit.KindChange || r.OldPolicyHash != served.PolicyHash || r.OldConfigVersion != served.Version ||
		len(r.Summary.Changed) != 1 || len(r.Summary.Added) != 0 {
		t.Errorf("change record after restart = %+v, want one route changed from %s/%s", r, served.PolicyHash, served.Version)
	}
	if cp.Config().Overrides.Frozen || cp.Config().Overrides.PinnedTo != 0 {
		t.Errorf("overrides after unpin, unfreeze and restart = %+v, want none", cp.Config().Overrides)
	}
	if changes := configChanges(cp); changes != 1 {
		t.Errorf("hopguard_config_changes_total = %v after a change made while stopped, want 1", changes)
	}
}

// TestXDSOnlyChangeIsRecorded: a change that moves only what xDS serves
// (an endpoint address) leaves the policy hash alone but is a change: it
// is recorded with both configuration versions and counted.
func TestXDSOnlyChangeIsRecorded(t *testing.T) {
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	dir := configDir(t)
	reg := prometheus.NewRegistry()
	cp := start(t, Options{ConfigDir: dir, AuditLog: auditPath, Registry: reg})
	before := cp.Config()
	recs := len(readAuditLog(t, auditPath))
	writeFile(t, filepath.Join(dir, "mesh.yaml"), strings.Replace(meshYAML, "127.0.0.1:9103", "127.0.0.2:9103", 1))
	if err := cp.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := cp.Config()
	if after.PolicyHash != before.PolicyHash || after.Version == before.Version {
		t.Fatalf("endpoint change: policy %s→%s, version %s→%s; want the policy unchanged and the version moved",
			before.PolicyHash, after.PolicyHash, before.Version, after.Version)
	}
	log := readAuditLog(t, auditPath)
	if len(log) != recs+1 {
		t.Fatalf("endpoint change appended %d records, want 1", len(log)-recs)
	}
	if r := log[recs]; r.Kind != audit.KindChange || r.OldConfigVersion != before.Version || r.NewConfigVersion != after.Version ||
		r.OldPolicyHash != r.NewPolicyHash || r.Generation != before.Generation {
		t.Errorf("record = %+v, want a change from %s to %s under generation %d", r, before.Version, after.Version, before.Generation)
	}
	if got := testutil.ToFloat64(cp.metrics.ConfigChanges.WithLabelValues("true")); got != 1 {
		t.Errorf("hopguard_config_changes_total{in_window=\"true\"} = %v, want 1", got)
	}
	// Reloading the same files again changes nothing and records nothing.
	if err := cp.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(readAuditLog(t, auditPath)); n != recs+1 {
		t.Errorf("an unchanged reload appended %d records, want none", n-recs-1)
	}
}

// TestChangeIsJudgedByTheWindowsInForce: a change that opens a window for
// itself is still outside the windows in force before it.
func TestChangeIsJudgedByTheWindowsInForce(t *testing.T) {
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	dir := t.TempDir()
	// Sunday 08:30 UTC: outside a weekday window, inside an always-open one.
	now := time.Date(2026, 12, 6, 8, 30, 0, 0, time.UTC)
	withWindow := func(days string) string {
		return strings.Replace(meshYAML, "  environment: test-env\n",
			"  environment: test-env\n  changeWindows: [{days: ["+days+"], from: \"00:00\", to: \"23:59\"}]\n", 1)
	}
	writeFile(t, filepath.Join(dir, "mesh.yaml"), withWindow("Mon, Tue"))
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("500ms", 3))
	cp := start(t, Options{ConfigDir: dir, AuditLog: auditPath, Now: func() time.Time { return now }})
	recs := len(readAuditLog(t, auditPath))
	writeFile(t, filepath.Join(dir, "mesh.yaml"), withWindow("Sun"))
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("600ms", 3))
	if err := cp.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	log := readAuditLog(t, auditPath)
	if r := log[len(log)-1]; len(log) != recs+1 || r.InWindow {
		t.Errorf("change that widens the window = %+v, want recorded outside the windows in force", r)
	}
	// The next change falls in the window now in force; a refused one is
	// judged the same way.
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("650ms", 3))
	if err := cp.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("650ms", 0))
	if err := cp.Reload(context.Background()); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
	log = readAuditLog(t, auditPath)
	for _, r := range log[len(log)-2:] {
		if !r.InWindow {
			t.Errorf("%s record inside the Sunday window = %+v, want in_window", r.Kind, r)
		}
	}
}

// TestStopEndsBundleSubscriptions: Stop ends a subscribed filter's stream
// itself (UNAVAILABLE, "shutting down") instead of leaving the graceful
// stop to wait out its grace and then cut the connection.
func TestStopEndsBundleSubscriptions(t *testing.T) {
	cp := start(t, Options{ConfigDir: configDir(t)})
	cc, err := grpc.NewClient(cp.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, bundles.WatchMethod)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(wrapperspb.String("filter-1")); err != nil {
		t.Fatal(err)
	}
	var b wrapperspb.BytesValue
	if err := s.RecvMsg(&b); err != nil || len(b.GetValue()) == 0 {
		t.Fatalf("first bundle: %v", err)
	}
	cp.Stop()
	err = s.RecvMsg(&b)
	if status.Convert(err).Message() != status.Convert(bundles.ErrClosed).Message() {
		t.Errorf("subscription after Stop ended with %v, want %v", err, bundles.ErrClosed)
	}
}

// TestRestartWhilePinnedWithAnInvalidDirectory: pinned because the
// directory went bad, the control plane restarts serving the pin; the
// refusal shows at /config, and unpin waits for a directory that loads.
func TestRestartWhilePinnedWithAnInvalidDirectory(t *testing.T) {
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	dir := configDir(t)
	cp := start(t, Options{ConfigDir: dir, AuditLog: auditPath})
	good := cp.Config().Generation
	if _, err := cp.Pin(good, "incident"); err != nil {
		t.Fatal(err)
	}
	served := cp.Config()
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("500ms", 0))
	if err := cp.Reload(context.Background()); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Reload of the bad directory = %v, want refused", err)
	}
	cp.Stop()

	cp = start(t, Options{ConfigDir: dir, AuditLog: auditPath})
	got := cp.Config()
	if got.Overrides.PinnedTo != good || got.PolicyHash != served.PolicyHash || got.Version != served.Version {
		t.Errorf("after restart: pinned to %d serving %s/%s, want %d serving %s/%s",
			got.Overrides.PinnedTo, got.PolicyHash, got.Version, good, served.PolicyHash, served.Version)
	}
	if got.LastError == nil || !strings.Contains(got.LastError.Message, "attempts") {
		t.Errorf("/config lastError = %v, want the directory's refusal", got.LastError)
	}
	if _, err := cp.Unpin("over"); !errors.Is(err, admin.ErrConflict) {
		t.Errorf("Unpin with no loadable directory = %v, want refused as a conflict", err)
	}
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("500ms", 3))
	if err := cp.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Unpin("over"); err != nil {
		t.Errorf("Unpin once the directory loads = %v", err)
	}
}

// TestUnrestorablePinIsLiftedAndRecorded: a pin whose generation cannot
// be rebuilt at start is lifted, and the log says so, so that a later
// restart that could rebuild it does not bring it back.
func TestUnrestorablePinIsLiftedAndRecorded(t *testing.T) {
	auditDir := t.TempDir()
	auditPath := filepath.Join(auditDir, "audit.jsonl")
	dir := configDir(t)
	cp := start(t, Options{ConfigDir: dir, AuditLog: auditPath})
	first := cp.Config().Generation
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("700ms", 3))
	if err := cp.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Pin(first, "incident"); err != nil {
		t.Fatal(err)
	}
	cp.Stop()
	obj := filepath.Join(auditDir, "objects", audit.HashBytes([]byte(budgetYAML("500ms", 3))))
	if err := os.Rename(obj, obj+".away"); err != nil {
		t.Fatal(err)
	}
	cp = start(t, Options{ConfigDir: dir, AuditLog: auditPath})
	if p := cp.Config().Overrides.PinnedTo; p != 0 {
		t.Errorf("pinned to %d although the generation cannot be rebuilt", p)
	}
	cp.Stop()
	lifted := false
	for _, r := range readAuditLog(t, auditPath) {
		lifted = lifted || (r.Kind == audit.KindUnpin && strings.Contains(r.Detail, "cannot be rebuilt"))
	}
	if !lifted {
		t.Error("no record of the pin lifted at start")
	}
	if err := os.Rename(obj+".away", obj); err != nil {
		t.Fatal(err)
	}
	cp = start(t, Options{ConfigDir: dir, AuditLog: auditPath})
	if p := cp.Config().Overrides.PinnedTo; p != 0 {
		t.Errorf("a later restart pinned generation %d again", p)
	}
}

// TestPinnedReloadsAndRestartsRecordEachConfigurationOnce: while pinned,
// a directory configuration is recorded as accepted once; reloads of the
// same files and restarts append nothing.
func TestPinnedReloadsAndRestartsRecordEachConfigurationOnce(t *testing.T) {
	cp, dir, auditPath := startPinned(t)
	n := len(readAuditLog(t, auditPath))
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("800ms", 3))
	for range 3 {
		if err := cp.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	cp.Stop()
	for range 2 {
		cp = start(t, Options{ConfigDir: dir, AuditLog: auditPath})
		cp.Stop()
	}
	log := readAuditLog(t, auditPath)
	if len(log) != n+1 || !strings.HasPrefix(log[n].Detail, "accepted, not served") {
		t.Errorf("a changed directory reloaded 3 times and 2 restarts while pinned appended %d records, want 1 (accepted, not served)", len(log)-n)
	}
}

// TestRestartOnALogWithoutConfigVersions: records written before config
// versions were recorded have none; a restart serving what the log last
// recorded appends nothing.
func TestRestartOnALogWithoutConfigVersions(t *testing.T) {
	auditDir := t.TempDir()
	dir := configDir(t)
	cp := start(t, Options{ConfigDir: dir, AuditLog: filepath.Join(auditDir, "new.jsonl")})
	cp.Stop()
	oldPath := filepath.Join(auditDir, "old.jsonl")
	l, err := audit.Open(oldPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range readAuditLog(t, filepath.Join(auditDir, "new.jsonl")) {
		r.OldConfigVersion, r.NewConfigVersion = "", ""
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	n := len(readAuditLog(t, oldPath))
	cp = start(t, Options{ConfigDir: dir, AuditLog: oldPath})
	if got := len(readAuditLog(t, oldPath)); got != n {
		t.Errorf("restart on an older log serving what it recorded appended %d records", got-n)
	}
	if c := configChanges(cp); c != 0 {
		t.Errorf("hopguard_config_changes_total = %v after such a restart, want 0", c)
	}
}

// TestPinnedDirectoryFixedClearsTheRefusal: a refusal shown at /config
// while pinned is cleared once the directory loads again.
func TestPinnedDirectoryFixedClearsTheRefusal(t *testing.T) {
	cp, dir, auditPath := startPinned(t)
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("500ms", 0))
	if err := cp.Reload(context.Background()); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Reload of a bad directory = %v, want ErrInvalidConfig", err)
	}
	cp.Stop()
	cp = start(t, Options{ConfigDir: dir, AuditLog: auditPath})
	if cp.Config().LastError == nil {
		t.Fatal("restart over a bad directory shows no refusal")
	}
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("600ms", 3))
	if err := cp.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if le := cp.Config().LastError; le != nil {
		t.Errorf("the directory loads again, /config lastError still %q", le.Message)
	}
}

// TestFailedUnpinKeepsThePin: an unpin whose distribution fails leaves the
// pin in force, so the next reload does not serve the directory unpinned.
func TestFailedUnpinKeepsThePin(t *testing.T) {
	var failRender atomic.Bool
	render := func(m *ir.Mesh, service string, f translate.Flavor) (*translate.Resources, error) {
		if failRender.Load() {
			return nil, errors.New("render failed")
		}
		return translate.Translate(m, service, f, translate.Options{})
	}
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	dir := configDir(t)
	cp := start(t, Options{ConfigDir: dir, AuditLog: auditPath, Render: render})
	c := dialNode(t, cp, "ledger-1", "ledger")
	waitResponse(t, c, resourcev3.ListenerType, "")
	pinned := cp.Config().Generation
	if _, err := cp.Pin(pinned, "incident"); err != nil {
		t.Fatal(err)
	}
	servedVersion := cp.Config().Version
	writeFile(t, filepath.Join(dir, "budgets.yaml"), budgetYAML("800ms", 3))
	if err := cp.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	failRender.Store(true)
	if _, err := cp.Unpin("over"); err == nil {
		t.Fatal("Unpin succeeded with rendering failing")
	}
	failRender.Store(false)
	if err := cp.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := cp.Config(); got.Overrides.PinnedTo != pinned || got.Version != servedVersion {
		t.Errorf("after a failed unpin and a reload: pinned to %d serving %s, want still pinned to %d serving %s",
			got.Overrides.PinnedTo, got.Version, pinned, servedVersion)
	}
}

// startPinned starts a control plane with an audit log on a fresh
// directory and pins the generation it serves.
func startPinned(t *testing.T) (cp *ControlPlane, dir, auditPath string) {
	t.Helper()
	auditPath = filepath.Join(t.TempDir(), "audit.jsonl")
	dir = configDir(t)
	cp = start(t, Options{ConfigDir: dir, AuditLog: auditPath})
	if _, err := cp.Pin(cp.Config().Generation, "incident"); err != nil {
		t.Fatal(err)
	}
	return cp, dir, auditPath
}

// configChanges is hopguard_config_changes_total, in and out of windows.
func configChanges(cp *ControlPlane) float64 {
	return testutil.ToFloat64(cp.metrics.ConfigChanges.WithLabelValues("true")) +
		testutil.ToFloat64(cp.metrics.ConfigChanges.WithLabelValues("false"))
}
