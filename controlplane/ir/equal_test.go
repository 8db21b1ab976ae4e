package ir

import (
	"reflect"
	"testing"
	"time"

	"github.com/hopguard/hopguard/policy"
)

func equalTestService() *Service {
	p := policy.Route{ID: "shop/charge", Service: "payments", Deadline: policy.Deadline{Default: time.Second}}
	return &Service{
		Name: "payments", Namespace: "shop", GRPC: true, Port: 9000,
		Endpoints: []Endpoint{{Host: "10.0.0.1", Port: 9000, Region: "eu", Zone: "a", SubZone: "1", Weight: 1}},
		DNSHost:   "", DNSPort: 0,
		DependsOn: []string{"ledger"},
		Routes:    []*Route{{Policy: p, Digest: p.Digest()}},
	}
}

// clone deep-copies a test service.
func clone(s *Service) *Service {
	c := *s
	c.Endpoints = append([]Endpoint(nil), s.Endpoints...)
	c.DependsOn = append([]string(nil), s.DependsOn...)
	c.Routes = nil
	for _, r := range s.Routes {
		rc := *r
		c.Routes = append(c.Routes, &rc)
	}
	return &c
}

// changeValue changes v (settable) to another value of its type, or
// reports false for a kind it does not know: a new kind of field must be
// taught here, and to Service.Equal.
func changeValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint32, reflect.Uint64, reflect.Uint:
		v.SetUint(v.Uint() + 1)
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
			return true
		}
		e := v.Index(0)
		if e.Kind() == reflect.Pointer {
			e = e.Elem()
		}
		if e.Kind() == reflect.Struct {
			for i := range e.NumField() {
				if changeValue(e.Field(i)) {
					return true
				}
			}
			return false
		}
		return changeValue(e)
	default:
		return false
	}
	return true
}

// TestServiceEqual_EveryField changes each field of Service, and each
// field of its endpoints, in turn: Equal must notice every change.
func TestServiceEqual_EveryField(t *testing.T) {
	base := equalTestService()
	if !base.Equal(clone(base)) {
		t.Fatal("a copy is not Equal")
	}
	typ := reflect.TypeOf(Service{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		c := clone(base)
		if !changeValue(reflect.ValueOf(c).Elem().Field(i)) {
			t.Fatalf("field %s (%s): teach changeValue and Service.Equal about it", f.Name, f.Type)
		}
		if base.Equal(c) || c.Equal(base) {
			t.Errorf("changing %s is not noticed by Equal", f.Name)
		}
	}
	// Every field of an endpoint.
	et := reflect.TypeOf(Endpoint{})
	for i := range et.NumField() {
		c := clone(base)
		if !changeValue(reflect.ValueOf(&c.Endpoints[0]).Elem().Field(i)) {
			t.Fatalf("endpoint field %s: unknown kind", et.Field(i).Name)
		}
		if base.Equal(c) {
			t.Errorf("changing endpoint field %s is not noticed by Equal", et.Field(i).Name)
		}
	}
}

func TestServiceEqual_Routes(t *testing.T) {
	base := equalTestService()
	changed := clone(base)
	changed.Routes[0].Policy.Deadline.Default = 2 * time.Second
	changed.Routes[0].Digest = changed.Routes[0].Policy.Digest()
	if base.Equal(changed) {
		t.Error("a route with another policy (and digest) reported equal")
	}
	// Without digests (routes built by hand), policies are compared.
	a, b := clone(base), clone(changed)
	a.Routes[0].Digest, b.Routes[0].Digest = "", ""
	if a.Equal(b) {
		t.Error("routes without digests and different policies reported equal")
	}
	b.Routes[0].Policy = a.Routes[0].Policy
	if !a.Equal(b) {
		t.Error("routes without digests and equal policies reported different")
	}
	var nilSvc *Service
	if !nilSvc.Equal(nil) || nilSvc.Equal(base) || base.Equal(nil) {
		t.Error("nil services: only nil equals nil")
	}
}
