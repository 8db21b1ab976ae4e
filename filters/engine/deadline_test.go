package engine

import (
	"testing"
	"time"

	"github.com/hopguard/hopguard/policy"
)

func TestEffectiveDeadline_Success(t *testing.T) {
	p := policy.Deadline{Default: 800 * time.Millisecond, Max: 2 * time.Second, MinRemaining: 20 * time.Millisecond}
	const skew = 10 * time.Millisecond
	now := t0
	tests := []struct {
		name  string
		facts Facts
		want  time.Time
	}{
		{"none present: default", Facts{}, now.Add(800 * time.Millisecond)},
		{"grpc-timeout", Facts{GRPCTimeout: 300 * time.Millisecond}, now.Add(300 * time.Millisecond)},
		{"envoy expected timeout", Facts{EnvoyExpectedTimeout: 400 * time.Millisecond}, now.Add(400 * time.Millisecond)},
		{"stream deadline", Facts{StreamDeadline: now.Add(500 * time.Millisecond)}, now.Add(500 * time.Millisecond)},
		{"hopguard deadline trusted up to skew", Facts{HopguardDeadline: now.Add(600 * time.Millisecond)}, now.Add(610 * time.Millisecond)},
		{"earliest wins: grpc-timeout", Facts{
			GRPCTimeout: 100 * time.Millisecond, EnvoyExpectedTimeout: 400 * time.Millisecond,
			StreamDeadline: now.Add(500 * time.Millisecond), HopguardDeadline: now.Add(600 * time.Millisecond),
		}, now.Add(100 * time.Millisecond)},
		{"earliest wins: hopguard with skew", Facts{
			GRPCTimeout: 300 * time.Millisecond, HopguardDeadline: now.Add(250 * time.Millisecond),
		}, now.Add(260 * time.Millisecond)},
		{"earliest wins: stream", Facts{
			GRPCTimeout: 300 * time.Millisecond, StreamDeadline: now.Add(50 * time.Millisecond),
		}, now.Add(50 * time.Millisecond)},
		{"clamped to max", Facts{GRPCTimeout: time.Hour}, now.Add(2 * time.Second)},
		{"past hopguard deadline stays past", Facts{HopguardDeadline: now.Add(-time.Second)}, now.Add(-990 * time.Millisecond)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := effectiveDeadline(now, &p, skew, &tt.facts); !got.Equal(tt.want) {
				t.Errorf("effectiveDeadline = %v, want %v (diff %v)", got, tt.want, got.Sub(tt.want))
			}
		})
	}
}

func TestDeadlineExhausted(t *testing.T) {
	p := policy.Deadline{MinRemaining: 20 * time.Millisecond}
	tests := []struct {
		remaining time.Duration
		want      bool
	}{
		{-time.Second, true},
		{0, true},
		{20 * time.Millisecond, true},
		{20*time.Millisecond + 1, false},
		{time.Second, false},
	}
	for _, tt := range tests {
		if got := deadlineExhausted(tt.remaining, &p); got != tt.want {
			t.Errorf("deadlineExhausted(%v) = %v, want %v", tt.remaining, got, tt.want)
		}
	}
}
