package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hopguard/hopguard/controlplane/audit"
)

// newAuditCmd is `hopguard audit`, whose one subcommand `verify FILE`
// checks the hash chain of an audit log: exit 0 and "N records, chain
// intact"; exit 1 and the first bad line when a record was edited,
// removed, reordered, duplicated or truncated; exit 2 on usage errors or
// an unreadable file.
func newAuditCmd(env Env, _ *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Inspect the control plane's hash-chained audit log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return errors.New("usage: hopguard audit verify FILE")
		},
	}
	verify := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check that no record was edited, removed, reordered or truncated (exit 1 and the first bad line if one was)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("audit: %w", err)
			}
			defer f.Close()
			n, err := audit.Verify(f)
			var ve *audit.VerifyError
			switch {
			case errors.As(err, &ve):
				fmt.Fprintf(env.Stdout, "%s:%d: %s (%d records intact before it)\n", args[0], ve.Line, ve.Reason, n)
				return errFindings
			case err != nil:
				return err
			}
			_, err = fmt.Fprintf(env.Stdout, "%s: %d records, chain intact\n", args[0], n)
			return err
		},
	}
	cmd.AddCommand(verify)
	return cmd
}
