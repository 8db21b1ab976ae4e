// Command hopguard is the single binary of hopguard: the control plane, the
// ext_proc server and the tools that validate, render and prove budgets.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hopguard/hopguard/internal/cli"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, cli.Env{
		Args:    os.Args[1:],
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Version: version,
	})
	stop()
	os.Exit(code)
}
