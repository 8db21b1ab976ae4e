package engine

import (
	"math"
	"testing"
	"time"
)

func TestParseGRPCTimeout_Success(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"1H", time.Hour},
		{"2M", 2 * time.Minute},
		{"3S", 3 * time.Second},
		{"250m", 250 * time.Millisecond},
		{"7u", 7 * time.Microsecond},
		{"9n", 9 * time.Nanosecond},
		{"0m", 0},
		{"00000010S", 10 * time.Second},
		{"99999999n", 99999999 * time.Nanosecond},
		{"99999999S", 99999999 * time.Second},
		{"99999999H", time.Duration(math.MaxInt64)}, // saturates
	}
	for _, tt := range tests {
		got, ok := ParseGRPCTimeout(tt.in)
		if !ok || got != tt.want {
			t.Errorf("ParseGRPCTimeout(%q) = %v, %v; want %v, true", tt.in, got, ok, tt.want)
		}
	}
}

func TestParseGRPCTimeout_Errors(t *testing.T) {
	for _, in := range []string{"", "m", "1", "10", "1x", "1h", "-1S", "+1S", " 1S", "1S ", "1.5S", "123456789S", "1mS", "S1", "١S"} {
		if got, ok := ParseGRPCTimeout(in); ok {
			t.Errorf("ParseGRPCTimeout(%q) = %v, true; want ok=false", in, got)
		}
	}
}

func TestParseUnixMillis_Success(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"0", time.UnixMilli(0)},
		{"1772366400000", time.UnixMilli(1772366400000)},
		{"0001772366400", time.UnixMilli(1772366400)},
		{"9999999999999", time.UnixMilli(9999999999999)},
	}
	for _, tt := range tests {
		got, ok := ParseUnixMillis(tt.in)
		if !ok || !got.Equal(tt.want) {
			t.Errorf("ParseUnixMillis(%q) = %v, %v; want %v, true", tt.in, got, ok, tt.want)
		}
	}
}

func TestParseUnixMillis_Errors(t *testing.T) {
	for _, in := range []string{"", "-1", "+1", "1.5", "17723664000001", "1e9", "0x10", " 1", "abc"} {
		if got, ok := ParseUnixMillis(in); ok {
			t.Errorf("ParseUnixMillis(%q) = %v, true; want ok=false", in, got)
		}
	}
}

func TestFormatUnixMillis_RoundTrip(t *testing.T) {
	for _, tm := range []time.Time{t0, t0.Add(1234567 * time.Microsecond), time.UnixMilli(0), time.UnixMilli(1)} {
		s := FormatUnixMillis(tm)
		if got := string(AppendUnixMillis(nil, tm)); got != s {
			t.Errorf("AppendUnixMillis = %q, FormatUnixMillis = %q", got, s)
		}
		got, ok := ParseUnixMillis(s)
		if want := tm.Truncate(time.Millisecond); !ok || !got.Equal(want) {
			t.Errorf("ParseUnixMillis(FormatUnixMillis(%v)) = %v, %v; want %v, true", tm, got, ok, want)
		}
	}
}

func TestParseMillis_Success(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"15000", 15 * time.Second},
		{"999999999999", 999999999999 * time.Millisecond},
	}
	for _, tt := range tests {
		got, ok := ParseMillis(tt.in)
		if !ok || got != tt.want {
			t.Errorf("ParseMillis(%q) = %v, %v; want %v, true", tt.in, got, ok, tt.want)
		}
	}
}

func TestParseMillis_Errors(t *testing.T) {
	for _, in := range []string{"", "-5", "5ms", "1.0", "9999999999999", "∞"} {
		if got, ok := ParseMillis(in); ok {
			t.Errorf("ParseMillis(%q) = %v, true; want ok=false", in, got)
		}
	}
}

func TestParseAttempt_Success(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"0", 0},
		{"1", 1},
		{"3", 3},
		{"100", MaxAttempt},
		{"101", MaxAttempt},
		{"999999999", MaxAttempt},
	}
	for _, tt := range tests {
		got, ok := ParseAttempt(tt.in)
		if !ok || got != tt.want {
			t.Errorf("ParseAttempt(%q) = %v, %v; want %v, true", tt.in, got, ok, tt.want)
		}
	}
}

func TestParseAttempt_Errors(t *testing.T) {
	for _, in := range []string{"", "-1", "1.0", "1234567890", "two", "2 "} {
		if got, ok := ParseAttempt(in); ok {
			t.Errorf("ParseAttempt(%q) = %v, true; want ok=false", in, got)
		}
	}
}

func TestParsers_DoNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		ParseGRPCTimeout("250m")
		ParseUnixMillis("1772366400000")
		ParseMillis("15000")
		ParseAttempt("2")
	})
	if allocs != 0 {
		t.Errorf("parsers allocate %v times per run, want 0", allocs)
	}
}
