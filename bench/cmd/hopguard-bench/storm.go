package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/hopguard/hopguard/bench/report"
	"github.com/hopguard/hopguard/bench/result"
	"github.com/hopguard/hopguard/bench/storm"
)

// The retry-storm scenarios (kind: storm) belong to package bench/storm.
// This file is the only place the harness touches it: run a scenario file,
// check its result, render its report section.

// runStorm runs the storm scenario at path and returns its JSON result.
func runStorm(ctx context.Context, path string, quick bool, progress io.Writer, log *zap.Logger) (json.RawMessage, error) {
	sc, err := storm.LoadScenario(path)
	if err != nil {
		return nil, err
	}
	res, err := storm.Run(ctx, sc, storm.RunOptions{Quick: quick, Progress: progress, Logger: log,
		// grpc-go reads it at init: make bench and make bench-quick set it.
		ExtProcOnClient: os.Getenv("GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT") == "true"})
	if err != nil {
		return nil, err
	}
	if err := res.Check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("hopguard-bench: encode storm result: %w", err)
	}
	return b, nil
}

func decodeStorm(raw json.RawMessage) (*storm.Result, error) {
	var r storm.Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("hopguard-bench: storm result: %w", err)
	}
	return &r, nil
}

// checkStorm checks a storm result's internal consistency.
func checkStorm(raw json.RawMessage) error {
	r, err := decodeStorm(raw)
	if err != nil {
		return err
	}
	return r.Check()
}

// stormSection renders a storm result's report section.
func stormSection(f *result.File, plotDir, relDir string) (string, error) {
	r, err := decodeStorm(f.Storm)
	if err != nil {
		return "", err
	}
	return r.Markdown(plotDir, relDir)
}

// stormGoals returns a storm result's headline rows.
func stormGoals(f *result.File) ([]report.Goal, error) {
	r, err := decodeStorm(f.Storm)
	if err != nil {
		return nil, err
	}
	var out []report.Goal
	for _, g := range r.Headline() {
		out = append(out, report.Goal{Metric: g.Metric, Measured: g.Measured, Baseline: g.Baseline, Ratio: g.Ratio,
			Target: g.Target, Met: g.Met, Why: g.Why})
	}
	return out, nil
}
