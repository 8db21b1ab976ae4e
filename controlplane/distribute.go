package controlplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/hopguard/hopguard/controlplane/audit"
	"github.com/hopguard/hopguard/controlplane/metrics"
	"github.com/hopguard/hopguard/controlplane/xds"
	"github.com/hopguard/hopguard/policy"
	"github.com/hopguard/hopguard/policy/bundle"
)

// ErrNoAuditLog is returned by Pin when the control plane keeps no audit
// log: earlier generations can only be rebuilt from the sources it keeps.
var ErrNoAuditLog = errors.New("controlplane: pin needs an audit log (--audit-log)")

// ErrUnknownGeneration is returned by Pin for a generation the audit log
// has no accepted configuration for.
var ErrUnknownGeneration = errors.New("controlplane: unknown generation")

// distribution is what the control plane distributes: the served
// configuration, its signed bundle, and the overrides in force. Guarded by
// ControlPlane.reloadMu.
type distribution struct {
	// served is the configuration being served (the latest accepted one,
	// or the pinned one).
	served *loaded
	// servedSources are the sources of served (relative path → hash).
	servedSources []audit.Source
	// latest is the latest configuration accepted from the directory.
	latest        *loaded
	latestSources []audit.Source
	// bundle is the distributed bundle; nil before the first.
	bundle *bundle.Bundle
	// pinnedTo is the generation being served by a pin (0: not pinned).
	pinnedTo uint64
	// frozen refuses side effects on routes not marked critical.
	frozen bool
}

// nextGeneration returns a generation above the last one: the current Unix
// time in seconds when that is larger, so generations keep increasing
// across restarts even without an audit log, and stay close across
// replicas.
func nextGeneration(last uint64, now time.Time) uint64 {
	return max(last+1, uint64(max(now.Unix(), 0)))
}

// readSources reads the configuration files of l, keyed by their path
// relative to dir.
func readSources(dir string, files []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("controlplane: read source: %w", err)
		}
		rel, err := filepath.Rel(dir, f)
		if err != nil || rel == "" {
			rel = filepath.Base(f)
		}
		out[filepath.ToSlash(rel)] = b
	}
	return out, nil
}

