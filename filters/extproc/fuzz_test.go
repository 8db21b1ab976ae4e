package extproc

import (
	"context"
	"errors"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hopguard/hopguard/filters/idempotency"
)

// fuzzKeys are the header names the fuzzer picks from: everything the
// adapter reads, plus noise.
var fuzzKeys = []string{
	":method", ":path", ":authority", ":status", "content-type", "grpc-status",
	"grpc-timeout", "x-hopguard-deadline", "x-envoy-expected-rq-timeout-ms",
	"x-envoy-attempt-count", "grpc-previous-rpc-attempts", "x-hopguard-attempt",
	"idempotency-key", "x-client-id", "X-Envoy-Retry-On", "other",
}

// fuzzValues are likely-meaningful values; a fuzz byte may also take raw bytes.
var fuzzValues = []string{
	"POST", "GET", pathCharge, pathGet, pathOrdersH + "/x", "application/grpc", "application/json",
	"0", "1", "2", "14", "503", "200", "10m", "1S", "99999999H", "1800000000500", "k", "", "-1",
}

// byteReader hands out fuzz bytes, zeros once they run out.
type byteReader struct {
	b []byte
	i int
}

func (r *byteReader) byte() byte {
	if r.i >= len(r.b) {
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

func (r *byteReader) done() bool { return r.i >= len(r.b) }

// headers builds up to 7 headers from the fuzz bytes, in value or raw_value.
func (r *byteReader) headers() *corev3.HeaderMap {
	n := int(r.byte() % 8)
	hm := &corev3.HeaderMap{}
	for range n {
		k := fuzzKeys[int(r.byte())%len(fuzzKeys)]
		sel := r.byte()
		var v string
		if sel&0x80 != 0 {
			l := int(sel & 0x0f)
			buf := make([]byte, 0, l)
			for range l {
				buf = append(buf, r.byte())
			}
			v = string(buf)
		} else {
			v = fuzzValues[int(sel)%len(fuzzValues)]
		}
		h := &corev3.HeaderValue{Key: k}
		if sel&0x40 != 0 {
			h.RawValue = []byte(v)
		} else {
			h.Value = v
		}
		hm.Headers = append(hm.Headers, h)
	}
	return hm
}

// messages decodes a sequence of up to 16 ProcessingRequests.
func (r *byteReader) messages() []*extprocv3.ProcessingRequest {
	var msgs []*extprocv3.ProcessingRequest
	for len(msgs) < 16 && !r.done() {
		op := r.byte()
		m := &extprocv3.ProcessingRequest{ObservabilityMode: op&0x80 != 0 && op&0x40 != 0}
		switch op % 8 {
		case 0, 1:
			hh := &extprocv3.HttpHeaders{Headers: r.headers(), EndOfStream: op&0x10 != 0}
			if op&0x20 != 0 {
				hh.Attributes = attrs(fuzzValues[int(r.byte())%len(fuzzValues)], "h")
			}
			m.Request = &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: hh}
		case 2:
			m.Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
				Headers: r.headers(), EndOfStream: op&0x10 != 0}}
		case 3:
			m.Request = &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{Trailers: r.headers()}}
		case 4:
			m.Request = &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte{r.byte()}}}
		case 5:
			m.Request = &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{}}
		case 6:
			m.Request = &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}
		case 7:
			// No request at all (a flow-control-only message).
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// checkedStore is a memStore that counts refused transitions: a second
// Finish of one claim would show as one.
type checkedStore struct {
	*memStore
	illegal int
}

func (s *checkedStore) Complete(ctx context.Context, sc idempotency.Scope, token uint64, out idempotency.Outcome, now time.Time, ttl time.Duration) error {
	err := s.memStore.Complete(ctx, sc, token, out, now, ttl)
	if err != nil {
		s.illegal++
	}
	return err
}

func (s *checkedStore) Release(ctx context.Context, sc idempotency.Scope, token uint64, now time.Time) error {
	err := s.memStore.Release(ctx, sc, token, now)
	if err != nil {
		s.illegal++
	}
	return err
}

func FuzzProcessStream(f *testing.F) {
	f.Add([]byte{0, 4, 0, 2, 12, 3, 11, 0, 2, 2, 3, 10, 3, 1, 5, 7})
	f.Add([]byte{2, 1, 3, 6, 3, 1, 5, 0, 2, 12, 0})
	f.Add([]byte{1, 3, 1, 3, 12, 10, 9, 2, 2, 3, 12, 5, 14, 2, 2, 3, 3, 1, 5, 8})
	f.Add([]byte{0xd0, 7, 1, 2, 0x85, 1, 2, 3, 4, 5})
	f.Add([]byte{})

	clock := newFakeClock(epoch)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &byteReader{b: data}
		ctrl := r.byte()
		store := &checkedStore{memStore: newMemStore()}
		e := newTestEngine(t, clock, store, testBundle(nil))
		srv := New(Options{Engine: e, Clock: clock})

		ctx := context.Background()
		if ctrl&1 != 0 {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("x-hopguard-route", []string{routeCharge, routeGet, "nope"}[int(ctrl>>4)%3],
				"x-hopguard-side", []string{"inbound", "outbound"}[int(ctrl>>2)&1]))
		}
		if ctrl&2 != 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, epoch.Add(time.Duration(ctrl)*time.Millisecond))
			defer cancel()
		}
		ms := &memStream{ctx: ctx, msgs: r.messages(), keep: true}
		if ctrl&8 != 0 {
			ms.end = status.Error(codes.Canceled, "fuzz: cancelled")
		}

		err := srv.Process(ms)
		if err != nil && !errors.Is(err, ms.end) {
			t.Fatalf("Process: unexpected error %v", err)
		}
		for i, resp := range ms.sent {
			if resp == nil || resp.GetResponse() == nil {
				t.Fatalf("answer %d is empty", i)
			}
		}
		if ms.nSent > len(ms.msgs) {
			t.Fatalf("%d answers to %d messages", ms.nSent, len(ms.msgs))
		}
		// Every claim ended: completed or released, each exactly once.
		for sc, rec := range store.Records() {
			if rec.State == idempotency.InFlight {
				t.Errorf("claim of %v still in flight after the stream ended", sc)
			}
		}
		if store.illegal != 0 {
			t.Errorf("%d refused transitions: a claim was finished twice", store.illegal)
		}
	})
}
