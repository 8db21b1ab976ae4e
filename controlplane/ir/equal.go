package ir

import (
	"reflect"
	"slices"
)

// Equal reports whether s and o declare the same service: every field
// equal, routes compared by their Digest (a hash of the whole policy), or
// by value when a route has none. Nil equals only nil. It is what lets the
// xDS server keep a rendering whose inputs did not change, so every field
// of Service must take part (TestServiceEqual_EveryField checks it).
func (s *Service) Equal(o *Service) bool {
	if s == o {
		return true
	}
	if s == nil || o == nil {
		return false
	}
	if s.Name != o.Name || s.Namespace != o.Namespace || s.GRPC != o.GRPC || s.Port != o.Port ||
		s.DNSHost != o.DNSHost || s.DNSPort != o.DNSPort ||
		!slices.Equal(s.Endpoints, o.Endpoints) || !slices.Equal(s.DependsOn, o.DependsOn) ||
		len(s.Routes) != len(o.Routes) {
		return false
	}
	for i, a := range s.Routes {
		b := o.Routes[i]
		switch {
		case a == b:
		case a == nil || b == nil:
			return false
		case a.Digest != "" && b.Digest != "":
			if a.Digest != b.Digest {
				return false
			}
		case !reflect.DeepEqual(a.Policy, b.Policy):
			return false
		}
	}
	return true
}
