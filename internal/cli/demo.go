package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/hopguard/hopguard/internal/demo"
)

// extProcOnClientEnv must be "true" in the process environment before
// grpc-go initialises, or grpc-go does not register its client-side
// ext_proc filter and the demo's proxyless services refuse every listener
// the control plane sends. Package initialisation runs before main, so
// setting it from the command is too late: the demo command re-executes
// the binary with the variable set instead.
const extProcOnClientEnv = "GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT"

// demoProcess is what the demo command needs from the operating system.
// This is the one command that reads the process environment below cmd/:
// whether the running process can host grpc-go's ext_proc filter is a
// property of the process itself.
type demoProcess struct {
	lookupEnv  func(string) (string, bool)
	environ    func() []string
	executable func() (string, error)
	// exec runs the re-executed demo to completion.
	exec func(*exec.Cmd) error
	run  func(context.Context, demo.Options) (demo.Summary, error)
}

func osDemoProcess() demoProcess {
	return demoProcess{
		lookupEnv: os.LookupEnv, environ: os.Environ, executable: os.Executable,
		exec: (*exec.Cmd).Run, run: demo.Run,
	}
}

type demoFlags struct {
	duration time.Duration
	rate     int
}

// newDemoCmd returns `hopguard demo`.
func newDemoCmd(env Env, g *globalFlags) *cobra.Command {
	return newDemoCmdWith(env, g, osDemoProcess())
}

func newDemoCmdWith(env Env, g *globalFlags, p demoProcess) *cobra.Command {
	f := &demoFlags{}
	cmd := &cobra.Command{
		Use:   "demo [--duration 20s] [--rate 50]",
		Short: "Run the example shop on loopback under a fault and show hopguard at work",
		Long: `demo starts the control plane, the ext_proc server and the example shop's
five services (gateway → orders → {payments → ledger, inventory}) in this
process on free 127.0.0.1 ports, sends checkouts at the gateway, makes the
ledger fail every call from half of --duration to three quarters of it, and
shows per route what hopguard allowed and dropped, the ledger attempts per
checkout (amplification) and the goodput; at the end it compares the
amplification with what naive retries at every hop would have caused.

grpc-go's client-side ext_proc filter needs ` + extProcOnClientEnv + `=true
at process start: without it, demo runs itself again with it set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.rate <= 0 || f.duration <= 0 {
				return fmt.Errorf("usage: --rate and --duration must be positive")
			}
			if v, _ := p.lookupEnv(extProcOnClientEnv); v != "true" {
				return reexecDemo(cmd.Context(), env, p)
			}
			return runDemo(cmd, env, g, f, p)
		},
	}
	cmd.Flags().DurationVar(&f.duration, "duration", demo.DefaultDuration, "how long to drive traffic; the fault covers its third quarter")
	cmd.Flags().IntVar(&f.rate, "rate", demo.DefaultRate, "checkouts per second sent to the gateway")
	return cmd
}

func runDemo(cmd *cobra.Command, env Env, g *globalFlags, f *demoFlags, p demoProcess) error {
	// The components log every rejection at info; the demo shows them in
	// its view instead, so it logs warnings unless asked otherwise.
	lg := *g
	if fl := cmd.Flags().Lookup("log-level"); fl == nil || !fl.Changed {
		lg.logLevel = "warn"
	}
	log, err := newLogger(env.Stderr, &lg)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	_, err = p.run(cmd.Context(), demo.Options{
		Out: env.Stdout, Duration: f.duration, Rate: f.rate,
		Interactive: isTerminal(env.Stdout), Logger: log,
	})
	return err
}

// reexecDemo runs this binary again with the same arguments and
// extProcOnClientEnv=true, wired to the same output streams; an interrupt
// is passed on so the child drains and prints its summary.
func reexecDemo(ctx context.Context, env Env, p demoProcess) error {
	exe, err := p.executable()
	if err != nil {
		return fmt.Errorf("demo: find own executable to re-run with %s=true: %w", extProcOnClientEnv, err)
	}
	c := demoChild(ctx, exe, env, p.environ())
	if err := p.exec(c); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("demo: exited with code %d", ee.ExitCode())
		}
		return fmt.Errorf("demo: re-run with %s=true: %w", extProcOnClientEnv, err)
	}
	return nil
}

// demoChild is the re-executed demo's command.
func demoChild(ctx context.Context, exe string, env Env, environ []string) *exec.Cmd {
	c := exec.CommandContext(ctx, exe, env.Args...)
	c.Env = append(environ, extProcOnClientEnv+"=true")
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, env.Stdout, env.Stderr
	c.Cancel = func() error { return c.Process.Signal(os.Interrupt) }
	c.WaitDelay = 10 * time.Second
	return c
}

// isTerminal reports whether w is a character device (a terminal), where
// the live view can redraw in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
