// Package admin serves the control plane's admin HTTP API: liveness and
// readiness probes, Prometheus metrics, the effective configuration and the
// per-node xDS status. It reads everything from a Source and holds no state.
package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/xds"
)

// Readiness "signing" values.
const (
	SigningDisabled = "disabled"
	SigningEnabled  = "enabled"
)

// Source is what the admin endpoints show. Implementations must be safe for
// concurrent use; returned values are owned by the caller and not modified
// afterwards by the Source.
type Source interface {
	// Config returns the served configuration and the last refused reload.
	Config() ConfigStatus
	// Nodes returns the status of every xDS node seen.
	Nodes() []xds.NodeStatus
	// Gatherer returns the metrics exposed at /metrics.
	Gatherer() prometheus.Gatherer
}

// ConfigStatus is the served configuration as /config shows it.
type ConfigStatus struct {
	// Mesh is the effective IR; nil until a valid configuration has been loaded.
	Mesh *ir.Mesh `json:"mesh"`
	// Version is a hash of the effective IR; empty when Mesh is nil.
	Version string `json:"version"`
	// PolicyHash is the distributed bundle's policy_hash (hopguard_policy_info).
	PolicyHash string `json:"policyHash"`
	// Generation is the distributed bundle's generation.
	Generation uint64 `json:"generation"`
	// SignedBy is the id of the key the bundle is signed with ("" when unsigned).
	SignedBy string `json:"signedBy"`
	// Overrides are the manual overrides in force.
	Overrides Overrides `json:"overrides"`
	// Files are the configuration files the served configuration was read from.
	Files []string `json:"files"`
	// LoadedAt is when the served configuration was loaded.
	LoadedAt time.Time `json:"loadedAt"`
	// LastError is the last refused reload, nil when the last reload succeeded.
	LastError *LoadError `json:"lastError"`
}

// Overrides are the manual overrides in force.
type Overrides struct {
	// PinnedTo is the pinned generation, 0 when not pinned.
	PinnedTo uint64 `json:"pinnedTo"`
	// Frozen is true while side effects on routes not marked critical are refused.
	Frozen bool `json:"frozen"`
}

// LoadError is a refused reload.
type LoadError struct {
	// Message lists every problem found, one per line.
	Message string `json:"message"`
	// At is when the reload was refused.
	At time.Time `json:"at"`
}

// Readiness is the /readyz body.
type Readiness struct {
	// Ready is true when a valid configuration is being served.
	Ready bool `json:"ready"`
	// Version is the served configuration's version.
	Version string `json:"version,omitempty"`
	// LoadedAt is when the served configuration was loaded.
	LoadedAt *time.Time `json:"loadedAt,omitempty"`
	// LastError is the last refused reload, if any.
	LastError *LoadError `json:"lastError,omitempty"`
	// Signing says whether distributed policy is signed: "enabled" or
	// "disabled".
	Signing string `json:"signing"`
	// SignedBy is the id of the signing key, when signing is enabled.
	SignedBy string `json:"signedBy,omitempty"`
}

// Handler returns the admin API over src:
//
//	GET /healthz  200 "ok" while the process serves HTTP
//	GET /readyz   200 when a valid configuration is loaded, else 503; JSON Readiness
//	GET /metrics  Prometheus exposition of src.Gatherer()
//	GET /config   JSON ConfigStatus
//	GET /nodes    JSON list of xds.NodeStatus
//	GET /nodes/summary  JSON list of xds.LocalitySummary (connected nodes by region and zone)
func Handler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		cfg := src.Config()
		r := Readiness{Ready: cfg.Mesh != nil, Version: cfg.Version, LastError: cfg.LastError, Signing: SigningDisabled}
		if cfg.SignedBy != "" {
			r.Signing, r.SignedBy = SigningEnabled, cfg.SignedBy
		}
		code := http.StatusServiceUnavailable
		if r.Ready {
			code = http.StatusOK
			loaded := cfg.LoadedAt
			r.LoadedAt = &loaded
		}
		writeJSON(w, code, r)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(src.Gatherer(), promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, src.Config())
	})
	mux.HandleFunc("GET /nodes", func(w http.ResponseWriter, _ *http.Request) {
		nodes := src.Nodes()
		if nodes == nil {
			nodes = []xds.NodeStatus{}
		}
		writeJSON(w, http.StatusOK, nodes)
	})
	mux.HandleFunc("GET /nodes/summary", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, xds.Summarize(src.Nodes()))
	})
	if op, ok := src.(Operator); ok {
		registerOperator(mux, op)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "admin: encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
