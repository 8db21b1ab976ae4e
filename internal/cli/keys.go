package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hopguard/hopguard/controlplane/audit"
	"github.com/hopguard/hopguard/policy/signing"
)

func newKeygenCmd(env Env, _ *globalFlags) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out DIR",
		Short: "Write an ed25519 key pair for signing policy bundles and manifests",
		Long: `keygen writes DIR/` + signing.PrivateKeyFile + ` (PKCS#8 PEM, mode 0600) for the control
plane's --signing-key and DIR/` + signing.PublicKeyFile + ` (PKIX PEM) for the filters'
--verify-key. It never overwrites an existing key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("usage: --out DIR is required")
			}
			priv, pub, id, err := signing.WriteKeyPair(out)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(env.Stdout, "key id:      %s\nprivate key: %s (keep secret; --signing-key)\npublic key:  %s (--verify-key)\n", id, priv, pub)
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write the key pair into (created 0700 when missing)")
	return cmd
}

func newAuditCmd(env Env, _ *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Inspect the control plane's hash-chained audit log",
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
