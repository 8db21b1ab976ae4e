package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress shows what the harness is doing: on a terminal one status line
// rewritten in place (with the elapsed time), elsewhere plain lines. It is
// safe for concurrent use.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	start time.Time
	// open is true while a status line is shown without its newline.
	open bool
}

// newProgress writes to f, in place when f is a terminal.
func newProgress(f *os.File, now time.Time) *progress {
	tty := false
	if fi, err := f.Stat(); err == nil {
		tty = fi.Mode()&os.ModeCharDevice != 0
	}
	return &progress{w: f, tty: tty, start: now}
}

// Status shows a transient line (replaced by the next one on a terminal).
func (p *progress) Status(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf("[%5.0fs] ", time.Since(p.start).Seconds()) + fmt.Sprintf(format, args...)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.open = true
		return
	}
	fmt.Fprintln(p.w, line)
}

// Done prints a line that stays.
func (p *progress) Done(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		fmt.Fprint(p.w, "\r\033[K")
		p.open = false
	}
	fmt.Fprintf(p.w, "[%5.0fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// Writer returns an io.Writer whose lines become status lines (for
// packages that report progress as text).
func (p *progress) Writer() io.Writer { return lineWriter{p} }

type lineWriter struct{ p *progress }

func (l lineWriter) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line != "" {
			l.p.Status("%s", line)
		}
	}
	return len(b), nil
}
