// Package idemcheck checks idempotency stores for linearizability: a
// Recorder runs concurrent Claim / Complete / Release / Get calls against
// any idempotency.Store and keeps their history, and Model is the
// sequential specification of the record state machine that
// github.com/anishathalye/porcupine checks the history against.
//
// Time is kept out of the model: histories use one fixed "now" and TTLs
// far longer than a run, so nothing expires. Two departures from a
// perfect store are modelled explicitly:
//
//   - an operation whose call failed with anything but
//     idempotency.ErrIllegalTransition (a Redis restart, a timeout) has an
//     unknown outcome: it may or may not have taken effect, at any point
//     after its call (its return is placed after every other operation);
//   - a store with a capacity may lose a live record (an LRU eviction, a
//     documented loss): Options.MayLose lets the model drop a record to
//     absent before any operation.
//
// Everything else is checked: at most one live claim per key, tokens
// honoured only by their own live in-flight record, fingerprints and
// outcomes reported as written, and nothing resurrected.
package idemcheck

import (
	"fmt"

	"github.com/anishathalye/porcupine"

	"github.com/hopguard/hopguard/filters/idempotency"
)

// Kind is the operation of an Input.
type Kind uint8

// Kinds.
const (
	Claim Kind = iota
	Complete
	Release
	Get
)

// String returns the operation's name.
func (k Kind) String() string {
	switch k {
	case Claim:
		return "claim"
	case Complete:
		return "complete"
	case Release:
		return "release"
	case Get:
		return "get"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Input is one call: its operation, key and arguments.
type Input struct {
	Kind Kind
	// Key is the record's Idempotency-Key (one partition per key).
	Key string
	// Fingerprint is a Claim's fingerprint.
	Fingerprint uint64
	// Token is the token a Complete or Release presents.
	Token uint64
	// HTTPStatus is a Complete's outcome.
	HTTPStatus int
}

// Result says how a call ended.
type Result uint8

// Results.
const (
	// OK: the call returned without error.
	OK Result = iota
	// Illegal: the call returned an error wrapping ErrIllegalTransition.
	Illegal
	// Unknown: the call failed otherwise; it may or may not have happened.
	Unknown
)

// String returns "ok", "illegal" or "unknown".
func (r Result) String() string {
	switch r {
	case OK:
		return "ok"
	case Illegal:
		return "illegal"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("result(%d)", uint8(r))
}

// Output is what a call returned.
type Output struct {
	Result Result
	// Claimed and Token are a Claim's result.
	Claimed bool
	Token   uint64
	// Found is a Get's result; State, Fingerprint and HTTPStatus describe
	// the record a Get found or a refused Claim returned.
	Found       bool
	State       idempotency.State
	Fingerprint uint64
	HTTPStatus  int
}

// state is the model of one key's record; comparable, so porcupine's
// default equality works. A record claimed by a call of unknown outcome
// holds Token 0, which no caller presents.
type state struct {
	State       idempotency.State
	Fingerprint uint64
	Token       uint64
	HTTPStatus  int
}

// Options tune the model.
type Options struct {
	// MayLose lets a live record become absent before any operation: the
	// capacity eviction of a bounded store.
	MayLose bool
}

// Model returns the porcupine model of one store, partitioned by key.
func Model(opts Options) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: partition,
		Init:      func() []any { return []any{state{}} },
		Step: func(s, in, out any) []any {
			st, i, o := s.(state), in.(Input), out.(Output)
			var next []any
			for _, pre := range preStates(st, opts) {
				next = append(next, step(pre, i, o)...)
			}
			return next
		},
		DescribeOperation: describeOperation,
		DescribeState: func(s any) string {
			st := s.(state)
			if st.State == idempotency.Absent {
				return "absent"
			}
			return fmt.Sprintf("%s fp=%d tok=%x http=%d", st.State, st.Fingerprint, st.Token, st.HTTPStatus)
		},
	}
	return nm.ToModel()
}

// preStates is where an operation may start from: st, or absent when the
// record may have been lost.
func preStates(st state, opts Options) []state {
	if opts.MayLose && st.State != idempotency.Absent {
		return []state{st, {}}
	}
	return []state{st}
}

// step is the sequential specification: the states st may move to when
// the call in returned out (none when it could not have).
func step(st state, in Input, out Output) []any {
	live := st.State != idempotency.Absent
	switch in.Kind {
	case Claim:
		switch {
		case out.Result == Unknown && !live:
			return []any{st, state{State: idempotency.InFlight, Fingerprint: in.Fingerprint}}
		case out.Result == Unknown:
			return []any{st}
		case out.Result != OK:
			return nil
		case out.Claimed && !live && out.Token != 0:
			return []any{state{State: idempotency.InFlight, Fingerprint: in.Fingerprint, Token: out.Token}}
		case !out.Claimed && live && sameRecord(st, out):
			return []any{st}
		}
		return nil
	case Complete, Release:
		holds := st.State == idempotency.InFlight && st.Token == in.Token
		after := state{}
		if in.Kind == Complete {
			after = st
			after.State, after.HTTPStatus = idempotency.Completed, in.HTTPStatus
		}
		switch {
		case out.Result == Unknown && holds:
			return []any{st, after}
		case out.Result == Unknown:
			return []any{st}
		case out.Result == OK && holds:
			return []any{after}
		case out.Result == Illegal && !holds:
			return []any{st}
		}
		return nil
	case Get:
		if out.Result != OK {
			return nil
		}
		if out.Found == live && (!live || sameRecord(st, out)) {
			return []any{st}
		}
		return nil
	}
	return nil
}

// sameRecord reports whether out describes st's record.
func sameRecord(st state, out Output) bool {
	return out.State == st.State && out.Fingerprint == st.Fingerprint && out.HTTPStatus == st.HTTPStatus
}

// partition splits a history by key: records of different keys are
// independent, so the history is linearizable iff each key's is.
func partition(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var order []string
	for _, op := range history {
		k := op.Input.(Input).Key
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], op)
	}
	out := make([][]porcupine.Operation, 0, len(order))
	for _, k := range order {
		out = append(out, byKey[k])
	}
	return out
}

// describeOperation renders a call for the visualisation.
func describeOperation(in, out any) string {
	i, o := in.(Input), out.(Output)
	var res string
	switch {
	case o.Result == Unknown:
		res = "unknown"
	case o.Result == Illegal:
		res = "illegal"
	case i.Kind == Claim && o.Claimed:
		res = fmt.Sprintf("claimed tok=%x", o.Token)
	case i.Kind == Claim, i.Kind == Get && o.Found:
		res = fmt.Sprintf("%s fp=%d http=%d", o.State, o.Fingerprint, o.HTTPStatus)
	case i.Kind == Get:
		res = "absent"
	default:
		res = "ok"
	}
	switch i.Kind {
	case Claim:
		return fmt.Sprintf("claim(%s, fp=%d) → %s", i.Key, i.Fingerprint, res)
	case Complete:
		return fmt.Sprintf("complete(%s, tok=%x, http=%d) → %s", i.Key, i.Token, i.HTTPStatus, res)
	case Release:
		return fmt.Sprintf("release(%s, tok=%x) → %s", i.Key, i.Token, res)
	default:
		return fmt.Sprintf("get(%s) → %s", i.Key, res)
	}
}
