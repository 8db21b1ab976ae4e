package micro

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hopguard/hopguard/bench/result"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/hopguard/hopguard/filters/engine
cpu: AMD EPYC
BenchmarkDecide_Allow-2   	 1000000	       300.0 ns/op	      48 B/op	       2 allocs/op
BenchmarkDecide_Allow-2   	 1000000	       100.0 ns/op	      48 B/op	       2 allocs/op
BenchmarkDecide_Allow-2   	 1000000	       200.0 ns/op	      48 B/op	       2 allocs/op
BenchmarkDecide_Reject/deadline-exhausted-2         	 1000000	        50.5 ns/op	       0 B/op	       0 allocs/op
PASS
ok  	github.com/hopguard/hopguard/filters/engine	3.1s
pkg: github.com/hopguard/hopguard/filters/idempotency
BenchmarkValidKey-2	10000000	        20.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkValidKey-2	10000000	        30.0 ns/op	       0 B/op	       0 allocs/op
`

func TestParse_Success(t *testing.T) {
	got, err := Parse(sample)
	if err != nil {
		t.Fatal(err)
	}
	const eng, idem = "github.com/hopguard/hopguard/filters/engine", "github.com/hopguard/hopguard/filters/idempotency"
	want := []result.MicroBench{
		{Package: eng, Name: "BenchmarkDecide_Allow", Runs: 3, NsPerOp: 200, BytesPerOp: 48, AllocsPerOp: 2, NsMin: 100, NsMax: 300},
		{Package: eng, Name: "BenchmarkDecide_Reject/deadline-exhausted", Runs: 1, NsPerOp: 50.5, NsMin: 50.5, NsMax: 50.5},
		{Package: idem, Name: "BenchmarkValidKey", Runs: 2, NsPerOp: 25, NsMin: 20, NsMax: 30},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Parse (-got +want):\n%s", diff)
	}
}

func TestParse_Errors(t *testing.T) {
	tests := []struct {
		name, out string
		want      error
	}{
		{"empty", "", ErrNoBenchmarks},
		{"no result lines", "PASS\nok  \tx\t0.1s\n", ErrNoBenchmarks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.out); !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{4, 1, 2}, 2}, {[]float64{4, 1, 2, 3}, 2.5}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %g, want %g", tt.in, got, tt.want)
		}
	}
}
