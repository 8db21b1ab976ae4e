package controlplane

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hopguard/hopguard/controlplane/xds/xdstest"
	"github.com/hopguard/hopguard/internal/testutil/testcerts"
	"github.com/hopguard/hopguard/internal/tlsfiles"
)

// TestMutualTLS: with Options.TLS requiring client certificates, a node
// with a certificate of the CA gets its configuration; a plaintext node,
// and a node without a certificate, get nothing.
func TestMutualTLS(t *testing.T) {
	certs := testcerts.Write(t, t.TempDir(), "cp")
	scfg, err := tlsfiles.Server{Cert: certs.ServerCert, Key: certs.ServerKey, ClientCA: certs.CA}.Config()
	if err != nil {
		t.Fatal(err)
	}
	cp := start(t, Options{ConfigDir: configDir(t), TLS: scfg})
	node := &corev3.Node{Id: "ledger-1", Cluster: "ledger", UserAgentName: "envoy"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ccfg, err := tlsfiles.Client{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	c, err := xdstest.DialWith(ctx, cp.XDSAddr(), node, false, credentials.NewTLS(ccfg))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(resourcev3.ListenerType); err != nil {
		t.Fatal(err)
	}
	if r := waitResponse(t, c, resourcev3.ListenerType, ""); len(r.Names) == 0 {
		t.Errorf("mutual TLS node got no listeners: %+v", r)
	}

	noCert, err := tlsfiles.Client{CA: certs.CA}.Config()
	if err != nil {
		t.Fatal(err)
	}
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":          insecure.NewCredentials(),
		"TLS without a cert": credentials.NewTLS(noCert),
	} {
		sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
		c, err := xdstest.DialWith(sctx, cp.XDSAddr(), node, false, creds)
		if err == nil {
			if err = c.Subscribe(resourcev3.ListenerType); err == nil {
				_, err = c.WaitFor(sctx, resourcev3.ListenerType, "")
			}
			c.Close()
		}
		scancel()
		if err == nil {
			t.Errorf("%s node got configuration", name)
		}
	}
}
