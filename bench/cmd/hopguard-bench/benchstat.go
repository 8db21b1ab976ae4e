package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"time"
)

// benchstatModule is the benchstat the harness runs through `go run`
// (fetched by the go command's module proxy on first use).
const benchstatModule = "golang.org/x/perf/cmd/benchstat@latest"

// benchstat returns a function running benchstat on files, bounded to two
// minutes (the first use downloads it).
func benchstat(goCmd string) func(ctx context.Context, dir string, files ...string) (string, error) {
	return func(ctx context.Context, dir string, files ...string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goCmd, append([]string{"run", benchstatModule}, files...)...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("hopguard-bench: benchstat: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return string(out), nil
	}
}
