package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"go.uber.org/zap"

	"github.com/hopguard/hopguard/bench/result"
)

// The retry-storm scenarios (kind: storm) belong to package bench/storm.
// This file is the only place the harness touches it: run a scenario file,
// check its result, render its report section. Until that package is
// wired in, storm scenarios fail with errStormMissing.

// errStormMissing is returned for storm scenarios while bench/storm is not
// wired into the harness.
var errStormMissing = errors.New("hopguard-bench: storm scenarios need package bench/storm, which this build does not include")

// runStorm runs the storm scenario at path and returns its JSON result.
func runStorm(_ context.Context, _ string, _ bool, _ io.Writer, _ *zap.Logger) (json.RawMessage, error) {
	return nil, errStormMissing
}

// checkStorm checks a storm result's internal consistency.
func checkStorm(json.RawMessage) error { return errStormMissing }

// stormSection renders a storm result's report section.
func stormSection(*result.File, string, string) (string, error) { return "", errStormMissing }
