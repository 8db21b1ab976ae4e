package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hopguard/hopguard/controlplane/admin"
	"github.com/hopguard/hopguard/policy/bundle"
	"github.com/hopguard/hopguard/policy/signing"
)

// adminFlags locate a running control plane's admin API.
type adminFlags struct {
	addr    string
	timeout time.Duration
}

func (f *adminFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.addr, "admin", "127.0.0.1:18080", "admin address of the control plane (host:port or http(s)://host:port)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Second, "bound on the admin call")
}

func (f *adminFlags) url(path string, q url.Values) string {
	base := f.addr
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	u := strings.TrimSuffix(base, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// call makes one admin request and decodes a JSON answer into v. A non-2xx
// answer is an error carrying the server's message.
func (f *adminFlags) call(ctx context.Context, method, path string, q url.Values, v any) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, f.url(path, q), nil)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var p struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &p) == nil && p.Error != "" {
			return fmt.Errorf("%s %s: %s (HTTP %d)", method, path, p.Error, resp.StatusCode)
		}
		return fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("admin: decode %s: %w", path, err)
	}
	return nil
}

func newPinCmd(env Env, _ *globalFlags) *cobra.Command {
	f := &adminFlags{}
	var gen uint64
	var reason string
	cmd := &cobra.Command{
		Use:   "pin --generation N [--reason TEXT]",
		Short: "Serve an earlier accepted generation (the last known-good set) until unpinned",
		Long: `pin makes the control plane serve the configuration it accepted as generation N,
rebuilt from the sources its audit log kept, whatever the configuration
directory holds now. Changes to the directory are still validated and
recorded, and served after 'hopguard unpin'. The pin is recorded in the audit
log and counted in hopguard_manual_overrides_total{kind="pin"}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if gen == 0 {
				return errors.New("usage: --generation N is required (see the audit log or /config)")
			}
			var res admin.OverrideResult
			q := url.Values{"generation": {strconv.FormatUint(gen, 10)}, "reason": {reason}}
			if err := f.call(cmd.Context(), http.MethodPost, "/pin", q, &res); err != nil {
				return err
			}
			_, err := fmt.Fprintf(env.Stdout, "pinned to generation %d, distributed as generation %d\n", gen, res.Generation)
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().Uint64Var(&gen, "generation", 0, "the accepted generation to serve (required)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	return cmd
}

// newOverrideCmd is unpin, freeze and unfreeze: a POST without parameters.
func newOverrideCmd(env Env, use, short, long, path, done string) *cobra.Command {
	f := &adminFlags{}
	var reason string
	cmd := &cobra.Command{
		Use:   use + " [--reason TEXT]",
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res admin.OverrideResult
			if err := f.call(cmd.Context(), http.MethodPost, path, url.Values{"reason": {reason}}, &res); err != nil {
				return err
			}
			_, err := fmt.Fprintf(env.Stdout, "%s, distributed as generation %d\n", done, res.Generation)
			return err
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	return cmd
}

func newUnpinCmd(env Env, _ *globalFlags) *cobra.Command {
	return newOverrideCmd(env, "unpin", "Serve the latest accepted configuration again",
		"unpin ends a pin: the control plane serves the latest configuration accepted from its directory.",
		"/unpin", "unpinned")
}

func newFreezeCmd(env Env, _ *globalFlags) *cobra.Command {
	return newOverrideCmd(env, "freeze", "Refuse side effects on every route not marked critical",
		`freeze distributes a bundle under which every filter refuses side effects on
routes not marked 'critical: true' (reason frozen, HTTP 409 / FAILED_PRECONDITION),
so non-critical writes stop while an incident is handled. Reads and critical
routes are unaffected. Undo with 'hopguard unfreeze'.`,
		"/freeze", "frozen")
}

func newUnfreezeCmd(env Env, _ *globalFlags) *cobra.Command {
	return newOverrideCmd(env, "unfreeze", "Accept side effects on every route again",
		"unfreeze ends a freeze.", "/unfreeze", "unfrozen")
}

func newManifestCmd(env Env, _ *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Show and verify the signed runtime manifests of xDS nodes",
	}
	get := &adminFlags{}
	var format string
	getCmd := &cobra.Command{
		Use:   "get [NODE]",
		Short: "Print the runtime manifest of every node, or of one",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ms, err := fetchManifests(cmd.Context(), get, args)
			if err != nil {
				return err
			}
			return printManifests(env.Stdout, ms, format)
		},
	}
	get.register(getCmd)
	getCmd.Flags().StringVar(&format, "format", "text", "output format: text or json")

	verify := &adminFlags{}
	var keyFiles []string
	verifyCmd := &cobra.Command{
		Use:   "verify --verify-key FILE [NODE]",
		Short: "Verify the signature of every node's manifest, or of one (exit 1 on a bad one)",
		Long: `verify fetches the runtime manifests from the control plane and checks each
signature against the given public keys (several keys during a rotation). A
manifest that is unsigned or whose signature does not verify is reported and
makes the command exit 1. A node the control plane counts as drifted (it
NACKed its expected snapshot, or has not acknowledged it within the drift
grace while connected) is reported as DRIFTED, also with exit 1. A node
still applying a change (connected, within the grace) is APPLYING, and a
node that has disconnected (its manifest is kept for a while) is GONE;
neither fails the command.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(keyFiles) == 0 {
				return errors.New("usage: --verify-key FILE is required")
			}
			var keys []*signing.PublicKey
			for _, p := range keyFiles {
				k, err := signing.LoadPublicKey(p)
				if err != nil {
					return err
				}
				keys = append(keys, k)
			}
			ms, err := fetchManifests(cmd.Context(), verify, args)
			if err != nil {
				return err
			}
			if len(ms) == 0 {
				fmt.Fprintln(env.Stdout, "no manifests: no node has connected to this control plane")
				return nil
			}
			bad := 0
			for _, m := range ms {
				var verr error
				for _, k := range keys {
					if verr = m.Verify(k); verr == nil {
						break
					}
				}
				switch {
				case verr != nil:
					bad++
					fmt.Fprintf(env.Stdout, "BAD      %s: %v\n", m.Node, verr)
				case m.Drifted:
					bad++
					fmt.Fprintf(env.Stdout, "DRIFTED  %s: runs %q, expected %q (signed by %s)\n", m.Node, m.SnapshotVersion, m.ConfigHash, m.SignedBy)
				case !m.Connected:
					fmt.Fprintf(env.Stdout, "GONE     %s: disconnected; last ran %q (signed by %s)\n", m.Node, m.SnapshotVersion, m.SignedBy)
				case m.SnapshotVersion != m.ConfigHash:
					fmt.Fprintf(env.Stdout, "APPLYING %s: runs %q, expected %q, within the drift grace (signed by %s)\n", m.Node, m.SnapshotVersion, m.ConfigHash, m.SignedBy)
				default:
					fmt.Fprintf(env.Stdout, "OK       %s: %s policy %s generation %d (signed by %s)\n", m.Node, m.ConfigHash, m.PolicyHash, m.Generation, m.SignedBy)
				}
			}
			if bad > 0 {
				fmt.Fprintf(env.Stdout, "%d of %d manifests failed\n", bad, len(ms))
				return errFindings
			}
			return nil
		},
	}
	verify.register(verifyCmd)
	verifyCmd.Flags().StringArrayVar(&keyFiles, "verify-key", nil, "public key file (PEM); repeat during a key rotation")
	cmd.AddCommand(getCmd, verifyCmd)
	return cmd
}

