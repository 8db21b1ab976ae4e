package controlplane

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/hopguard/hopguard/controlplane/admin"
	"github.com/hopguard/hopguard/controlplane/audit"
	"github.com/hopguard/hopguard/controlplane/metrics"
	"github.com/hopguard/hopguard/controlplane/xds"
	"github.com/hopguard/hopguard/policy"
	"github.com/hopguard/hopguard/policy/bundle"
)

// ErrNoAuditLog is returned by Pin when the control plane keeps no audit
// log: earlier generations can only be rebuilt from the sources it keeps.
// The admin API answers it with 501.
var ErrNoAuditLog error = &kindError{"controlplane: pin needs an audit log (--audit-log)", admin.ErrUnsupported}

// ErrUnknownGeneration is returned by Pin for a generation the audit log
// has no accepted configuration for. The admin API answers it with 404.
var ErrUnknownGeneration error = &kindError{"controlplane: unknown generation", admin.ErrNotFound}

// kindError is an error with its own message that is also one of the
// admin API's error kinds (admin.ErrConflict, ...).
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// conflict is an override error the current state explains (admin 409).
func conflict(format string, args ...any) error {
	return &kindError{fmt.Sprintf(format, args...), admin.ErrConflict}
}

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
	// recorded is the served state the audit trail last recorded: what
	// the next change is measured against. At start it is seeded from the
	// audit log, so a restart is not mistaken for a change.
	recorded recordedState
	// acceptedVersion is the configuration version of the directory the
	// audit trail last recorded as accepted (served, or not served while
	// pinned), so that a pinned control plane records each new directory
	// configuration once.
	acceptedVersion string
}

// recordedState is a served configuration as the audit trail knows it.
type recordedState struct {
	// policyHash and configVersion are its policy hash (freeze included)
	// and configuration version; both empty before anything was recorded.
	policyHash, configVersion string
	// environment and generation are those of its bundle.
	environment string
	generation  uint64
	// config is the configuration itself, when it could be rebuilt (from
	// the audit log's sources at start): its change windows judge the next
	// change, its routes summarize it. nil when unknown.
	config *loaded
}

// known reports whether anything was recorded.
func (r *recordedState) known() bool { return r.policyHash != "" }

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
// then, when the policies changed or an operator acted (kind other than
// KindChange), a new signed bundle to subscribers and OnApply. The audit log gets a record when what is
// served changed (its policies, its configuration version, or the
// overrides), or when an operator acted (kind other than KindChange).
// pinnedTo is recorded on pin records. Callers hold reloadMu.
func (cp *ControlPlane) distributeLocked(l *loaded, sources []audit.Source, kind, detail string) (*bundle.Bundle, error) {
	if err := cp.xds.Update(l.mesh); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	now := cp.now()
	pb := l.mesh.Bundle()
	pb.Mesh.Frozen = cp.dist.frozen
	hash := bundle.PolicyHash(pb)
	env := l.mesh.Policy.Environment
	prev := cp.dist.bundle
	rec := &cp.dist.recorded
	b := prev
	// An operator's override is always distributed under a new generation,
	// even when it changes no policy: filters that meanwhile took a newer
	// generation from another replica accept only a newer one.
	changed := prev == nil || prev.PolicyHash != hash || prev.Environment != env || kind != audit.KindChange
	if changed {
		var last uint64
		if prev != nil {
			last = prev.Generation
		}
		gen := nextGeneration(max(last, cp.lastGen), now)
		if prev == nil && rec.policyHash == hash && rec.environment == env && rec.generation > 0 {
			// A restart serving the policies the audit log says were
			// served: the same generation, which filters take as unchanged.
			gen = rec.generation
		}
		b = bundle.New(*pb, bundle.SchemaRev, env, gen, now)
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
		cp.lastGen = max(cp.lastGen, b.Generation)
		cp.publisher.Publish(raw)
		cp.metrics.BundleGeneration.Set(float64(b.Generation))
		cp.metrics.SetPolicy(hash, bundle.SchemaRev, env)
		if cp.onApply != nil {
			m := *l.mesh
			m.Policy.Frozen = cp.dist.frozen
			cp.onApply(&m)
		}
		cp.log.Info("policy bundle distributed", zap.String("kind", kind), zap.Uint64("generation", b.Generation),
			zap.String("policy_hash", hash), zap.Bool("signed", b.SignedBy != ""), zap.Bool("frozen", cp.dist.frozen))
	}
	version := l.version(cp.log)
	// Records written before configuration versions were recorded have
	// none: the first change measured against one compares policies only.
	moved := hash != rec.policyHash || (rec.configVersion != "" && version != rec.configVersion)
	// Overrides are recorded even when they change nothing distributed
	// (pinning the generation in force, say): the audit trail is of what
	// operators did, not only of what it changed.
	if moved || kind != audit.KindChange {
		r := audit.Record{
			Time: now, Kind: kind, Sources: sources, Generation: b.Generation,
			OldPolicyHash: rec.policyHash, NewPolicyHash: hash,
			OldConfigVersion: rec.configVersion, NewConfigVersion: version,
			InWindow: cp.inWindowLocked(now, l), Detail: detail,
		}
		if kind == audit.KindPin {
			r.PinnedTo = cp.dist.pinnedTo
		}
		var old *policy.Bundle
		switch {
		case prev != nil:
			old = &prev.Policies
		case rec.config != nil:
			old = rec.config.mesh.Bundle()
		}
		r.Summary = audit.Summarize(old, pb)
		if kind == audit.KindChange && rec.known() {
			cp.metrics.ConfigChanges.WithLabelValues(strconv.FormatBool(r.InWindow)).Inc()
			if !r.InWindow {
				cp.log.Warn("configuration changed outside every declared change window",
					zap.Uint64("generation", b.Generation), zap.String("policy_hash", hash), zap.String("config_version", version))
			}
		}
		_ = cp.record(r)
		if kind == audit.KindChange {
			cp.dist.acceptedVersion = version
		}
	}
	cp.dist.served, cp.dist.servedSources = l, sources
	*rec = recordedState{policyHash: hash, configVersion: version, environment: env, generation: b.Generation, config: l}
	return b, nil
}

