// Package cli implements hopguard's command line: one cobra command tree whose
// subcommands wrap the library packages. Everything a command needs from the
// process (arguments, output streams, the version string) arrives in Env, so
// commands can be run and checked in tests without a subprocess.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/hopguard/hopguard/controlplane"
	"github.com/hopguard/hopguard/policy/source"
)

// Exit codes shared by every command.
const (
	// ExitOK means success.
	ExitOK = 0
	// ExitFindings means the input was read and found invalid (or lint found problems).
	ExitFindings = 1
	// ExitError means a usage or runtime error.
	ExitError = 2
)

// Env is the process environment a command runs in.
type Env struct {
	// Args are the command-line arguments without the program name.
	Args []string
	// Stdout receives the command's results.
	Stdout io.Writer
	// Stderr receives logs and errors.
	Stderr io.Writer
	// Version is the release version of the binary.
	Version string
}

// errFindings is returned by commands that already printed their findings and
// want exit code 1.
var errFindings = errors.New("findings")

// Main runs the command line and returns the process exit code. ctx is
// cancelled on SIGINT/SIGTERM; long-running commands drain and return 0.
func Main(ctx context.Context, env Env) int {
	root := newRoot(env)
	root.SetArgs(env.Args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errFindings):
		return ExitFindings
	case errors.Is(err, controlplane.ErrInvalidConfig), errors.Is(err, source.ErrInvalid):
		// A configuration refused at start is invalid input, not a
		// runtime failure: scripts tell it apart from "port in use".
		fmt.Fprintln(env.Stderr, "hopguard:", err)
		return ExitFindings
	default:
		fmt.Fprintln(env.Stderr, "hopguard:", err)
		return ExitError
	}
}

// globalFlags are the flags every command accepts.
type globalFlags struct {
	logFormat string
	logLevel  string
}

func newRoot(env Env) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "hopguard",
		Short: "Retry and deadline budgets for Envoy sidecars and proxyless gRPC",
		Long: `hopguard enforces per-route retry and deadline budgets across a service mesh.

Declare budgets in YAML, check them with 'hopguard validate', see what a node
receives with 'hopguard render', and serve them with 'hopguard run'.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       env.Version,
	}
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "json", "log format: json or console")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return fmt.Errorf("usage: %w", err)
	})
	root.AddCommand(
		newValidateCmd(env),
		newRenderCmd(env),
		newControlPlaneCmd(env, g),
		newRunCmd(env, g),
		newExtProcCmd(env, g),
		newBootstrapCmd(env),
		newLintCmd(env),
		newDemoCmd(env, g),
		newKeygenCmd(env, g),
		newDriftCmd(env, g),
		newAuditCmd(env, g),
		newManifestCmd(env, g),
		newPinCmd(env, g),
		newUnpinCmd(env, g),
		newFreezeCmd(env, g),
		newUnfreezeCmd(env, g),
		newVersionCmd(env),
	)
	return root
}

// buildInfo describes the running binary.
type buildInfo struct {
	Version   string
	Revision  string
	GoVersion string
}

func readBuildInfo(version string) buildInfo {
	b := buildInfo{Version: version, Revision: "unknown", GoVersion: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				b.Revision = s.Value
			}
		}
	}
	return b
}

func newVersionCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, revision and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := readBuildInfo(env.Version)
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "hopguard %s (revision %s, %s)\n", b.Version, b.Revision, b.GoVersion)
			return err
		},
	}
}