func fetchManifests(ctx context.Context, f *adminFlags, args []string) ([]bundle.Manifest, error) {
	if len(args) == 1 {
		var m bundle.Manifest
		if err := f.call(ctx, http.MethodGet, "/manifests/"+nodeSegment(args[0]), nil, &m); err != nil {
			return nil, err
		}
		return []bundle.Manifest{m}, nil
	}
	var ms []bundle.Manifest
	if err := f.call(ctx, http.MethodGet, "/manifests", nil, &ms); err != nil {
		return nil, err
	}
	return ms, nil
}

// nodeSegment escapes a node id for one path segment. Ids made of dots
// alone ("." or "..") are escaped whole, or HTTP clients and routers would
// take them for path navigation.
func nodeSegment(id string) string {
	if strings.Trim(id, ".") == "" && id != "" {
		return strings.Repeat("%2E", len(id))
	}
	return url.PathEscape(id)
}

func printManifests(w io.Writer, ms []bundle.Manifest, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(ms)
	case "text":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tSERVICE\tREGION\tSTATE\tRUNNING\tEXPECTED\tPOLICY\tGEN\tSIGNED BY")
		for _, m := range ms {
			signed := m.SignedBy
			if signed == "" {
				signed = "(unsigned)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", m.Node, m.Service, m.Locality.Region, manifestState(&m),
				orDash(m.SnapshotVersion), orDash(m.ConfigHash), orDash(m.PolicyHash), m.Generation, signed)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("usage: --format must be text or json, got %q", format)
	}
}

// manifestState names a manifest's node state as verify reports it.
func manifestState(m *bundle.Manifest) string {
	switch {
	case m.Drifted:
		return "drifted"
	case !m.Connected:
		return "gone"
	case m.SnapshotVersion != m.ConfigHash:
		return "applying"
	}
	return "ok"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
