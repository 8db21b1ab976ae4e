package engine

import (
	"math"
	"strconv"
	"time"
)

// Header names the engine's facts come from and its mutations go to (lower case).
const (
	HeaderHopguardDeadline     = "x-hopguard-deadline"
	HeaderHopguardAttempt      = "x-hopguard-attempt"
	HeaderHopguardReason       = "x-hopguard-reason"
	HeaderHopguardRoute        = "x-hopguard-route"
	HeaderHopguardPolicy       = "x-hopguard-policy"
	HeaderHopguardSide         = "x-hopguard-side"
	HeaderGRPCTimeout          = "grpc-timeout"
	HeaderGRPCPreviousAttempts = "grpc-previous-rpc-attempts"
	HeaderEnvoyAttemptCount    = "x-envoy-attempt-count"
	HeaderEnvoyExpectedTimeout = "x-envoy-expected-rq-timeout-ms"
	HeaderEnvoyUpstreamTimeout = "x-envoy-upstream-rq-timeout-ms"
	HeaderEnvoyPerTryTimeout   = "x-envoy-upstream-rq-per-try-timeout-ms"
	HeaderEnvoyMaxRetries      = "x-envoy-max-retries"
	HeaderEnvoyRetryOn         = "x-envoy-retry-on"
	HeaderEnvoyRetryGRPCOn     = "x-envoy-retry-grpc-on"
)

// MaxAttempt caps what ParseAttempt returns: no sane retry policy makes more
// attempts, and a capped value still reads as "a retry".
const MaxAttempt = 100

// Digit limits of millisecond values: 13 digits of unix ms reach year 2286;
// 12 digits of a relative duration are ≈ 31 years and fit time.Duration.
const (
	maxMillisDigits         = 13
	maxRelativeMillisDigits = 12
)

// ParseGRPCTimeout parses a grpc-timeout value: 1–8 ASCII digits followed by
// one unit, H (hours), M (minutes), S (seconds), m (milliseconds),
// u (microseconds) or n (nanoseconds), as the gRPC HTTP/2 spec defines it.
// Values beyond time.Duration's range saturate. It never allocates.
func ParseGRPCTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 9 {
		return 0, false
	}
	n, ok := parseDigits(s[:len(s)-1], 8)
	if !ok {
		return 0, false
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	if n > uint64(math.MaxInt64/int64(unit)) {
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(n) * unit, true
}

// ParseUnixMillis parses x-hopguard-deadline: an absolute time in unix epoch
// milliseconds, 1–13 ASCII digits (no sign). It never allocates.
func ParseUnixMillis(s string) (time.Time, bool) {
	n, ok := parseDigits(s, maxMillisDigits)
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(n)), true
}

// FormatUnixMillis formats t as x-hopguard-deadline: unix epoch milliseconds
// (truncated). ParseUnixMillis(FormatUnixMillis(t)) is t truncated to the ms.
func FormatUnixMillis(t time.Time) string {
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// AppendUnixMillis appends FormatUnixMillis(t) to dst, for adapters that
// reuse buffers.
func AppendUnixMillis(dst []byte, t time.Time) []byte {
	return strconv.AppendInt(dst, t.UnixMilli(), 10)
}

// ParseMillis parses a relative millisecond count such as
// x-envoy-expected-rq-timeout-ms: 1–12 ASCII digits. It never allocates.
func ParseMillis(s string) (time.Duration, bool) {
	n, ok := parseDigits(s, maxRelativeMillisDigits)
	if !ok {
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

// ParseAttempt parses an attempt header (x-envoy-attempt-count,
// x-hopguard-attempt, grpc-previous-rpc-attempts): a non-negative decimal
// integer. Values above MaxAttempt are capped to MaxAttempt; anything else
// than 1–9 ASCII digits is malformed. It never allocates.
func ParseAttempt(s string) (int, bool) {
	n, ok := parseDigits(s, 9)
	if !ok {
		return 0, false
	}
	return int(min(n, MaxAttempt)), true
}

// parseDigits parses 1–maxDigits ASCII digits (maxDigits ≤ 19, so the value
// fits in a uint64).
func parseDigits(s string, maxDigits int) (uint64, bool) {
	if len(s) == 0 || len(s) > maxDigits {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
