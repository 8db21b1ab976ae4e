package admin

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/hopguard/hopguard/controlplane/xds"
	"github.com/hopguard/hopguard/policy/bundle"
)

// Operator is what a Source may also offer: signed manifests, the
// distributed bundle, quarantine, and the recovery overrides. Handler
// serves these endpoints only for a Source that implements it.
type Operator interface {
	// Manifests returns a runtime manifest per known node, sorted by node.
	Manifests() []bundle.Manifest
	// BundleJSON returns the distributed bundle as subscribers receive it
	// (nil before the first).
	BundleJSON() []byte
	// Quarantine returns the per-service quarantine report.
	Quarantine() []xds.ServiceQuarantine
	// Pin serves the configuration of an earlier generation until Unpin;
	// it returns the generation it is distributed as.
	Pin(generation uint64, reason string) (uint64, error)
	// Unpin serves the latest accepted configuration again.
	Unpin(reason string) (uint64, error)
	// Freeze turns refusing side effects on non-critical routes on or off.
	Freeze(on bool, reason string) (uint64, error)
}

// OverrideResult is the body of a successful override call.
type OverrideResult struct {
	// Generation is the bundle generation now distributed.
	Generation uint64 `json:"generation"`
}

// problem is the body of a failed operator call.
type problem struct {
	Error string `json:"error"`
}

// registerOperator adds:
//
//	GET  /manifests          JSON list of bundle.Manifest
//	GET  /manifests/{node}   one manifest, 404 for an unknown node
//	GET  /bundle             the distributed bundle, 503 before the first
//	GET  /quarantine         JSON list of xds.ServiceQuarantine
//	POST /pin?generation=N&reason=R   serve generation N's configuration
//	POST /unpin?reason=R
//	POST /freeze?reason=R    refuse side effects on non-critical routes
//	POST /unfreeze?reason=R
func registerOperator(mux *http.ServeMux, op Operator) {
	mux.HandleFunc("GET /manifests", func(w http.ResponseWriter, _ *http.Request) {
		ms := op.Manifests()
		if ms == nil {
			ms = []bundle.Manifest{}
		}
		writeJSON(w, http.StatusOK, ms)
	})
	mux.HandleFunc("GET /manifests/{node}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("node")
		for _, m := range op.Manifests() {
			if m.Node == id {
				writeJSON(w, http.StatusOK, m)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, problem{Error: "admin: no node " + strconv.Quote(id)})
	})
	mux.HandleFunc("GET /bundle", func(w http.ResponseWriter, _ *http.Request) {
		raw := op.BundleJSON()
		if raw == nil {
			writeJSON(w, http.StatusServiceUnavailable, problem{Error: "admin: no bundle distributed yet"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(raw)
	})
	mux.HandleFunc("GET /quarantine", func(w http.ResponseWriter, _ *http.Request) {
		q := op.Quarantine()
		if q == nil {
			q = []xds.ServiceQuarantine{}
		}
		writeJSON(w, http.StatusOK, q)
	})
	override := func(f func(r *http.Request, reason string) (uint64, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			reason := r.URL.Query().Get("reason")
			if reason == "" {
				reason = "(no reason given)"
			}
			gen, err := f(r, reason)
			if err != nil {
				var bad badRequest
				code := http.StatusInternalServerError
				switch {
				case errors.As(err, &bad):
					code = http.StatusBadRequest
				case errors.Is(err, ErrNotFound):
					code = http.StatusNotFound
				case errors.Is(err, ErrConflict):
					code = http.StatusConflict
				case errors.Is(err, ErrUnsupported):
					code = http.StatusNotImplemented
				}
				writeJSON(w, code, problem{Error: err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, OverrideResult{Generation: gen})
		}
	}
	mux.HandleFunc("POST /pin", override(func(r *http.Request, reason string) (uint64, error) {
		gen, err := strconv.ParseUint(r.URL.Query().Get("generation"), 10, 64)
		if err != nil || gen == 0 {
			return 0, badRequest("admin: pin needs ?generation=N (a positive integer)")
		}
		return op.Pin(gen, reason)
	}))
	mux.HandleFunc("POST /unpin", override(func(_ *http.Request, reason string) (uint64, error) { return op.Unpin(reason) }))
	mux.HandleFunc("POST /freeze", override(func(_ *http.Request, reason string) (uint64, error) { return op.Freeze(true, reason) }))
	mux.HandleFunc("POST /unfreeze", override(func(_ *http.Request, reason string) (uint64, error) { return op.Freeze(false, reason) }))
}

// Kinds of override errors, which an Operator's errors wrap to choose the
// answer's status: 404, 409 and 501. Any other error is the server's (500).
var (
	// ErrNotFound: the request names something that does not exist (an
	// unknown generation).
	ErrNotFound = errors.New("admin: not found")
	// ErrConflict: the request does not apply to the current state (unpin
	// when not pinned, an override before anything is served).
	ErrConflict = errors.New("admin: conflicts with the current state")
	// ErrUnsupported: this server is not set up for the request (pin
	// without an audit log).
	ErrUnsupported = errors.New("admin: not supported by this server's configuration")
)

// badRequest is an error in the request itself (400).
type badRequest string

func (b badRequest) Error() string { return string(b) }
