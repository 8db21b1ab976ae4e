package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
)

func newRenderCmd(env Env) *cobra.Command {
	var (
		dir       string
		service   string
		proxyless bool
		opts      translate.Options
	)
	cmd := &cobra.Command{
		Use:   "render --config DIR --service NAME [--proxyless]",
		Short: "Print the xDS resources a node of a service receives, as YAML",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, vs, err := v1alpha1.Load(dir)
			if err != nil {
				return err
			}
			if errs := vs.Errors(); len(errs) > 0 {
				for _, v := range errs {
					fmt.Fprintln(cmd.ErrOrStderr(), v.String())
				}
				return errFindings
			}
			mesh, err := ir.Build(cfg)
			if err != nil {
				return err
			}
			if mesh.Service(service) == nil {
				// Valid (a node of an undeclared service gets outbound
				// config), but most often a typo.
				fmt.Fprintf(cmd.ErrOrStderr(), "note: service %q is not declared in %s: rendering what an undeclared node gets (outbound routes to every service, no inbound listener)\n", service, dir)
			}
			flavor := translate.Envoy
			if proxyless {
				flavor = translate.Proxyless
			}
			res, err := translate.Translate(mesh, service, flavor, opts)
			if err != nil {
				return err
			}
			b, err := res.YAML()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "config", "", "directory (or file) of budget YAML (required)")
	cmd.Flags().StringVar(&service, "service", "", "the node's service name, as in the xDS Node.cluster (required)")
	cmd.Flags().BoolVar(&proxyless, "proxyless", false, "render for a proxyless gRPC client instead of an Envoy sidecar")
	cmd.Flags().Uint32Var(&opts.InboundPort, "inbound-port", 0, "sidecar inbound listener port (0: default 15006)")
	cmd.Flags().Uint32Var(&opts.OutboundPort, "outbound-port", 0, "sidecar outbound listener port (0: default 15001)")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.MarkFlagRequired("service")
	return cmd
}
