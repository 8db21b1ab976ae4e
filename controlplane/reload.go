package controlplane

import (
	"context"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/admin"
	"github.com/hopguard/hopguard/controlplane/audit"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/metrics"
	"github.com/hopguard/hopguard/policy/bundle"
)

// Reload reads, compiles and serves the configuration directory. A refused
// configuration (error wrapping ErrInvalidConfig) leaves the served one in
// place; the refusal is logged, counted and shown by Config. Reloads are
// serialised.
func (cp *ControlPlane) Reload(ctx context.Context) error {
	cp.reloadMu.Lock()
	defer cp.reloadMu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("controlplane: reload: %w", err)
	}
	l, err := cp.load(cp.dir)
	var sources []audit.Source
	if err == nil {
		for _, v := range l.warnings {
			cp.log.Warn("config warning", zap.String("violation", v.String()))
		}
		var files map[string][]byte
		if files, err = readSources(cp.dir, l.files); err == nil {
			sources, err = cp.sourceHashes(files)
		}
	}
	if err == nil {
		err = cp.checkNotEmptiedLocked(l)
	}
	var b *bundle.Bundle
	if err == nil {
		cp.dist.latest, cp.dist.latestSources = l, sources
		if cp.dist.pinnedTo != 0 {
			// Accepted, and served once unpinned. Recorded once per
			// configuration: reloads of the same files, and restarts,
			// append nothing. A refusal shown before is over.
			cp.mu.Lock()
			cp.status.LastError = nil
			cp.mu.Unlock()
			if v := l.version(cp.log); v != cp.dist.acceptedVersion {
				cp.log.Warn("config accepted but not served: pinned", zap.Uint64("pinned_generation", cp.dist.pinnedTo))
				now := cp.now()
				_ = cp.record(audit.Record{Time: now, Kind: audit.KindChange, Sources: sources,
					InWindow: cp.inWindowLocked(now, l), NewConfigVersion: v,
					Detail: fmt.Sprintf("accepted, not served: pinned to generation %d", cp.dist.pinnedTo)})
				cp.dist.acceptedVersion = v
			}
			cp.metrics.ConfigReloads.WithLabelValues(metrics.ReloadOK).Inc()
			return nil
		}
		b, err = cp.distributeLocked(l, sources, audit.KindChange, "")
	}
	now := cp.now()
	if err != nil {
		cp.metrics.ConfigReloads.WithLabelValues(metrics.ReloadInvalid).Inc()
		cp.log.Error("config refused; the last good configuration stays served", zap.String("dir", cp.dir), zap.Error(err))
		_ = cp.record(audit.Record{Time: now, Kind: audit.KindRefused, Sources: sources, InWindow: cp.inWindowLocked(now, l),
			Errors: strings.Split(err.Error(), "\n")})
		cp.mu.Lock()
		cp.status.LastError = &admin.LoadError{Message: err.Error(), At: now}
		cp.mu.Unlock()
		return err
	}
	cp.metrics.ConfigReloads.WithLabelValues(metrics.ReloadOK).Inc()
	cp.setStatusLocked(l, b)
	return nil
}

// checkNotEmptiedLocked refuses l when it declares no services while
// services are served, or were when the audit log last recorded, unless
// Options.AllowEmpty. Callers hold reloadMu.
func (cp *ControlPlane) checkNotEmptiedLocked(l *loaded) error {
	if cp.allowEmpty || len(l.mesh.Services) > 0 {
		return nil
	}
	before := cp.dist.latest
	if before == nil {
		before = cp.dist.recorded.config
	}
	if before == nil || len(before.mesh.Services) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s declares no services where %d are served; refusing to remove every route "+
		"(a directory half-copied, unmounted or emptied by mistake looks like this): restore the files, "+
		"or run with --allow-empty-config to serve an empty mesh", ErrInvalidConfig, cp.dir, len(before.mesh.Services))
}

// setStatusLocked makes l, distributed as b, the status /config shows.
// Callers hold reloadMu.
func (cp *ControlPlane) setStatusLocked(l *loaded, b *bundle.Bundle) {
	version := l.version(cp.log)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.status.Version != version || cp.status.bundle != b {
		cp.log.Info("config served", zap.String("version", version), zap.String("policy_hash", b.PolicyHash),
			zap.Uint64("generation", b.Generation), zap.Int("services", len(l.mesh.Services)))
		cp.status.LoadedAt = cp.now()
	}
	cp.status.Mesh = l.mesh
	cp.status.Version = version
	cp.status.PolicyHash = b.PolicyHash
	cp.status.Generation = b.Generation
	cp.status.SignedBy = b.SignedBy
	cp.status.Overrides = admin.Overrides{PinnedTo: cp.dist.pinnedTo, Frozen: cp.dist.frozen}
	cp.status.Files = l.files
	cp.status.LastError = nil
	cp.status.bundle = b
}

// loadDir is the default loadFunc: v1alpha1.Load then ir.Build.
func loadDir(dir string) (*loaded, error) {
	cfg, vs, err := v1alpha1.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if errs := vs.Errors(); len(errs) > 0 {
		return nil, fmt.Errorf("%w: %d violations:\n%w", ErrInvalidConfig, len(errs), errs)
	}
	m, err := ir.Build(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	var warnings v1alpha1.Violations
	for _, v := range vs {
		if v.Warning {
			warnings = append(warnings, v)
		}
	}
	return &loaded{mesh: m, files: cfg.Files, warnings: warnings}, nil
}
