package engine

import (
	"sync/atomic"
	"time"
)

// Retry budget window: budgetBuckets buckets of budgetBucket each.
const (
	budgetBuckets = 10
	budgetBucket  = time.Second
	budgetWindow  = budgetBuckets * budgetBucket
)

// budget is a route's retry budget over a sliding window of budgetBuckets
// one-second buckets: first attempts are counted as requests, and a retry is
// admitted while retries < ratio × requests + minPerSecond × window seconds.
// Retries do not count as requests, so a route whose calls all fail cannot
// raise its own allowance: over a window, admitted retries stay at most
// ratio × original requests plus the floor.
//
// It takes no locks. A bucket is recycled by the first caller that sees it
// belongs to an old second (CAS on its epoch, then zeroing), so counts racing
// with a recycle may be lost or land in the new second, and concurrent
// retries may overshoot the budget by the number of racing callers: the
// budget is a rate limit of retries, not an exact quota.
type budget struct {
	buckets [budgetBuckets]budgetSlot
}

type budgetSlot struct {
	// epoch is the second (unix, in budgetBucket units) the counts belong to.
	epoch    atomic.Int64
	requests atomic.Uint64
	retries  atomic.Uint64
}

func budgetEpoch(now time.Time) int64 { return now.UnixNano() / int64(budgetBucket) }

// slot returns the bucket of epoch e, recycling it when it holds an older second.
func (b *budget) slot(e int64) *budgetSlot {
	s := &b.buckets[uint64(e)%budgetBuckets]
	old := s.epoch.Load()
	if old < e && s.epoch.CompareAndSwap(old, e) {
		s.requests.Store(0)
		s.retries.Store(0)
	}
	return s
}

// countRequest counts one original request (a first attempt) at now.
func (b *budget) countRequest(now time.Time) {
	e := budgetEpoch(now)
	s := b.slot(e)
	if s.epoch.Load() == e {
		s.requests.Add(1)
	}
}

// window sums the requests and admitted retries of the window ending at now.
func (b *budget) window(now time.Time) (requests, retries uint64) {
	e := budgetEpoch(now)
	for i := range b.buckets {
		s := &b.buckets[i]
		if se := s.epoch.Load(); se <= e && se > e-budgetBuckets {
			requests += s.requests.Load()
			retries += s.retries.Load()
		}
	}
	return requests, retries
}

// admitRetry reports whether a retry at now fits the budget and, if so,
// counts it.
func (b *budget) admitRetry(now time.Time, ratio float64, minPerSecond int) bool {
	requests, retries := b.window(now)
	allowed := ratio*float64(requests) + float64(minPerSecond)*budgetWindow.Seconds()
	if float64(retries) >= allowed {
		return false
	}
	e := budgetEpoch(now)
	s := b.slot(e)
	if s.epoch.Load() == e {
		s.retries.Add(1)
	}
	return true
}
