// Package source loads compiled policy bundles from a directory of budget
// YAML and keeps them current, for the processes that enforce budgets
// without running a control plane: `hopguard extproc --config DIR` and
// proxyless gRPC servers that install filters/interceptor.
//
// It sits outside filters/ on purpose: compiling YAML needs the control
// plane's IR, and filters never import the control plane.
package source

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/watch"
	"github.com/hopguard/hopguard/policy"
)

// ErrInvalid is wrapped by errors about configuration that does not validate.
var ErrInvalid = errors.New("source: invalid configuration")

// LoadDir reads, validates and compiles every budget file under dir (the
// same rules as the control plane) and returns the policies to enforce.
func LoadDir(dir string) (*policy.Bundle, error) {
	cfg, vs, err := v1alpha1.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if errs := vs.Errors(); len(errs) > 0 {
		return nil, fmt.Errorf("%w: %d violations:\n%w", ErrInvalid, len(errs), errs)
	}
	m, err := ir.Build(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return m.Bundle(), nil
}

// Options configure Watch.
type Options struct {
	// Debounce is the quiet time after a file change before reloading
	// (default watch.DefaultDebounce).
	Debounce time.Duration
	// Logger receives reload logs (default: none).
	Logger *zap.Logger
	// AllowEmpty accepts a directory without route budgets. Without it
	// Open refuses one, and a reload that would take every route budget
	// away is refused: a directory caught half-copied, unmounted or emptied
	// by mistake would otherwise turn enforcement off while looking healthy.
	AllowEmpty bool
}

// ErrEmpty is wrapped (with ErrInvalid) by the refusal of a directory
// without route budgets.
var ErrEmpty = errors.New("source: no route budgets")

// Dir is a watched directory of budgets. Its methods are safe for
// concurrent use.
type Dir struct {
	dir        string
	install    func(*policy.Bundle)
	log        *zap.Logger
	w          *watch.Watcher
	allowEmpty bool

	mu      sync.Mutex
	lastErr error
}

// Open loads dir once — an invalid directory is an error, nothing is
// installed — hands the bundle to install, and returns a Dir whose Run
// keeps installing every valid change. An invalid change is refused whole:
// install is not called, the last good policies stay in force, and LastError
// reports why until the next valid change.
func Open(dir string, install func(*policy.Bundle), opts Options) (*Dir, error) {
	d := &Dir{dir: dir, install: install, log: opts.Logger, allowEmpty: opts.AllowEmpty}
	if d.log == nil {
		d.log = zap.NewNop()
	}
	// Watch first, then load: a change made in between is then seen by
	// the watcher instead of being missed.
	w, err := watch.New(dir, d.reload, watch.Options{Debounce: opts.Debounce, Logger: d.log})
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	b, err := LoadDir(dir)
	if err == nil {
		err = d.checkNotEmpty(b)
	}
	if err != nil {
		_ = w.Close()
		return nil, err
	}
	d.w = w
	install(b)
	return d, nil
}

// Run watches the directory until ctx is done. The caller owns the goroutine.
func (d *Dir) Run(ctx context.Context) error { return d.w.Run(ctx) }

// LastError is the reason the last change was refused, or nil.
func (d *Dir) LastError() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

// checkNotEmpty refuses b when it has no route budgets, unless allowed.
func (d *Dir) checkNotEmpty(b *policy.Bundle) error {
	if d.allowEmpty || len(b.Routes) > 0 {
		return nil
	}
	return fmt.Errorf("%w: %w: %s declares none, so nothing would be enforced "+
		"(a directory half-copied, unmounted or emptied by mistake looks like this): "+
		"restore the files, or run with --allow-empty-config", ErrInvalid, ErrEmpty, d.dir)
}

func (d *Dir) reload(context.Context) error {
	b, err := LoadDir(d.dir)
	if err == nil {
		err = d.checkNotEmpty(b)
	}
	d.mu.Lock()
	d.lastErr = err
	d.mu.Unlock()
	if err != nil {
		d.log.Error("config refused; the last good policies stay in force", zap.String("dir", d.dir), zap.Error(err))
		return err
	}
	d.install(b)
	d.log.Info("policies loaded", zap.String("dir", d.dir), zap.Int("routes", len(b.Routes)))
	return nil
}

// Close stops watching without Run (Run closes by itself when it returns).
func (d *Dir) Close() error { return d.w.Close() }
