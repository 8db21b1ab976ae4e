package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/configdump"
	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/controlplane/translate"
	"github.com/hopguard/hopguard/controlplane/xds"
)

func newDriftCmd(env Env, _ *globalFlags) *cobra.Command {
	var (
		dir, dump, node, service, format string
		opts                             translate.Options
		timeout                          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "drift --config DIR --envoy-config-dump FILE|URL",
		Short: "Compare a real Envoy's /config_dump with what the control plane would serve it (exit 1 on drift)",
		Long: `drift reads an Envoy config dump (a file, or the admin URL, e.g.
http://127.0.0.1:9901/config_dump?include_eds) and renders what hopguard's
control plane would serve that node from --config. It prints, per resource,
what is missing from the dump, what the dump has that is not served, and the
fields that differ (-expected +running), and the snapshot versions. The node's
service comes from the dump's bootstrap node.cluster unless --service is set.
Exit 0: the node runs exactly what is declared; 1: drift; 2: bad input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("usage: --format must be text or json, got %q", format)
			}
			raw, err := readDump(cmd.Context(), dump, timeout)
			if err != nil {
				return err
			}
			d, err := configdump.Parse(raw)
			if err != nil {
				return err
			}
			if service != "" {
				d.Cluster = service
			}
			if node != "" {
				d.NodeID = node
			}
			if d.Cluster == "" {
				return errors.New("usage: the dump names no node.cluster; pass --service")
			}
			cfg, vs, err := v1alpha1.Load(dir)
			if err != nil {
				return err
			}
			if errs := vs.Errors(); len(errs) > 0 {
				return fmt.Errorf("drift: --config %s is invalid (run hopguard validate): %w", dir, errs)
			}
			mesh, err := ir.Build(cfg)
			if err != nil {
				return err
			}
			if mesh.Service(d.Cluster) == nil {
				fmt.Fprintf(env.Stderr, "note: service %q is not declared in %s: compared with what an undeclared node gets (outbound routes to every service, no inbound listener)\n", d.Cluster, dir)
			}
			want, err := translate.Translate(mesh, d.Cluster, translate.Envoy, opts)
			if err != nil {
				return err
			}
			version, err := xds.Version(want)
			if err != nil {
				return err
			}
			rep := configdump.Compare(d, want, version)
			if err := printDrift(env.Stdout, rep, format); err != nil {
				return err
			}
			if rep.Drifted() {
				return errFindings
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "config", "", "directory of budget YAML the control plane serves (required)")
	cmd.Flags().StringVar(&dump, "envoy-config-dump", "", "config dump JSON: a file path, or an http(s) URL of Envoy's admin /config_dump (required)")
	cmd.Flags().StringVar(&node, "node", "", "node id to report (default: from the dump)")
	cmd.Flags().StringVar(&service, "service", "", "the node's service (default: the dump's node.cluster)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "bound on fetching a URL")
	cmd.Flags().Uint32Var(&opts.InboundPort, "inbound-port", 0, "sidecar inbound listener port, as given to hopguard bootstrap (0: default 15006)")
	cmd.Flags().Uint32Var(&opts.OutboundPort, "outbound-port", 0, "sidecar outbound listener port (0: default 15001)")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.MarkFlagRequired("envoy-config-dump")
	return cmd
}

// readDump reads a file, or GETs an http(s) URL within timeout.
func readDump(ctx context.Context, src string, timeout time.Duration) ([]byte, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("drift: %w", err)
		}
		return b, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, fmt.Errorf("drift: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("drift: fetch config dump: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("drift: fetch config dump: %s: HTTP %d", src, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("drift: read config dump: %w", err)
	}
	return b, nil
}

func printDrift(w io.Writer, r *configdump.Report, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(w, "node %s (service %s): expected version %s, %d resources compared\n", r.NodeID, r.Service, r.ExpectedVersion, r.Compared)
	for _, typ := range []string{configdump.TypeListener, configdump.TypeRoute, configdump.TypeCluster, configdump.TypeEndpoint} {
		for _, v := range r.DumpVersions[typ] {
			if v != r.ExpectedVersion {
				fmt.Fprintf(w, "VERSION  %s: the dump runs %q\n", typ, v)
			}
		}
	}
	for _, d := range r.Differences {
		fmt.Fprintf(w, "%-9s %s %s\n", strings.ToUpper(d.Status), d.Type, d.Name)
		if d.Diff != "" {
			for _, line := range strings.Split(strings.TrimRight(d.Diff, "\n"), "\n") {
				fmt.Fprintf(w, "    %s\n", line)
			}
		}
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, "not compared: %s\n", strings.Join(r.Skipped, ", "))
	}
	if r.Drifted() {
		_, err := fmt.Fprintf(w, "drift: %d resource(s) differ\n", len(r.Differences))
		return err
	}
	_, err := fmt.Fprintln(w, "no drift")
	return err
}
