// Package loadgen is an open-loop load generator: requests start on a
// fixed schedule (constant arrival rate) whether or not earlier ones have
// finished, and each latency is measured from the request's intended send
// time, not from when it was actually sent. A server (or a generator) that
// stalls therefore shows the stall in every request scheduled during it,
// instead of hiding it by sending less (coordinated omission).
//
// Latencies go into HDR histograms (microseconds, 3 significant digits).
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/hopguard/hopguard/bench/result"
)

// Histogram bounds, in microseconds.
const (
	minMicros = 1
	maxMicros = 60_000_000
	sigDigits = 3
)

// NewHistogram returns an empty latency histogram (1 µs to 60 s).
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(minMicros, maxMicros, sigDigits)
}

// Record adds d to h, clamped to the histogram's range.
func Record(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	us = max(us, minMicros)
	us = min(us, maxMicros)
	// In range by construction, so RecordValue cannot fail.
	_ = h.RecordValue(us)
}

// Summary summarises h.
func Summary(h *hdrhistogram.Histogram) result.Latency {
	if h.TotalCount() == 0 {
		return result.Latency{}
	}
	return result.Latency{
		Count: h.TotalCount(),
		P50:   float64(h.ValueAtQuantile(50)),
		P90:   float64(h.ValueAtQuantile(90)),
		P99:   float64(h.ValueAtQuantile(99)),
		P999:  float64(h.ValueAtQuantile(99.9)),
		Max:   float64(h.Max()),
		Mean:  h.Mean(),
	}
}

// Op performs one request. It returns a short outcome label (counted per
// label) and whether the answer was the expected one; an error means the
// request failed. It must honour ctx.
type Op func(ctx context.Context, seq int64) (outcome string, expected bool, err error)

// Step is one constant-rate run.
type Step struct {
	// Rate is the offered rate in requests per second (> 0).
	Rate float64
	// Duration is how long requests are scheduled (> 0).
	Duration time.Duration
	// MaxInFlight caps concurrent requests; a request due while the cap is
	// reached is dropped and counted, so the schedule never slows down.
	MaxInFlight int
	// Timeout bounds each request (default 10 s).
	Timeout time.Duration
	// FirstSeq is the sequence number of the first request; Op receives
	// FirstSeq, FirstSeq+1, ... (lets callers keep keys unique across steps).
	FirstSeq int64
}

// Stats is what a Step measured.
type Stats struct {
	Scheduled, Completed, Errors, Dropped, Unexpected int64
	// Elapsed is from the first intended send to the last completion (at
	// least the step's Duration).
	Elapsed time.Duration
	// Hist holds the latencies of completed requests, from their intended
	// send time (what the caller experiences).
	Hist *hdrhistogram.Histogram
	// Service holds the same requests' latencies from their actual send
	// time (what the server took, generator lateness excluded).
	Service *hdrhistogram.Histogram
	// Lag holds how late the generator sent each completed request
	// (actual minus intended send time).
	Lag *hdrhistogram.Histogram
	// Outcomes counts completed requests by outcome label.
	Outcomes map[string]int64
	// FirstErr is the first request error seen (nil when none).
	FirstErr error
}

// Merge adds o into s (Elapsed adds up: steps run one after another).
func (s *Stats) Merge(o *Stats) {
	s.Scheduled += o.Scheduled
	s.Completed += o.Completed
	s.Errors += o.Errors
	s.Dropped += o.Dropped
	s.Unexpected += o.Unexpected
	s.Elapsed += o.Elapsed
	if s.Hist == nil {
		s.Hist, s.Service, s.Lag = NewHistogram(), NewHistogram(), NewHistogram()
	}
	s.Hist.Merge(o.Hist)
	s.Service.Merge(o.Service)
	s.Lag.Merge(o.Lag)
	if s.Outcomes == nil {
		s.Outcomes = map[string]int64{}
	}
	for k, v := range o.Outcomes {
		s.Outcomes[k] += v
	}
	if s.FirstErr == nil {
		s.FirstErr = o.FirstErr
	}
}

// ErrBadStep is returned for a Step with a non-positive rate, duration or cap.
var ErrBadStep = errors.New("loadgen: bad step")

// Run runs step against op and returns when every started request has
// ended. Cancelling ctx stops scheduling; requests already started are
// cancelled through their contexts and counted as errors.
func Run(ctx context.Context, step Step, op Op) (*Stats, error) {
	if step.Rate <= 0 || step.Duration <= 0 || step.MaxInFlight <= 0 {
		return nil, fmt.Errorf("%w: rate %g, duration %v, max in flight %d", ErrBadStep, step.Rate, step.Duration, step.MaxInFlight)
	}
	timeout := step.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	n := int64(step.Rate * step.Duration.Seconds())
	n = max(n, 1)
	interval := time.Duration(float64(time.Second) / step.Rate)
	st := &Stats{Hist: NewHistogram(), Service: NewHistogram(), Lag: NewHistogram(), Outcomes: map[string]int64{}}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		last time.Time
	)
	slots := make(chan struct{}, step.MaxInFlight)
	// The dispatch loop keeps its thread: nanosleep blocks the thread, and
	// a locked thread is not shared with other goroutines.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		intended := start.Add(time.Duration(i) * interval)
		// Being late is measured (latency counts from the intended time);
		// being early is avoided by sleeping until the intended time.
		if d := time.Until(intended); d > 20*time.Microsecond {
			sleep(d)
		}
		st.Scheduled++
		select {
		case slots <- struct{}{}:
		default:
			st.Dropped++
			continue
		}
		wg.Add(1)
		go func(seq int64, intended time.Time) {
			defer wg.Done()
			defer func() { <-slots }()
			sent := time.Now()
			rctx, cancel := context.WithTimeout(ctx, timeout)
			outcome, ok, err := op(rctx, seq)
			cancel()
			end := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if end.After(last) {
				last = end
			}
			if err != nil {
				st.Errors++
				if st.FirstErr == nil {
					st.FirstErr = err
				}
				return
			}
			st.Completed++
			st.Outcomes[outcome]++
			if !ok {
				st.Unexpected++
			}
			Record(st.Hist, end.Sub(intended))
			Record(st.Service, end.Sub(sent))
			Record(st.Lag, sent.Sub(intended))
		}(step.FirstSeq+i, intended)
	}
	wg.Wait()
	st.Elapsed = max(last.Sub(start), step.Duration)
	return st, nil
}
