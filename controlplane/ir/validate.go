package ir

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
)

// ErrInvalid is wrapped by every error Validate returns.
var ErrInvalid = errors.New("ir: invalid")

// Validate checks the invariants the translator relies on and reports every
// violation (joined, each wrapping ErrInvalid): service names are non-empty
// and unique, ports are non-zero, a service has endpoints or DNS but not
// both, dependsOn names declared services, every route passes
// policy.Route.Validate, belongs to its service, carries its own digest and
// has a mesh-unique ID, and an enabled ext_proc server has a host:port
// address and a positive timeout. Build calls it; callers that assemble a
// Mesh by hand should too.
func (m *Mesh) Validate() error {
	if m == nil {
		return fmt.Errorf("%w: nil mesh", ErrInvalid)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...)))
	}
	if m.ExtProc.Enabled {
		if host, port, err := net.SplitHostPort(m.ExtProc.Address); err != nil || host == "" || port == "" {
			bad("extProc address %q is not host:port", m.ExtProc.Address)
		}
		if m.ExtProc.Timeout <= 0 {
			bad("extProc timeout %v is not positive", m.ExtProc.Timeout)
		}
	}
	names := make(map[string]bool, len(m.Services))
	for _, s := range m.Services {
		if s == nil {
			bad("nil service")
			continue
		}
		if s.Name == "" {
			bad("service with empty name")
		}
		if names[s.Name] {
			bad("service name %q used twice", s.Name)
		}
		names[s.Name] = true
	}
	routeIDs := make(map[string]string)
	for i, s := range m.Services {
		if s == nil {
			continue
		}
		where := fmt.Sprintf("services[%d] %q", i, s.Name)
		if i > 0 && m.Services[i-1] != nil && m.Services[i-1].Name > s.Name {
			bad("%s: services not sorted by name", where)
		}
		if s.Port == 0 {
			bad("%s: port 0", where)
		}
		switch {
		case s.DNSHost != "" && len(s.Endpoints) > 0:
			bad("%s: both endpoints and dns", where)
		case s.DNSHost != "" && s.DNSPort == 0:
			bad("%s: dns port 0", where)
		}
		for j, e := range s.Endpoints {
			if e.Host == "" || e.Port == 0 || e.Weight == 0 {
				bad("%s: endpoints[%d]: needs host, port and weight ≥ 1", where, j)
			}
		}
		for _, d := range s.DependsOn {
			if !names[d] {
				bad("%s: dependsOn names unknown service %q", where, d)
			}
		}
		for j, r := range s.Routes {
			if r == nil {
				bad("%s: routes[%d]: nil", where, j)
				continue
			}
			if err := r.Policy.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("%w: %s: %w", ErrInvalid, where, err))
			}
			if r.Policy.Service != s.Name {
				bad("%s: route %q belongs to service %q", where, r.Policy.ID, r.Policy.Service)
			}
			if r.Digest != r.Policy.Digest() {
				bad("%s: route %q: stale digest", where, r.Policy.ID)
			}
			if other, dup := routeIDs[r.Policy.ID]; dup {
				bad("%s: route id %q also used by service %q", where, r.Policy.ID, other)
			}
			routeIDs[r.Policy.ID] = s.Name
		}
	}
	return errors.Join(errs...)
}

// Service returns the service named name, or nil. It relies on Services
// being sorted by name, as Build leaves them.
func (m *Mesh) Service(name string) *Service {
	i, ok := slices.BinarySearchFunc(m.Services, name, func(s *Service, n string) int {
		return strings.Compare(s.Name, n)
	})
	if !ok {
		return nil
	}
	return m.Services[i]
}
