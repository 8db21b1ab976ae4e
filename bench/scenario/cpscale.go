package scenario

import (
	"errors"
	"fmt"
)

// CPScale declares the control-plane scale scenario.
type CPScale struct {
	// Kind and Name: see Scenario.
	Kind string `yaml:"kind"`
	Name string `yaml:"name"`
	// Description is shown in the report.
	Description string `yaml:"description"`
	// Full and Quick are the mesh and client sizes of a run.
	Full  CPScaleSize `yaml:"full"`
	Quick CPScaleSize `yaml:"quick"`
	// DependsOn is how many next services each service calls.
	DependsOn int `yaml:"dependsOn"`
	// AckTimeout bounds the wait for every client's ACK.
	AckTimeout Duration `yaml:"ackTimeout"`
}

// CPScaleSize sizes one run.
type CPScaleSize struct {
	// Services and RoutesPerService size the generated mesh.
	Services         int `yaml:"services"`
	RoutesPerService int `yaml:"routesPerService"`
	// Clients are the ADS client counts to run, each against both servers.
	Clients []int `yaml:"clients"`
}

// Size returns the quick or the full size.
func (c *CPScale) Size(quick bool) CPScaleSize {
	if quick {
		return c.Quick
	}
	return c.Full
}

func (c *CPScale) validate() error {
	var errs []error
	for name, s := range map[string]CPScaleSize{"full": c.Full, "quick": c.Quick} {
		if s.Services < 2 || s.RoutesPerService < 1 || len(s.Clients) == 0 {
			errs = append(errs, fmt.Errorf("%w: %s: want services ≥ 2, routesPerService ≥ 1 and client counts", ErrInvalid, name))
		}
		for _, n := range s.Clients {
			if n < 1 {
				errs = append(errs, fmt.Errorf("%w: %s.clients: %d", ErrInvalid, name, n))
			}
		}
		if c.DependsOn >= s.Services {
			errs = append(errs, fmt.Errorf("%w: dependsOn %d must be below %s.services %d", ErrInvalid, c.DependsOn, name, s.Services))
		}
	}
	if c.DependsOn < 0 {
		errs = append(errs, fmt.Errorf("%w: dependsOn: negative", ErrInvalid))
	}
	if c.AckTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%w: ackTimeout: required", ErrInvalid))
	}
	return errors.Join(errs...)
}
