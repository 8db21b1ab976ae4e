// Package ir is the control plane's intermediate representation: the whole
// mesh as plain Go values, compiled from the YAML API and consumed by the xDS
// translator. It imports no Envoy protos, so every stage can be tested on
// plain data, and it holds no defaults of its own: the api package applies
// them before Build.
package ir

import (
	"time"

	"github.com/hopguard/hopguard/policy"
)

// Mesh is the compiled mesh. Services are sorted by Name; the value is
// immutable once built and safe to share between goroutines.
type Mesh struct {
	// Policy is the mesh-wide filter settings.
	Policy policy.Mesh `json:"policy"`
	// ExtProc says where data planes reach the ext_proc server.
	ExtProc ExtProc `json:"extProc"`
	// Drift configures drift handling.
	Drift Drift `json:"drift"`
	// ChangeWindows are the declared change windows.
	ChangeWindows []ChangeWindow `json:"changeWindows,omitempty"`
	// Services are every declared service, sorted by Name.
	Services []*Service `json:"services"`
}

// ExtProc locates the ext_proc server.
type ExtProc struct {
	// Enabled is false when the MeshConfig disables the filter.
	Enabled bool `json:"enabled"`
	// Address is host:port.
	Address string `json:"address"`
	// Timeout bounds each message exchange with the server.
	Timeout time.Duration `json:"timeout"`
	// FailureMode says which routes let requests through when the server is
	// unreachable: FailureAuto (routes without side effects), FailureOpen
	// (every route) or FailureClosed (none).
	FailureMode FailureMode `json:"failureMode"`
}

// FailureMode is what a route does when the ext_proc server is unreachable.
type FailureMode string

// Failure modes.
const (
	// FailureAuto fails open for routes without side effects and closed for
	// routes with side effects.
	FailureAuto FailureMode = "auto"
	// FailureOpen lets every route's requests through.
	FailureOpen FailureMode = "open"
	// FailureClosed refuses every route's requests.
	FailureClosed FailureMode = "closed"
)

// AllowsFailure reports whether requests of a route with or without side
// effects go through when the ext_proc server is unreachable.
func (f FailureMode) AllowsFailure(sideEffects bool) bool {
	switch f {
	case FailureOpen:
		return true
	case FailureClosed:
		return false
	default:
		return !sideEffects
	}
}

// Drift configures drift handling.
type Drift struct {
	// Quarantine marks drifted nodes' endpoints draining (else alert only).
	Quarantine bool `json:"quarantine"`
	// MaxQuarantinePercent caps quarantined endpoints per service.
	MaxQuarantinePercent int `json:"maxQuarantinePercent"`
}

// ChangeWindow is a weekly window in which changes are expected.
type ChangeWindow struct {
	// Days are weekdays the window opens on.
	Days []time.Weekday `json:"days"`
	// From and To are minutes after midnight in Location, From < To.
	From, To int `json:"-"`
	// FromText and ToText are the declared "HH:MM" values.
	FromText string `json:"from"`
	ToText   string `json:"to"`
	// Timezone is the IANA zone name.
	Timezone string `json:"timezone"`
}

// Service is one service of the mesh.
type Service struct {
	// Name is the service name; nodes whose xDS Node.cluster equals it get its config.
	Name string `json:"name"`
	// Namespace is the service's namespace.
	Namespace string `json:"namespace"`
	// GRPC is true for gRPC services (HTTP/2 upstreams, gRPC retry conditions).
	GRPC bool `json:"grpc"`
	// Port is the application port behind the sidecar.
	Port uint32 `json:"port"`
	// Endpoints are static instances; empty when DNS is set.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// DNSHost and DNSPort are set for DNS-resolved services.
	DNSHost string `json:"dnsHost,omitempty"`
	DNSPort uint32 `json:"dnsPort,omitempty"`
	// DependsOn are the names of the services this one calls, sorted.
	DependsOn []string `json:"dependsOn,omitempty"`
	// Routes are the service's route budgets, most specific match first.
	Routes []*Route `json:"routes"`
}

// Endpoint is one static instance.
type Endpoint struct {
	// Host is an IP literal.
	Host string `json:"host"`
	// Port is the instance's port.
	Port uint32 `json:"port"`
	// Locality is where the instance runs.
	Region  string `json:"region,omitempty"`
	Zone    string `json:"zone,omitempty"`
	SubZone string `json:"subZone,omitempty"`
	// Weight is the load-balancing weight (≥ 1).
	Weight uint32 `json:"weight"`
}

// Route is one route budget of a service, compiled.
type Route struct {
	// Policy is the enforced budget.
	Policy policy.Route `json:"policy"`
	// Digest is Policy.Digest(), computed once at build time.
	Digest string `json:"digest"`
}