// inWindowLocked reports whether a change at now falls in a change window
// of the configuration in force before it: a change cannot open its own
// window. With nothing in force yet (the first start without an audit
// log) the windows of next, the configuration being applied, decide.
// Callers hold reloadMu.
func (cp *ControlPlane) inWindowLocked(now time.Time, next *loaded) bool {
	switch {
	case cp.dist.served != nil:
		return InChangeWindow(now, cp.dist.served.mesh.ChangeWindows)
	case cp.dist.recorded.config != nil:
		return InChangeWindow(now, cp.dist.recorded.config.mesh.ChangeWindows)
	case next != nil:
		return InChangeWindow(now, next.mesh.ChangeWindows)
	}
	return true
}

// Pin serves the configuration accepted as generation gen (read back from
// the audit log's sources) until Unpin, whatever the directory holds. The
// pinned configuration is distributed under a new generation, so filters
// accept it; the pin is recorded and counted as a manual override.
func (cp *ControlPlane) Pin(gen uint64, reason string) (uint64, error) {
	cp.reloadMu.Lock()
	defer cp.reloadMu.Unlock()
	l, sources, err := cp.loadGeneration(gen)
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
		return 0, conflict("controlplane: not pinned")
	}
	if cp.dist.latest == nil {
		return 0, conflict("controlplane: the directory's configuration was refused since the start; fix it (see /config lastError), then unpin")
	}
	was := cp.dist.pinnedTo
	cp.dist.pinnedTo = 0
	b, err := cp.distributeLocked(cp.dist.latest, cp.dist.latestSources, audit.KindUnpin, "unpinned: "+reason)
	if err != nil {
		cp.dist.pinnedTo = was
		return 0, err
	}
	cp.metrics.ManualOverrides.WithLabelValues(metrics.OverrideUnpin).Inc()
	cp.setStatusLocked(cp.dist.latest, b)
	cp.log.Warn("configuration unpinned", zap.Uint64("generation", b.Generation), zap.String("reason", reason))
	return b.Generation, nil
}

// Freeze turns the freeze on or off: while frozen, filters refuse side
// effects on every route not marked critical (reason frozen). The switch
// is distributed as a new bundle generation, recorded and counted, also
// when this control plane is already in that state: a filter that took a
// freeze from another replica holds a higher generation than this one's
// bundle, and only a newer generation reaches it.
func (cp *ControlPlane) Freeze(on bool, reason string) (uint64, error) {
	cp.reloadMu.Lock()
	defer cp.reloadMu.Unlock()
	if cp.dist.served == nil {
		return 0, conflict("controlplane: nothing served yet")
	}
	kind, override := audit.KindFreeze, metrics.OverrideFreeze
	if !on {
		kind, override = audit.KindUnfreeze, metrics.OverrideUnfreeze
	}
	was := cp.dist.frozen
	cp.dist.frozen = on
	b, err := cp.distributeLocked(cp.dist.served, cp.dist.servedSources, kind, reason)
	if err != nil {
		cp.dist.frozen = was
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
		Connected: n.Connected, Drifted: n.Drifted,
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