// sourceHashes records files in the audit log's object store (when there
// is one) and returns their hashes.
func (cp *ControlPlane) sourceHashes(files map[string][]byte) ([]audit.Source, error) {
	if cp.audit != nil {
		return cp.audit.PutSources(files)
	}
	out := make([]audit.Source, 0, len(files))
	for p, b := range files {
		out = append(out, audit.Source{Path: p, SHA256: audit.HashBytes(b)})
	}
	slices.SortFunc(out, func(a, b audit.Source) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
	return out, nil
}

// record appends r to the audit log, if any. A failed append is logged and
// returned; the change itself stands (it is already served).
func (cp *ControlPlane) record(r audit.Record) error {
	if cp.audit == nil {
		return nil
	}
	if _, err := cp.audit.Append(r); err != nil {
		cp.log.Error("audit log append failed", zap.String("kind", r.Kind), zap.Error(err))
		return fmt.Errorf("controlplane: audit: %w", err)
	}
	return nil
}

// distributeLocked serves l with the current overrides: xDS to every node,
// then, when the policies or the overrides changed, a new signed bundle
// to subscribers and OnApply. Callers hold reloadMu.
func (cp *ControlPlane) distributeLocked(l *loaded, sources []audit.Source, kind, detail string) (*bundle.Bundle, error) {
	if err := cp.xds.Update(l.mesh); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	now := cp.now()
	pb := l.mesh.Bundle()
	pb.Mesh.Frozen = cp.dist.frozen
	hash := bundle.PolicyHash(pb)
	prev := cp.dist.bundle
	b := prev
	changed := prev == nil || prev.PolicyHash != hash || prev.Environment != l.mesh.Policy.Environment
	if changed {
		var last uint64
		if prev != nil {
			last = prev.Generation
		}
		b = bundle.New(*pb, bundle.SchemaRev, l.mesh.Policy.Environment, nextGeneration(max(last, cp.lastGen), now), now)
		if cp.signer != nil {
			if err := b.Sign(cp.signer); err != nil {
				return nil, fmt.Errorf("controlplane: sign bundle: %w", err)
			}
		}
		raw, err := bundle.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("controlplane: encode bundle: %w", err)
		}
		cp.dist.bundle = b
		cp.lastGen = b.Generation
		cp.publisher.Publish(raw)
		cp.metrics.BundleGeneration.Set(float64(b.Generation))
		cp.metrics.SetPolicy(hash, bundle.SchemaRev, l.mesh.Policy.Environment)
		if cp.onApply != nil {
			m := *l.mesh
			m.Policy.Frozen = cp.dist.frozen
			cp.onApply(&m)
		}
		cp.log.Info("policy bundle distributed", zap.String("kind", kind), zap.Uint64("generation", b.Generation),
			zap.String("policy_hash", hash), zap.Bool("signed", b.SignedBy != ""), zap.Bool("frozen", cp.dist.frozen))
	}
	// Overrides are recorded even when they change nothing distributed
	// (pinning the generation in force, say): the audit trail is of what
	// operators did, not only of what it changed.
	if changed || kind != audit.KindChange {
		rec := audit.Record{
			Time: now, Kind: kind, Sources: sources, NewPolicyHash: hash, Generation: b.Generation,
			InWindow: InChangeWindow(now, l.mesh.ChangeWindows), Detail: detail,
		}
		var old *policy.Bundle
		if prev != nil {
			rec.OldPolicyHash = prev.PolicyHash
			old = &prev.Policies
		}
		rec.Summary = audit.Summarize(old, pb)
		if kind == audit.KindChange && prev != nil {
			cp.metrics.ConfigChanges.WithLabelValues(strconv.FormatBool(rec.InWindow)).Inc()
			if !rec.InWindow {
				cp.log.Warn("configuration changed outside every declared change window",
					zap.Uint64("generation", b.Generation), zap.String("policy_hash", hash))
			}
		}
		_ = cp.record(rec)
	}
	cp.dist.served, cp.dist.servedSources = l, sources
	return b, nil
}

// Pin serves the configuration accepted as generation gen (read back from
// the audit log's sources) until Unpin, whatever the directory holds. The
// pinned configuration is distributed under a new generation, so filters
// accept it; the pin is recorded and counted as a manual override.
func (cp *ControlPlane) Pin(gen uint64, reason string) (uint64, error) {
	cp.reloadMu.Lock()
	defer cp.reloadMu.Unlock()
	if cp.audit == nil {
		return 0, ErrNoAuditLog
	}
	files, err := cp.audit.Sources(gen)
	if err != nil {
		return 0, fmt.Errorf("%w %d: %w", ErrUnknownGeneration, gen, err)
	}
	dir, err := os.MkdirTemp("", "hopguard-pin-")
	if err != nil {
		return 0, fmt.Errorf("controlplane: pin: %w", err)
	}
	defer os.RemoveAll(dir)
	for p, b := range files {
		path := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return 0, fmt.Errorf("controlplane: pin: %w", err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return 0, fmt.Errorf("controlplane: pin: %w", err)
		}
	}
	l, err := cp.load(dir)
	if err != nil {
		return 0, fmt.Errorf("controlplane: pin generation %d: %w", gen, err)
	}
	sources, err := cp.sourceHashes(files)
	if err != nil {
		return 0, err
	}
	prevPin := cp.dist.pinnedTo
	cp.dist.pinnedTo = gen
	b, err := cp.distributeLocked(l, sources, audit.KindPin, fmt.Sprintf("pinned to generation %d: %s", gen, reason))
	if err != nil {
		cp.dist.pinnedTo = prevPin
		return 0, err
	}
	cp.metrics.ManualOverrides.WithLabelValues(metrics.OverridePin).Inc()
	cp.setStatusLocked(l, b)
	cp.log.Warn("configuration pinned", zap.Uint64("pinned_generation", gen), zap.Uint64("generation", b.Generation), zap.String("reason", reason))
	return b.Generation, nil
}

