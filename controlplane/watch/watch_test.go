package watch

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testDebounce = 100 * time.Millisecond

// recorder is a reload function that reads one file on every reload.
type recorder struct {
	file string
	mu   sync.Mutex
	seen []string
	ch   chan string
}

func newRecorder(file string) *recorder {
	return &recorder{file: file, ch: make(chan string, 100)}
}

func (r *recorder) reload(context.Context) error {
	b, err := os.ReadFile(r.file)
	content := string(b)
	if err != nil {
		content = "error: " + err.Error()
	}
	r.mu.Lock()
	r.seen = append(r.seen, content)
	r.mu.Unlock()
	r.ch <- content
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// run starts a watcher over dir until the test ends.
func run(t *testing.T, dir string, r *recorder) {
	t.Helper()
	w, err := New(dir, r.reload, Options{Debounce: testDebounce})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// waitReload waits for a reload that read want.
func waitReload(t *testing.T, r *recorder, want string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-r.ch:
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("no reload read %q; reloads read %q", want, r.seen)
		}
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWriteTriggersOneDebouncedReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mesh.yaml")
	write(t, file, "v0")
	r := newRecorder(file)
	run(t, dir, r)

	for i := range 5 {
		write(t, filepath.Join(dir, "other.yaml"), "x")
		write(t, file, "v"+string(rune('1'+i)))
	}
	waitReload(t, r, "v5")
	time.Sleep(4 * testDebounce)
	if n := r.count(); n != 1 {
		t.Errorf("%d reloads for one burst of writes, want 1", n)
	}
}

func TestNewSubdirectoryIsWatched(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "team", "payments")
	file := filepath.Join(sub, "budgets.yaml")
	r := newRecorder(file)
	run(t, dir, r)

	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, file, "v1")
	waitReload(t, r, "v1")
	// A later change inside the new subdirectory is seen too.
	time.Sleep(2 * testDebounce)
	write(t, file, "v2")
	waitReload(t, r, "v2")
}

func TestAtomicSaveTriggersReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mesh.yaml")
	write(t, file, "v1")
	r := newRecorder(file)
	run(t, dir, r)

	tmp := filepath.Join(dir, ".mesh.yaml.swp")
	write(t, tmp, "v2")
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	waitReload(t, r, "v2")
	// The replaced file is still watched through its directory.
	time.Sleep(2 * testDebounce)
	write(t, tmp, "v3")
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	waitReload(t, r, "v3")
}

// TestConfigMapSymlinkSwap replays how the kubelet updates a ConfigMap volume:
// a new timestamped directory, a "..data_tmp" symlink to it renamed over
// "..data", then the old directory removed. Files are symlinks through "..data".
func TestConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	mustSymlink := func(target, link string) {
		t.Helper()
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	mkVersion := func(name, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, name, "mesh.yaml"), content)
	}
	mkVersion("..2025_01_01_00_00_00.1", "v1")
	mustSymlink("..2025_01_01_00_00_00.1", filepath.Join(dir, "..data"))
	mustSymlink(filepath.Join("..data", "mesh.yaml"), filepath.Join(dir, "mesh.yaml"))
	r := newRecorder(filepath.Join(dir, "mesh.yaml"))
	run(t, dir, r)

	mkVersion("..2025_01_01_00_01_00.2", "v2")
	mustSymlink("..2025_01_01_00_01_00.2", filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2025_01_01_00_00_00.1")); err != nil {
		t.Fatal(err)
	}
	waitReload(t, r, "v2")
}

func TestRunStopsWithContext(t *testing.T) {
	w, err := New(t.TempDir(), func(context.Context) error { return nil }, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestNew_Errors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	write(t, file, "x")
	noop := func(context.Context) error { return nil }
	tests := []struct {
		name   string
		dir    string
		reload ReloadFunc
	}{
		{"missing directory", filepath.Join(dir, "missing"), noop},
		{"file instead of directory", file, noop},
		{"nil reload", dir, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := New(tc.dir, tc.reload, Options{})
			if err == nil {
				_ = w.Close()
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}
