package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/hopguard/hopguard/api/v1alpha1"
	"github.com/hopguard/hopguard/controlplane/lint"
)

// newLintCmd is `hopguard lint`: it loads the budgets under its arguments
// and prints the findings of controlplane/lint. Exit 1 when a finding is an
// error or the configuration is invalid, 0 otherwise (warnings alone), 2 on
// usage and read errors.
func newLintCmd(env Env) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "lint PATH... [--format text|json]",
		Short: "Find budgets that are valid alone but wrong together (retry amplification, timeout inversions, ...)",
		Long: `lint checks what the budgets declare across services: retries multiplied along
dependsOn paths, deadlines that disagree across a call, side effects retried
without a key on every attempt, different retry budgets on one cluster, and
dependency cycles (docs/lint.md explains each rule). One line per finding:

  file:line:col: severity: rule: path: message (fix: ...)

or, with --format json, one JSON array of {rule, severity, pos: {file, line,
col}, path, message, fix}. It exits 1 when a finding is an error; warnings
alone exit 0. An invalid configuration is reported as by 'hopguard validate'
and exits 1.`,
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
			if len(vs.Errors()) > 0 {
				for _, v := range vs {
					fmt.Fprintln(out, v.String())
				}
				return errFindings
			}
			findings := lint.Lint(cfg)
			if err := printFindings(out, format, findings); err != nil {
				return err
			}
			if format == "text" {
				errs := 0
				for _, f := range findings {
					if f.Severity == lint.SeverityError {
						errs++
					}
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "lint: %d errors, %d warnings\n", errs, len(findings)-errs)
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

// printFindings writes findings as text lines or as one JSON array ([] when
// there are none).
func printFindings(out io.Writer, format string, findings []lint.Finding) error {
	if format == "json" {
		if findings == nil {
			findings = []lint.Finding{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(findings)
	}
	for _, f := range findings {
		if _, err := fmt.Fprintln(out, f.String()); err != nil {
			return err
		}
	}
	return nil
}