// Unpin serves the latest configuration accepted from the directory again.
func (cp *ControlPlane) Unpin(reason string) (uint64, error) {
	cp.reloadMu.Lock()
	defer cp.reloadMu.Unlock()
	if cp.dist.pinnedTo == 0 {
		return 0, errors.New("controlplane: not pinned")
	}
	cp.dist.pinnedTo = 0
	b, err := cp.distributeLocked(cp.dist.latest, cp.dist.latestSources, audit.KindUnpin, "unpinned: "+reason)
	if err != nil {
		return 0, err
	}
	cp.metrics.ManualOverrides.WithLabelValues(metrics.OverrideUnpin).Inc()
	cp.setStatusLocked(cp.dist.latest, b)
	cp.log.Warn("configuration unpinned", zap.Uint64("generation", b.Generation), zap.String("reason", reason))
	return b.Generation, nil
}

// Freeze turns the freeze on or off: while frozen, filters refuse side
// effects on every route not marked critical (reason frozen). The switch
// is distributed as a new bundle generation, recorded and counted.
func (cp *ControlPlane) Freeze(on bool, reason string) (uint64, error) {
	cp.reloadMu.Lock()
	defer cp.reloadMu.Unlock()
	if cp.dist.served == nil {
		return 0, errors.New("controlplane: nothing served yet")
	}
	if cp.dist.frozen == on {
		return cp.dist.bundle.Generation, nil
	}
	kind, override := audit.KindFreeze, metrics.OverrideFreeze
	if !on {
		kind, override = audit.KindUnfreeze, metrics.OverrideUnfreeze
	}
	cp.dist.frozen = on
	b, err := cp.distributeLocked(cp.dist.served, cp.dist.servedSources, kind, reason)
	if err != nil {
		cp.dist.frozen = !on
		return 0, err
	}
	cp.metrics.ManualOverrides.WithLabelValues(override).Inc()
	cp.setStatusLocked(cp.dist.served, b)
	cp.log.Warn("freeze switched", zap.Bool("frozen", on), zap.Uint64("generation", b.Generation), zap.String("reason", reason))
	return b.Generation, nil
}

// BundleJSON returns the distributed bundle as subscribers receive it (nil
// before the first).
func (cp *ControlPlane) BundleJSON() []byte { return cp.publisher.Current() }

// Quarantine returns the per-service quarantine report.
func (cp *ControlPlane) Quarantine() []xds.ServiceQuarantine { return cp.xds.Quarantine() }

// Bundle returns the distributed bundle (nil before the first).
func (cp *ControlPlane) Bundle() *bundle.Bundle {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.status.bundle
}

// Manifests returns a signed runtime manifest per known node: what it runs
// (its acknowledged snapshot version) against what it should (the hash of
// its rendered resources), with the policy being distributed.
func (cp *ControlPlane) Manifests() []bundle.Manifest {
	b := cp.Bundle()
	nodes := cp.xds.Nodes()
	out := make([]bundle.Manifest, 0, len(nodes))
	for _, n := range nodes { // sorted by id
		out = append(out, cp.manifest(n, b))
	}
	return out
}

func (cp *ControlPlane) manifest(n xds.NodeStatus, b *bundle.Bundle) bundle.Manifest {
	m := bundle.Manifest{
		Service: n.Service, Node: n.ID, SnapshotVersion: runningVersion(n), ConfigHash: n.Expected,
		SchemaRev: bundle.SchemaRev, IssuedAt: cp.now().UTC(),
	}
	m.Locality.Region, m.Locality.Zone, m.Locality.SubZone = n.Locality.Region, n.Locality.Zone, n.Locality.SubZone
	if b != nil {
		m.PolicyHash, m.ExpectedEnv, m.Generation = b.PolicyHash, b.Environment, b.Generation
	}
	if cp.signer != nil {
		if err := m.Sign(cp.signer); err != nil {
			cp.log.Error("manifest signing failed", zap.String("node", n.ID), zap.Error(err))
		}
	}
	return m
}

// runningVersion is the version a node acknowledged for every type it
// asked for, or "" when they differ or it acknowledged nothing yet.
func runningVersion(n xds.NodeStatus) string {
	v := ""
	for _, a := range n.Acked {
		if v != "" && a != v {
			return ""
		}
		v = a
	}
	return v
}
