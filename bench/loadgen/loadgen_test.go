package loadgen

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRun_CountsAddUpAndSequencesAreUnique(t *testing.T) {
	var seen [200]atomic.Int32
	op := func(_ context.Context, seq int64) (string, bool, error) {
		seen[seq-1000].Add(1)
		switch {
		case seq%10 == 0:
			return "", false, errors.New("test: failed")
		case seq%10 == 1:
			return "odd", false, nil
		}
		return "ok", true, nil
	}
	st, err := Run(context.Background(), Step{Rate: 1000, Duration: 200 * time.Millisecond, MaxInFlight: 100, FirstSeq: 1000}, op)
	if err != nil {
		t.Fatal(err)
	}
	if st.Scheduled != 200 {
		t.Fatalf("scheduled %d, want 200", st.Scheduled)
	}
	if st.Completed+st.Errors+st.Dropped != st.Scheduled {
		t.Errorf("completed %d + errors %d + dropped %d != %d", st.Completed, st.Errors, st.Dropped, st.Scheduled)
	}
	if st.Errors != 20 || st.Unexpected != 20 || st.Outcomes["ok"] != 160 || st.Outcomes["odd"] != 20 {
		t.Errorf("errors %d, unexpected %d, outcomes %v; want 20, 20, ok 160 odd 20", st.Errors, st.Unexpected, st.Outcomes)
	}
	if st.Hist.TotalCount() != st.Completed || st.Service.TotalCount() != st.Completed || st.Lag.TotalCount() != st.Completed {
		t.Errorf("%d/%d/%d latencies for %d completed", st.Hist.TotalCount(), st.Service.TotalCount(), st.Lag.TotalCount(), st.Completed)
	}
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Fatalf("sequence %d used %d times", 1000+i, n)
		}
	}
}

// A server that stalls every request for longer than the interval must
// show the stall in the latencies of the requests scheduled behind it: the
// generator measures from the intended send time.
func TestRun_LatencyCountsFromIntendedTime(t *testing.T) {
	const stall = 20 * time.Millisecond
	op := func(ctx context.Context, _ int64) (string, bool, error) {
		select {
		case <-time.After(stall):
		case <-ctx.Done():
		}
		return "ok", true, nil
	}
	st, err := Run(context.Background(), Step{Rate: 200, Duration: 100 * time.Millisecond, MaxInFlight: 100}, op)
	if err != nil {
		t.Fatal(err)
	}
	s := Summary(st.Hist)
	if s.P50 < float64(stall.Microseconds()) {
		t.Errorf("p50 %.0f µs below the %v every request takes", s.P50, stall)
	}
	// The last request is due at 95 ms (every 5 ms from 0) and takes the stall.
	if st.Elapsed < 95*time.Millisecond+stall {
		t.Errorf("elapsed %v, want at least the last send time plus one stall", st.Elapsed)
	}
}

func TestRun_DropsWhenInFlightCapIsReached(t *testing.T) {
	release := make(chan struct{})
	op := func(ctx context.Context, _ int64) (string, bool, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "ok", true, nil
	}
	done := make(chan *Stats, 1)
	go func() {
		st, _ := Run(context.Background(), Step{Rate: 1000, Duration: 50 * time.Millisecond, MaxInFlight: 5}, op)
		done <- st
	}()
	time.Sleep(100 * time.Millisecond)
	close(release)
	st := <-done
	if st.Completed != 5 || st.Dropped != st.Scheduled-5 {
		t.Errorf("completed %d, dropped %d of %d; want 5 completed, the rest dropped", st.Completed, st.Dropped, st.Scheduled)
	}
}

func TestRun_Errors(t *testing.T) {
	op := func(context.Context, int64) (string, bool, error) { return "", true, nil }
	for _, s := range []Step{{Duration: time.Second, MaxInFlight: 1}, {Rate: 1, MaxInFlight: 1}, {Rate: 1, Duration: time.Second}} {
		if _, err := Run(context.Background(), s, op); !errors.Is(err, ErrBadStep) {
			t.Errorf("Run(%+v) error = %v, want ErrBadStep", s, err)
		}
	}
}

func TestMerge_AddsUp(t *testing.T) {
	a := &Stats{Scheduled: 3, Completed: 2, Errors: 1, Elapsed: time.Second, Hist: NewHistogram(), Service: NewHistogram(), Lag: NewHistogram(), Outcomes: map[string]int64{"ok": 2}}
	Record(a.Hist, time.Millisecond)
	Record(a.Hist, 2*time.Millisecond)
	var m Stats
	m.Merge(a)
	m.Merge(a)
	if m.Scheduled != 6 || m.Completed != 4 || m.Errors != 2 || m.Elapsed != 2*time.Second || m.Hist.TotalCount() != 4 || m.Outcomes["ok"] != 4 {
		t.Errorf("merged %+v", m)
	}
}
