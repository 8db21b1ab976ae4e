package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/lint"
)

func newLintCmd(env Env) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "lint PATH... [--format text|json]",
		Short: "Find budgets that are valid alone but wrong together (retry amplification, timeout inversions, ...)",
		Long: `lint checks what the budgets declare across services: retries multiplied along
dependsOn paths, callee deadlines longer than their callers can wait, side
effects retried without a key on every attempt, different retry budgets on one
cluster, and dependency cycles. One line per finding:

  file:line:col: severity: rule: path: message (fix: ...)

It exits 1 when a finding is an error; warnings alone exit 0. An invalid
configuration is reported as by 'hopguard validate' and exits 1.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, paths []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("usage: --format must be text or json, got %q", format)
			}
			cfg, vs, err := v1alpha1.Load(paths...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if errs := vs.Errors(); len(errs) > 0 {
				for _, v := range errs {
					fmt.Fprintln(out, v.String())
				}
				return errFindings
			}
			findings := lint.Lint(cfg)
			if format == "json" {
				if findings == nil {
					findings = []lint.Finding{}
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(findings); err != nil {
					return err
				}
			} else {
				for _, f := range findings {
					fmt.Fprintln(out, f.String())
				}
			}
			if lint.HasErrors(findings) {
				return errFindings
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}
