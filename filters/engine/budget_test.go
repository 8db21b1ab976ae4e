package engine

import (
	"testing"
	"time"
)

// requests counts n requests at now.
func requests(b *budget, now time.Time, n int) {
	for range n {
		b.countRequest(now)
	}
}

// retries tries n retries at now without counting them as requests, so the
// admitted count is exactly the budget: ⌈ratio × requests + floor × 10 s⌉.
func retries(b *budget, now time.Time, n int, ratio float64, floor int) int {
	admitted := 0
	for range n {
		if b.admitRetry(now, ratio, floor) {
			admitted++
		}
	}
	return admitted
}

func TestBudget_Admission(t *testing.T) {
	tests := []struct {
		name     string
		requests int
		ratio    float64
		floor    int
		want     int
	}{
		{"floor only", 0, 0.1, 2, 20},
		{"ratio only", 1000, 0.1, 0, 100},
		{"ratio plus floor", 1000, 0.1, 5, 150},
		{"fractional budget rounds up", 15, 0.1, 0, 2},
		{"zero budget", 100, 0, 0, 0},
		{"everything may retry", 10, 1, 0, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b budget
			requests(&b, t0, tt.requests)
			if got := retries(&b, t0, 1000, tt.ratio, tt.floor); got != tt.want {
				t.Errorf("admitted %d retries, want %d", got, tt.want)
			}
		})
	}
}

func TestBudget_WindowSlides(t *testing.T) {
	var b budget
	requests(&b, t0, 100)
	if got := retries(&b, t0, 20, 0.1, 0); got != 10 {
		t.Fatalf("admitted %d, want 10", got)
	}
	// 9.5 s later the first second is still inside the 10 s window.
	now := t0.Add(9500 * time.Millisecond)
	if got := retries(&b, now, 1, 0.1, 0); got != 0 {
		t.Errorf("admitted %d retries inside the window, want 0", got)
	}
	if req, ret := b.window(now); req != 100 || ret != 10 {
		t.Errorf("window = %d requests, %d retries; want 100, 10", req, ret)
	}
	// 10 s later the first second has left the window.
	now = t0.Add(10 * time.Second)
	if req, ret := b.window(now); req != 0 || ret != 0 {
		t.Errorf("window after slide = %d requests, %d retries; want 0, 0", req, ret)
	}
	requests(&b, now, 100)
	if got := retries(&b, now, 20, 0.1, 0); got != 10 {
		t.Errorf("admitted %d after the window slid, want 10", got)
	}
}

func TestBudget_SpreadOverSeconds(t *testing.T) {
	var b budget
	for s := range 10 {
		requests(&b, t0.Add(time.Duration(s)*time.Second), 10)
	}
	// All 100 requests are in the window at t0+9.9s.
	if got := retries(&b, t0.Add(9900*time.Millisecond), 20, 0.1, 0); got != 10 {
		t.Errorf("admitted %d, want 10", got)
	}
}

func TestBudget_BucketRecycledAfterWrap(t *testing.T) {
	var b budget
	requests(&b, t0, 50)
	// Same slot index 10 s later: the bucket must be reset, not added to.
	later := t0.Add(budgetWindow)
	b.countRequest(later)
	if req, _ := b.window(later); req != 1 {
		t.Errorf("window after wrap = %d requests, want 1", req)
	}
}
