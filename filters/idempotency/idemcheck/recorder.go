package idemcheck

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/hopguard/hopguard/filters/idempotency"
)

// Recorder calls a store and records each call as a porcupine operation,
// timestamped on the monotonic clock before the call and after its return.
// It is safe for concurrent use; Scope maps the recorded key to the
// store's scope.
type Recorder struct {
	store idempotency.Store
	// now is the fixed clock every call is given.
	now time.Time
	// ttl is the in-flight limit and completed TTL of every call: longer
	// than any run, so nothing expires.
	ttl   time.Duration
	start time.Time

	mu  sync.Mutex
	ops []porcupine.Operation
}

// NewRecorder returns a recorder of calls to store, all at now with ttl
// as in-flight limit and completed TTL.
func NewRecorder(store idempotency.Store, now time.Time, ttl time.Duration) *Recorder {
	return &Recorder{store: store, now: now, ttl: ttl, start: time.Now()}
}

// Scope is the scope of key in every recorded call.
func Scope(key string) idempotency.Scope {
	return idempotency.Scope{Route: "idemcheck/route", Side: "inbound", Principal: "idemcheck", Key: key}
}

// Claim calls Store.Claim for key and records it; it returns the output.
func (r *Recorder) Claim(ctx context.Context, client int, key string, fp uint64) Output {
	call := r.tick()
	res, err := r.store.Claim(ctx, Scope(key), fp, r.now, r.ttl)
	out := Output{Result: result(err), Claimed: res.Claimed, Token: res.Token}
	if !res.Claimed {
		out.State, out.Fingerprint, out.HTTPStatus = res.Existing.State, res.Existing.Fingerprint, res.Existing.HTTPStatus
	}
	r.add(client, Input{Kind: Claim, Key: key, Fingerprint: fp}, call, out)
	return out
}

// Complete calls Store.Complete for key and records it.
func (r *Recorder) Complete(ctx context.Context, client int, key string, token uint64, httpStatus int) Output {
	call := r.tick()
	err := r.store.Complete(ctx, Scope(key), token, idempotency.Outcome{HTTPStatus: httpStatus, GRPCStatus: -1}, r.now, r.ttl)
	out := Output{Result: result(err)}
	r.add(client, Input{Kind: Complete, Key: key, Token: token, HTTPStatus: httpStatus}, call, out)
	return out
}

// Release calls Store.Release for key and records it.
func (r *Recorder) Release(ctx context.Context, client int, key string, token uint64) Output {
	call := r.tick()
	err := r.store.Release(ctx, Scope(key), token, r.now)
	out := Output{Result: result(err)}
	r.add(client, Input{Kind: Release, Key: key, Token: token}, call, out)
	return out
}

// Get calls Store.Get for key and records it. A failed Get changes
// nothing and is left out of the history.
func (r *Recorder) Get(ctx context.Context, client int, key string) Output {
	call := r.tick()
	rec, ok, err := r.store.Get(ctx, Scope(key), r.now)
	out := Output{Result: result(err), Found: ok, State: rec.State, Fingerprint: rec.Fingerprint, HTTPStatus: rec.HTTPStatus}
	if err == nil {
		r.add(client, Input{Kind: Get, Key: key}, call, out)
	}
	return out
}

// History returns the recorded operations; calls of unknown outcome
// return after every other operation (they may take effect any time
// after their call). The caller owns the slice.
func (r *Recorder) History() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]porcupine.Operation, len(r.ops))
	copy(out, r.ops)
	for i := range out {
		if out[i].Output.(Output).Result == Unknown {
			out[i].Return = math.MaxInt64
		}
	}
	return out
}

// Len returns the number of calls recorded so far (failed Gets excluded).
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}

// Counts returns how many recorded calls ended with each Result.
func (r *Recorder) Counts() map[Result]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := map[Result]int{}
	for _, op := range r.ops {
		c[op.Output.(Output).Result]++
	}
	return c
}

// Check checks history against Model(opts) within timeout. When the
// history is not linearizable (or the check timed out) it writes the
// porcupine visualisation to dir and returns an error naming the file.
func Check(history []porcupine.Operation, opts Options, timeout time.Duration, dir string) error {
	m := Model(opts)
	res, info := porcupine.CheckOperationsVerbose(m, history, timeout)
	if res == porcupine.Ok {
		return nil
	}
	path := filepath.Join(dir, "history.html")
	verr := porcupine.VisualizePath(m, info, path)
	return errors.Join(fmt.Errorf("idemcheck: history of %d operations: %s (visualisation: %s)", len(history), res, path), verr)
}

func (r *Recorder) tick() int64 { return time.Since(r.start).Nanoseconds() }

func (r *Recorder) add(client int, in Input, call int64, out Output) {
	ret := r.tick()
	r.mu.Lock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	r.mu.Unlock()
}

// result classifies a call's error.
func result(err error) Result {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, idempotency.ErrIllegalTransition):
		return Illegal
	default:
		return Unknown
	}
}
