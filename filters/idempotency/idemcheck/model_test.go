package idemcheck

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/hopguard/hopguard/filters/idempotency"
)

// op builds a sequential operation at [at, at+1].
func op(at int64, in Input, out Output) porcupine.Operation {
	return porcupine.Operation{Input: in, Call: at * 10, Output: out, Return: at*10 + 1}
}

func TestModel_Success(t *testing.T) {
	ok := Output{Result: OK}
	tests := []struct {
		name    string
		opts    Options
		history []porcupine.Operation
	}{
		{"claim complete replay", Options{}, []porcupine.Operation{
			op(1, Input{Kind: Claim, Key: "a", Fingerprint: 1}, Output{Claimed: true, Token: 7}),
			op(2, Input{Kind: Complete, Key: "a", Token: 7, HTTPStatus: 200}, ok),
			op(3, Input{Kind: Claim, Key: "a", Fingerprint: 2}, Output{State: idempotency.Completed, Fingerprint: 1, HTTPStatus: 200}),
			op(4, Input{Kind: Release, Key: "a", Token: 7}, Output{Result: Illegal}),
			op(5, Input{Kind: Get, Key: "a"}, Output{Found: true, State: idempotency.Completed, Fingerprint: 1, HTTPStatus: 200}),
		}},
		{"release then reclaim", Options{}, []porcupine.Operation{
			op(1, Input{Kind: Claim, Key: "a", Fingerprint: 1}, Output{Claimed: true, Token: 7}),
			op(2, Input{Kind: Release, Key: "a", Token: 7}, ok),
			op(3, Input{Kind: Claim, Key: "a", Fingerprint: 1}, Output{Claimed: true, Token: 8}),
			op(4, Input{Kind: Complete, Key: "a", Token: 7}, Output{Result: Illegal}),
		}},
		{"unknown claim may have happened", Options{}, []porcupine.Operation{
			{Input: Input{Kind: Claim, Key: "a", Fingerprint: 1}, Call: 0, Output: Output{Result: Unknown}, Return: 1 << 62},
			op(2, Input{Kind: Claim, Key: "a", Fingerprint: 2}, Output{State: idempotency.InFlight, Fingerprint: 1}),
		}},
		{"unknown claim may not have happened", Options{}, []porcupine.Operation{
			{Input: Input{Kind: Claim, Key: "a", Fingerprint: 1}, Call: 0, Output: Output{Result: Unknown}, Return: 1 << 62},
			op(2, Input{Kind: Get, Key: "a"}, Output{}),
		}},
		{"loss allowed", Options{MayLose: true}, []porcupine.Operation{
			op(1, Input{Kind: Claim, Key: "a", Fingerprint: 1}, Output{Claimed: true, Token: 7}),
			op(2, Input{Kind: Claim, Key: "a", Fingerprint: 1}, Output{Claimed: true, Token: 8}),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := Check(tc.history, tc.opts, 5*time.Second, t.TempDir()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestModel_Errors(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		history []porcupine.Operation
	}{
		{"two live claims", Options{}, []porcupine.Operation{
			op(1, Input{Kind: Claim, Key: "a", Fingerprint: 1}, Output{Claimed: true, Token: 7}),
			op(2, Input{Kind: Claim, Key: "a", Fingerprint: 1}, Output{Claimed: true, Token: 8}),
		}},
		{"stale token completes", Options{MayLose: true}, []porcupine.Operation{
			op(1, Input{Kind: Claim, Key: "a", Fingerprint: 1}, Output{Claimed: true, Token: 7}),
			op(2, Input{Kind: Complete, Key: "a", Token: 9, HTTPStatus: 200}, Output{Result: OK}),
		}},
		{"wrong fingerprint reported", Options{}, []porcupine.Operation{
			op(1, Input{Kind: Claim, Key: "a", Fingerprint: 1}, Output{Claimed: true, Token: 7}),
			op(2, Input{Kind: Claim, Key: "a", Fingerprint: 2}, Output{State: idempotency.InFlight, Fingerprint: 2}),
		}},
		{"released record resurrected", Options{}, []porcupine.Operation{
			op(1, Input{Kind: Claim, Key: "a", Fingerprint: 1}, Output{Claimed: true, Token: 7}),
			op(2, Input{Kind: Release, Key: "a", Token: 7}, Output{Result: OK}),
			op(3, Input{Kind: Get, Key: "a"}, Output{Found: true, State: idempotency.InFlight, Fingerprint: 1}),
		}},
		{"completed record lost without MayLose", Options{}, []porcupine.Operation{
			op(1, Input{Kind: Claim, Key: "a", Fingerprint: 1}, Output{Claimed: true, Token: 7}),
			op(2, Input{Kind: Complete, Key: "a", Token: 7, HTTPStatus: 200}, Output{Result: OK}),
			op(3, Input{Kind: Get, Key: "a"}, Output{}),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := Check(tc.history, tc.opts, 5*time.Second, dir)
			if err == nil || !strings.Contains(err.Error(), dir) {
				t.Fatalf("Check = %v, want a failure naming a file in %s", err, dir)
			}
		})
	}
}

// tokenBlind is a broken store: it completes and releases whatever token
// is presented.
type tokenBlind struct{ *idempotency.LRU }

func (s tokenBlind) Complete(ctx context.Context, sc idempotency.Scope, _ uint64, out idempotency.Outcome, now time.Time, ttl time.Duration) error {
	if _, ok, _ := s.LRU.Get(ctx, sc, now); !ok {
		return s.LRU.Complete(ctx, sc, 0, out, now, ttl)
	}
	return nil
}

// TestCheck_CatchesBrokenStore runs the workload against a store that
// ignores tokens: the recorded history must fail the check, or the
// linearizability tests of the real stores prove nothing.
func TestCheck_CatchesBrokenStore(t *testing.T) {
	store := tokenBlind{idempotency.NewLRU(idempotency.LRUOptions{})}
	r := NewRecorder(store, time.Unix(0, 0), time.Hour)
	Workload{Clients: 4, Ops: 200, Keys: 2, Seed: 1}.Run(context.Background(), r)
	if err := Check(r.History(), Options{}, 30*time.Second, t.TempDir()); err == nil {
		t.Fatal("history of a token-blind store passed the check")
	}
}
