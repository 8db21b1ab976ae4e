package engine

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Latency histogram layout: log-linear buckets over microseconds, with
// latencySub buckets per power of two, so a bucket is at most 1/latencySub
// (12.5 %) of its value wide. Values at or above 2^latencyMaxExp µs (≈ 76 h)
// share the last bucket.
const (
	latencySubBits = 3
	latencySub     = 1 << latencySubBits
	latencyMaxExp  = 38
	latencyBuckets = (latencyMaxExp - latencySubBits + 1) * latencySub
	// latencyWindow is how long one of the two rotating windows collects
	// samples: estimates cover the last one to two windows and follow change
	// within two windows.
	latencyWindow = 30 * time.Second
)

// latencyEstimator is a streaming quantile estimator of one route's latency
// (request to response headers). Observations are two atomic adds; a
// quantile scans the buckets of the current and the previous window.
//
// It takes no locks. A window is recycled by the first observer of a new
// window (CAS on its epoch, then zeroing), so samples racing with a recycle
// may be lost or counted in the new window: the estimate is approximate by
// design.
type latencyEstimator struct {
	windows [2]latencyWindowCounts
}

type latencyWindowCounts struct {
	epoch  atomic.Int64
	total  atomic.Uint64
	counts [latencyBuckets]atomic.Uint64
}

// latencyBucket returns the bucket index of a latency of us microseconds.
func latencyBucket(us uint64) int {
	if us < latencySub {
		return int(us)
	}
	e := bits.Len64(us) - 1 - latencySubBits // ≥ 0
	if e > latencyMaxExp-latencySubBits-1 {
		return latencyBuckets - 1
	}
	return (e+1)*latencySub + int(us>>uint(e)) - latencySub
}

// latencyBucketUpper returns the exclusive upper bound (µs) of bucket i.
func latencyBucketUpper(i int) uint64 {
	if i < latencySub {
		return uint64(i) + 1
	}
	e := i/latencySub - 1
	m := uint64(i%latencySub + latencySub)
	return (m + 1) << uint(e)
}

func latencyEpoch(now time.Time) int64 { return now.UnixNano() / int64(latencyWindow) }

// observe records one latency sample at now. Negative samples are ignored.
func (l *latencyEstimator) observe(now time.Time, d time.Duration) {
	if d < 0 {
		return
	}
	e := latencyEpoch(now)
	w := &l.windows[uint64(e)%2]
	if old := w.epoch.Load(); old < e && w.epoch.CompareAndSwap(old, e) {
		for i := range w.counts {
			w.counts[i].Store(0)
		}
		w.total.Store(0)
	}
	if w.epoch.Load() != e {
		return // a sample from the past, older than both windows
	}
	w.counts[latencyBucket(uint64(d/time.Microsecond))].Add(1)
	w.total.Add(1)
}

// quantile returns the q-quantile (0 < q ≤ 1) of the samples of the current
// and previous window at now, as the upper bound of the bucket holding it
// (an overestimate by at most one bucket, the safe side for a retry
// threshold), and the number of samples it is based on.
func (l *latencyEstimator) quantile(now time.Time, q float64) (time.Duration, int) {
	e := latencyEpoch(now)
	var live [2]*latencyWindowCounts
	var n uint64
	for i := range l.windows {
		w := &l.windows[i]
		if we := w.epoch.Load(); we == e || we == e-1 {
			live[i] = w
			n += w.total.Load()
		}
	}
	if n == 0 {
		return 0, 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for b := range latencyBuckets {
		for _, w := range live {
			if w != nil {
				seen += w.counts[b].Load()
			}
		}
		if seen >= rank {
			return time.Duration(latencyBucketUpper(b)) * time.Microsecond, int(n)
		}
	}
	// Totals raced ahead of the bucket counts: report the largest bucket.
	return time.Duration(latencyBucketUpper(latencyBuckets-1)) * time.Microsecond, int(n)
}
