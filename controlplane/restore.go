package controlplane

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/hopguard/hopguard/controlplane/audit"
)

// restore reads back, from the audit log, what was served before a
// restart and the overrides in force: the freeze is switched back on, and
// the pinned configuration, when it can be rebuilt, is returned to be
// served again once the directory is loaded (servePinned). Without an
// audit log nothing survives a restart. It runs in Start, before the first
// load.
func (cp *ControlPlane) restore() (*pinned, error) {
	cp.reloadMu.Lock()
	defer cp.reloadMu.Unlock()
	if cp.audit == nil {
		return nil, nil
	}
	last, ok := cp.audit.Last()
	if !ok {
		return nil, nil
	}
	cp.lastGen = last.Generation
	rec := recordedState{policyHash: last.NewPolicyHash, configVersion: last.NewConfigVersion, generation: last.Generation}
	if l, _, err := cp.loadGeneration(last.Generation); err == nil {
		rec.config, rec.environment = l, l.mesh.Policy.Environment
	} else {
		cp.log.Warn("audit log: the configuration last served cannot be rebuilt; the next change is summarized against nothing",
			zap.Uint64("generation", last.Generation), zap.Error(err))
	}
	cp.dist.recorded = rec
	if acc, ok := cp.audit.LastOf(audit.KindChange); ok {
		cp.dist.acceptedVersion = acc.NewConfigVersion
	}
	o := cp.audit.Overrides()
	if o.Frozen {
		cp.dist.frozen = true
		cp.log.Warn("freeze restored from the audit log: side effects on routes not marked critical stay refused until unfrozen")
	}
	if o.PinnedTo == 0 {
		return nil, nil
	}
	l, sources, err := cp.loadGeneration(o.PinnedTo)
	switch {
	case err == nil:
	case unrebuildable(err):
		// The pin ends, once the directory is served (servePinned
		// records it): a later restart that could rebuild it must not
		// bring it back.
		cp.log.Error("audit log: the pinned generation cannot be rebuilt; the pin is lifted and the directory served (pin again to restore it)",
			zap.Uint64("pinned_generation", o.PinnedTo), zap.Error(err))
		return &pinned{generation: o.PinnedTo, lifted: err}, nil
	default:
		return nil, fmt.Errorf("controlplane: restore pin to generation %d: %w", o.PinnedTo, err)
	}
	cp.dist.pinnedTo = o.PinnedTo
	cp.log.Warn("pin restored from the audit log: the directory's configuration is accepted but not served until unpinned",
		zap.Uint64("pinned_generation", o.PinnedTo))
	return &pinned{config: l, sources: sources, generation: o.PinnedTo}, nil
}

// unrebuildable reports whether err says a generation's configuration is
// gone for good (its record or sources missing or modified, or no longer
// valid), rather than a passing failure worth a restart.
func unrebuildable(err error) bool {
	return errors.Is(err, audit.ErrNoGeneration) || errors.Is(err, audit.ErrSourceModified) ||
		errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalidConfig)
}

// pinned is the pin found in the audit log at start: rebuilt (config),
// or to be lifted because it cannot be (lifted).
type pinned struct {
	config     *loaded
	sources    []audit.Source
	generation uint64
	lifted     error
}

// servePinned serves the pin restored at start, or records that it was
// lifted, now that the directory is served (p nil: nothing to do).
func (cp *ControlPlane) servePinned(p *pinned) error {
	if p == nil {
		return nil
	}
	cp.reloadMu.Lock()
	defer cp.reloadMu.Unlock()
	if p.lifted != nil {
		return cp.record(audit.Record{Time: cp.now(), Kind: audit.KindUnpin,
			Detail: fmt.Sprintf("pin to generation %d lifted at start: it cannot be rebuilt: %v", p.generation, p.lifted)})
	}
	b, err := cp.distributeLocked(p.config, p.sources, audit.KindChange,
		fmt.Sprintf("pin to generation %d restored at start", cp.dist.pinnedTo))
	if err != nil {
		return fmt.Errorf("controlplane: restore pin to generation %d: %w", cp.dist.pinnedTo, err)
	}
	cp.setStatusLocked(p.config, b)
	return nil
}

// loadGeneration rebuilds the configuration accepted as generation gen
// from the audit log's sources, with their hashes.
func (cp *ControlPlane) loadGeneration(gen uint64) (*loaded, []audit.Source, error) {
	if cp.audit == nil {
		return nil, nil, ErrNoAuditLog
	}
	files, err := cp.audit.Sources(gen)
	if err != nil {
		return nil, nil, fmt.Errorf("%w %d: %w", ErrUnknownGeneration, gen, err)
	}
	dir, err := os.MkdirTemp("", "hopguard-generation-")
	if err != nil {
		return nil, nil, fmt.Errorf("controlplane: rebuild generation %d: %w", gen, err)
	}
	defer os.RemoveAll(dir)
	for p, b := range files {
		path := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, nil, fmt.Errorf("controlplane: rebuild generation %d: %w", gen, err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, nil, fmt.Errorf("controlplane: rebuild generation %d: %w", gen, err)
		}
	}
	l, err := cp.load(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("controlplane: generation %d: %w", gen, err)
	}
	sources, err := cp.sourceHashes(files)
	if err != nil {
		return nil, nil, err
	}
	return l, sources, nil
}
