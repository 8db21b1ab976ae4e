package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestLatencyBucket_Monotonic(t *testing.T) {
	prev := -1
	for us := uint64(0); us < 1<<20; us += 1 + us/64 {
		b := latencyBucket(us)
		if b < prev {
			t.Fatalf("bucket(%d) = %d < bucket of a smaller value %d", us, b, prev)
		}
		if up := latencyBucketUpper(b); us >= up {
			t.Fatalf("value %d µs not below its bucket's upper bound %d", us, up)
		}
		if b > 0 && us < latencyBucketUpper(b-1) {
			t.Fatalf("value %d µs below the previous bucket's upper bound %d", us, latencyBucketUpper(b-1))
		}
		prev = b
	}
	if got := latencyBucket(1 << 62); got != latencyBuckets-1 {
		t.Errorf("bucket(2^62) = %d, want last %d", got, latencyBuckets-1)
	}
}

// trueQuantile is the nearest-rank q-quantile of samples.
func trueQuantile(samples []time.Duration, q float64) time.Duration {
	s := slices.Clone(samples)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(i, 0)]
}

func TestLatency_P90WithinOneBucket(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform 10-50ms": func() time.Duration {
			return 10*time.Millisecond + time.Duration(rng.Int64N(int64(40*time.Millisecond)))
		},
		"exponential 20ms": func() time.Duration {
			return time.Duration(rng.ExpFloat64() * float64(20*time.Millisecond))
		},
		"bimodal 5ms/200ms": func() time.Duration {
			if rng.Float64() < 0.85 {
				return 5*time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond)))
			}
			return 200*time.Millisecond + time.Duration(rng.Int64N(int64(10*time.Millisecond)))
		},
		"constant 3ms": func() time.Duration { return 3 * time.Millisecond },
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var l latencyEstimator
			samples := make([]time.Duration, 5000)
			for i := range samples {
				samples[i] = gen()
				l.observe(t0, samples[i])
			}
			got, n := l.quantile(t0, 0.9)
			if n != len(samples) {
				t.Errorf("samples = %d, want %d", n, len(samples))
			}
			want := trueQuantile(samples, 0.9)
			wantBucket := latencyBucket(uint64(want / time.Microsecond))
			gotBucket := latencyBucket(uint64(got/time.Microsecond) - 1) // got is an upper bound
			if d := gotBucket - wantBucket; d < -1 || d > 1 {
				t.Errorf("p90 = %v (bucket %d), true p90 = %v (bucket %d)", got, gotBucket, want, wantBucket)
			}
			if got < want {
				t.Errorf("p90 = %v below the true value %v: must overestimate", got, want)
			}
		})
	}
}

func TestLatency_FollowsChange(t *testing.T) {
	var l latencyEstimator
	now := t0
	for range 100 {
		l.observe(now, 10*time.Millisecond)
	}
	// Next window: slow samples join the fast ones.
	now = now.Add(latencyWindow)
	for range 100 {
		l.observe(now, 100*time.Millisecond)
	}
	if got, n := l.quantile(now, 0.9); n != 200 || got < 100*time.Millisecond || got > 115*time.Millisecond {
		t.Errorf("mixed windows: p90 = %v over %d samples, want ≈100ms over 200", got, n)
	}
	// Two windows later the fast samples are gone; one more later, all are.
	now = now.Add(latencyWindow)
	if got, n := l.quantile(now, 0.5); n != 100 || got < 100*time.Millisecond {
		t.Errorf("after rotation: p50 = %v over %d samples, want ≥100ms over 100", got, n)
	}
	now = now.Add(latencyWindow)
	if got, n := l.quantile(now, 0.9); n != 0 || got != 0 {
		t.Errorf("after expiry: p90 = %v over %d samples, want 0 over 0", got, n)
	}
}

func TestLatency_IgnoresNegativeAndStale(t *testing.T) {
	var l latencyEstimator
	l.observe(t0, -time.Millisecond)
	l.observe(t0.Add(2*latencyWindow), time.Millisecond)
	l.observe(t0, time.Millisecond) // older than both windows now
	if _, n := l.quantile(t0.Add(2*latencyWindow), 0.9); n != 1 {
		t.Errorf("samples = %d, want 1", n)
	}
}
