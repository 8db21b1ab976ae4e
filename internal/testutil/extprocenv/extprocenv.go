// Package extprocenv lets a test binary run with grpc-go's client-side
// ext_proc filter enabled. grpc-go registers that filter only when
// GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT=true is in the environment when
// its xds package initialises, which is before TestMain runs; so TestMain
// re-runs the test binary with the variable set.
package extprocenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// Var is the environment variable grpc-go reads.
const Var = "GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT"

// Enabled reports whether this process started with the filter enabled.
func Enabled() bool { return os.Getenv(Var) == "true" }

// Reexec returns false when the filter is enabled, so the caller goes on
// and runs its tests. Otherwise it runs this test binary again, with the
// same arguments and the variable set, and exits with its exit code.
func Reexec() bool {
	if Enabled() {
		return false
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), Var+"=true")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "extprocenv: re-exec:", err)
		os.Exit(2)
	}
	os.Exit(0)
	return true
}
