package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hopguard/hopguard/controlplane/bootstrap"
)

func newBootstrapCmd(env Env) *cobra.Command {
	var o bootstrap.Options
	cmd := &cobra.Command{
		Use:   "bootstrap --service NAME --xds-addr ADDR",
		Short: "Print the Envoy bootstrap (YAML) of a sidecar that takes its config from hopguard",
		Long: `bootstrap prints an Envoy bootstrap for a sidecar of --service: the node identity
the control plane serves it by (Node.cluster = the service), ADS to the control
plane at --xds-addr, and the admin listener on 127.0.0.1. Listeners, routes,
clusters (hopguard-extproc included) and endpoints all arrive over ADS.

  hopguard bootstrap --service payments --xds-addr 127.0.0.1:18000 > envoy.yaml
  envoy -c envoy.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := bootstrap.Render(o)
			if err != nil {
				return fmt.Errorf("usage: %w", err)
			}
			y, err := bootstrap.YAML(b)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(y)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Service, "service", "", "the service the sidecar fronts (xDS Node.cluster; required)")
	f.StringVar(&o.XDSAddr, "xds-addr", "", "host:port of the control plane's xDS server (required)")
	f.StringVar(&o.NodeID, "node-id", "", "xDS Node.id, unique per sidecar (default <service>-sidecar)")
	f.Uint32Var(&o.AdminPort, "admin-port", bootstrap.DefaultAdminPort, "port of Envoy's admin listener on 127.0.0.1")
	f.StringVar(&o.Region, "region", "", "locality region")
	f.StringVar(&o.Zone, "zone", "", "locality zone")
	f.StringVar(&o.SubZone, "sub-zone", "", "locality sub-zone")
	_ = cmd.MarkFlagRequired("service")
	_ = cmd.MarkFlagRequired("xds-addr")
	return cmd
}
