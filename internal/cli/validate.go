package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
)

func newValidateCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "validate PATH...",
		Short: "Check budget files; print file:line:col: field: message per problem",
		Long: `validate decodes, defaults and checks every YAML document under the given
files and directories. It prints one line per problem,

  file:line:col: field.path: message

and exits 1 when any is an error (warnings alone exit 0).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, paths []string) error {
			cfg, vs, err := v1alpha1.Load(paths...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, v := range vs {
				fmt.Fprintln(out, v.String())
			}
			if len(vs.Errors()) > 0 {
				return errFindings
			}
			// A config that passes the API rules must also compile and
			// render for every node, or the control plane would refuse it.
			if err := checkRenders(cfg); err != nil {
				fmt.Fprintln(out, err)
				return errFindings
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "valid: %d services, %d route budgets in %d files\n",
				len(cfg.Services), len(cfg.RouteBudgets), len(cfg.Files))
			return nil
		},
	}
}

// checkRenders compiles cfg and renders every service for both flavors.
func checkRenders(cfg *v1alpha1.Config) error {
	mesh, err := ir.Build(cfg)
	if err != nil {
		return err
	}
	for _, s := range mesh.Services {
		for _, f := range []translate.Flavor{translate.Envoy, translate.Proxyless} {
			if _, err := translate.Translate(mesh, s.Name, f, translate.Options{}); err != nil {
				return err
			}
		}
	}
	return nil
}
