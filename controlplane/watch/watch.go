// Package watch reloads the configuration when files under its directory
// change. It watches the directory and every subdirectory with fsnotify,
// picks up subdirectories created later, and debounces bursts of events into
// one reload.
//
// Any create, write, remove or rename under the tree triggers a reload, which
// covers editors that save by writing a temporary file and renaming it over
// the original, and Kubernetes ConfigMap volumes, which swap a "..data"
// symlink to a new timestamped directory. Attribute-only changes (chmod) do
// not.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// DefaultDebounce is the quiet time after the last event before a reload.
const DefaultDebounce = 200 * time.Millisecond

// ReloadFunc reloads the configuration. Its error is logged; the watcher
// keeps running.
type ReloadFunc func(ctx context.Context) error

// Options configure a Watcher; the zero value is usable.
type Options struct {
	// Debounce is the quiet time after the last event before reloading
	// (default DefaultDebounce).
	Debounce time.Duration
	// Logger receives the watcher's logs (default: no logging).
	Logger *zap.Logger
}

// Watcher calls a reload function when files under a directory change.
// Create it with New, then call Run exactly once; Run's caller owns the
// watcher's goroutine and stops it by cancelling the context.
type Watcher struct {
	dir      string
	reload   ReloadFunc
	debounce time.Duration
	log      *zap.Logger
	fsw      *fsnotify.Watcher
}

// New watches dir and its subdirectories. Watches are in place when New
// returns, so no change made afterwards is missed. The caller must call Run
// or Close to release the watches.
func New(dir string, reload ReloadFunc, opts Options) (*Watcher, error) {
	if reload == nil {
		return nil, errors.New("watch: nil reload function")
	}
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("watch: %s is not a directory", dir)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	w := &Watcher{dir: dir, reload: reload, debounce: opts.Debounce, log: opts.Logger, fsw: fsw}
	if w.debounce <= 0 {
		w.debounce = DefaultDebounce
	}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	if err := w.addTree(dir); err != nil {
		return nil, errors.Join(err, fsw.Close())
	}
	return w, nil
}

// addTree watches root and every directory below it (following symlinks to
// directories only at the root, as ConfigMap volumes need no more).
func (w *Watcher) addTree(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// A directory removed while walking is not an error: its
			// removal is an event of its parent.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("watch: %w", err)
		}
		if !d.IsDir() {
			return nil
		}
		if err := w.fsw.Add(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("watch: add %s: %w", path, err)
		}
		return nil
	})
}

// Run waits for changes and reloads after each burst, until ctx ends. It
// returns nil when ctx ends and an error when the watch itself fails. It
// closes the watcher on return.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("watch: event channel closed")
			}
			if !w.handle(ev) {
				continue
			}
			timer.Reset(w.debounce)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return errors.New("watch: error channel closed")
			}
			// Overflow and similar errors lose events: reload to be safe.
			w.log.Warn("config watch error", zap.String("dir", w.dir), zap.Error(err))
			timer.Reset(w.debounce)
		case <-timer.C:
			if err := w.reload(ctx); err != nil {
				w.log.Warn("config reload failed", zap.String("dir", w.dir), zap.Error(err))
			}
		}
	}
}

// handle watches new directories and reports whether ev calls for a reload.
func (w *Watcher) handle(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	if ev.Has(fsnotify.Create) {
		// Lstat: a symlink to a directory (ConfigMap "..data") is followed
		// by reading through it on reload, not by watching it twice.
		if info, err := os.Lstat(ev.Name); err == nil && info.IsDir() {
			if err := w.addTree(ev.Name); err != nil {
				w.log.Warn("config watch: cannot watch new directory", zap.String("dir", ev.Name), zap.Error(err))
			}
		}
	}
	w.log.Debug("config change", zap.String("file", ev.Name), zap.String("op", ev.Op.String()))
	return true
}

// Close releases the watches; Run calls it on return. It is safe to call
// more than once.
func (w *Watcher) Close() error {
	if err := w.fsw.Close(); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	return nil
}
