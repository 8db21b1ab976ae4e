package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hopguard/hopguard/policy/signing"
)

// newKeygenCmd is `hopguard keygen --out DIR`: it writes a new ed25519 key
// pair into DIR and prints the key id and both paths. It never overwrites
// an existing key; a missing --out is a usage error (exit 2).
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
