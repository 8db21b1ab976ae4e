package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
	"sigs.k8s.io/yaml"

	"github.com/hopguard/hopguard/controlplane/bootstrap"
)

// execute runs cmd alone with args and returns what it printed and returned.
func execute(t *testing.T, cmd *cobra.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func TestBootstrapCmd_Success(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want bootstrap.Options
	}{
		{"required flags", []string{"--service", "payments", "--xds-addr", "127.0.0.1:18000"},
			bootstrap.Options{Service: "payments", XDSAddr: "127.0.0.1:18000"}},
		{"every flag", []string{"--service", "orders", "--xds-addr", "hopguard.mesh.svc:18000", "--admin-port", "15000",
			"--node-id", "orders-1", "--region", "eu-west-1", "--zone", "a", "--sub-zone", "r1"},
			bootstrap.Options{Service: "orders", XDSAddr: "hopguard.mesh.svc:18000", AdminPort: 15000, NodeID: "orders-1",
				Region: "eu-west-1", Zone: "a", SubZone: "r1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := execute(t, newBootstrapCmd(Env{}), tc.args...)
			if err != nil {
				t.Fatalf("bootstrap: %v", err)
			}
			j, err := yaml.YAMLToJSON([]byte(out))
			if err != nil {
				t.Fatal(err)
			}
			var got bootstrapv3.Bootstrap
			if err := protojson.Unmarshal(j, &got); err != nil {
				t.Fatalf("output is not an Envoy Bootstrap: %v\n%s", err, out)
			}
			if err := got.ValidateAll(); err != nil {
				t.Errorf("ValidateAll: %v", err)
			}
			want, err := bootstrap.Render(tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&got, want, protocmp.Transform()); diff != "" {
				t.Errorf("printed bootstrap (-got +want):\n%s", diff)
			}
		})
	}
}

func TestBootstrapCmd_Errors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no flags", nil, "service is required"},
		{"no address", []string{"--service", "payments"}, "xds address is required"},
		{"bad address", []string{"--service", "payments", "--xds-addr", "nowhere"}, `xds address "nowhere" is not host:port`},
		{"admin port out of range", []string{"--service", "payments", "--xds-addr", "127.0.0.1:18000", "--admin-port", "70000"}, "admin port 70000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := execute(t, newBootstrapCmd(Env{}), tc.args...)
			if err == nil || !strings.HasPrefix(err.Error(), "usage: ") || !strings.Contains(err.Error(), tc.want) ||
				!errors.Is(err, bootstrap.ErrInvalid) {
				t.Errorf("bootstrap %v: %v, want a usage error containing %q", tc.args, err, tc.want)
			}
			if out != "" {
				t.Errorf("printed %q on a usage error", out)
			}
		})
	}
}
