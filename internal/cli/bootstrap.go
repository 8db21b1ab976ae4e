package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hopguard/hopguard/controlplane/bootstrap"
)

// newBootstrapCmd is `hopguard bootstrap`: it prints the Envoy bootstrap of
// one sidecar as YAML on stdout. Unusable options are usage errors (exit 2).
func newBootstrapCmd(env Env) *cobra.Command {
	var o bootstrap.Options
	cmd := &cobra.Command{
		Use:   "bootstrap --service NAME --xds-addr ADDR [--admin-port N] [--node-id ID] [--region R --zone Z --sub-zone S]",
		Short: "Print the Envoy bootstrap (YAML) of a sidecar that takes its config from hopguard",
		Long: `bootstrap prints an Envoy bootstrap for a sidecar of --service: the node identity
the control plane serves it by (Node.cluster = the service, Node.id = --node-id),
ADS to the control plane at --xds-addr (an IP gives a STATIC cluster, a DNS name
a STRICT_DNS one), and Envoy's admin listener on 127.0.0.1:--admin-port.
Listeners (inbound 15006, outbound 15001), routes, clusters (the ext_proc
server's hopguard-extproc included) and endpoints all arrive over ADS.

  hopguard bootstrap --service payments --xds-addr 127.0.0.1:18000 > bootstrap.yaml
  envoy -c bootstrap.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := bootstrap.Render(o)
			if errors.Is(err, bootstrap.ErrInvalid) {
				return fmt.Errorf("usage: %w", err)
			}
			if err != nil {
				return err
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
	f.StringVar(&o.Region, "region", "", "locality region of the sidecar")
	f.StringVar(&o.Zone, "zone", "", "locality zone of the sidecar")
	f.StringVar(&o.SubZone, "sub-zone", "", "locality sub-zone of the sidecar")
	f.StringVar(&o.XDSCA, "xds-ca", "", "path (as Envoy sees it) of the CA bundle that verifies the control plane's certificate: reach it over TLS")
	f.StringVar(&o.XDSCert, "xds-cert", "", "path of the sidecar's client certificate, for a control plane that requires mutual TLS")
	f.StringVar(&o.XDSKey, "xds-key", "", "path of the private key of --xds-cert")
	f.StringVar(&o.XDSServerName, "xds-server-name", "", "name the control plane's certificate must carry (default: the host of --xds-addr)")
	return cmd
}
