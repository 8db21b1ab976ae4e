// Package bootstrap renders the Envoy bootstrap of a sidecar that takes its
// configuration from hopguard's control plane: the node identity the control
// plane keys snapshots on, ADS over one static cluster, and the admin
// listener. Everything else — the inbound (15006) and outbound (15001)
// listeners, routes, clusters including hopguard-extproc (the ext_proc
// server, built by controlplane/translate from MeshConfig extProc.address),
// endpoints — arrives over ADS, so a budget change never needs a new
// bootstrap.
package bootstrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"sigs.k8s.io/yaml"
)

// XDSCluster is the name of the static cluster that reaches the control plane.
const XDSCluster = "hopguard-xds"

// DefaultAdminPort is the admin listener's port when Options.AdminPort is 0.
const DefaultAdminPort = 9901

// ErrInvalid is wrapped by errors about unusable options.
var ErrInvalid = errors.New("bootstrap: invalid options")

// Options describe one sidecar. The zero value of an optional field means
// its default.
type Options struct {
	// Service is the service the sidecar fronts: the xDS Node.cluster, which
	// selects the configuration the control plane serves (required).
	Service string
	// NodeID is the xDS Node.id, unique per sidecar (default "<service>-sidecar").
	NodeID string
	// XDSAddr is the control plane's host:port (required). An IP gives a
	// STATIC cluster, a name a STRICT_DNS one.
	XDSAddr string
	// AdminPort is the admin listener's port on 127.0.0.1 (default
	// DefaultAdminPort, at most 65535).
	AdminPort uint32
	// Region, Zone and SubZone are the sidecar's locality (Node.locality),
	// which the control plane reports per node; all empty means none.
	Region, Zone, SubZone string
	// XDSCA, when set, makes Envoy reach the control plane over TLS,
	// verifying its certificate against this CA bundle (a path Envoy
	// reads). XDSCert and XDSKey, both or neither, are the sidecar's own
	// certificate for a control plane that requires mutual TLS.
	// XDSServerName is the name the certificate must carry (default: the
	// host of XDSAddr, a DNS name or an IP address).
	XDSCA, XDSCert, XDSKey, XDSServerName string
}

// Render returns the bootstrap of the sidecar described by opts. It returns
// an error wrapping ErrInvalid, naming every problem, when opts are
// unusable. The result passes ValidateAll; the caller owns it.
func Render(opts Options) (*bootstrapv3.Bootstrap, error) {
	var errs []error
	if opts.Service == "" {
		errs = append(errs, fmt.Errorf("%w: service is required", ErrInvalid))
	}
	if opts.AdminPort > 65535 {
		errs = append(errs, fmt.Errorf("%w: admin port %d is above 65535", ErrInvalid, opts.AdminPort))
	}
	host, portText, err := net.SplitHostPort(opts.XDSAddr)
	port, perr := strconv.ParseUint(portText, 10, 16)
	switch {
	case opts.XDSAddr == "":
		errs = append(errs, fmt.Errorf("%w: xds address is required", ErrInvalid))
	case err != nil || host == "":
		errs = append(errs, fmt.Errorf("%w: xds address %q is not host:port", ErrInvalid, opts.XDSAddr))
	case perr != nil || port == 0:
		errs = append(errs, fmt.Errorf("%w: xds address %q has no valid port", ErrInvalid, opts.XDSAddr))
	case !isIP(host) && !isDNSName(host):
		errs = append(errs, fmt.Errorf("%w: xds address %q: host is neither an IP address nor a DNS name", ErrInvalid, opts.XDSAddr))
	}
	if (opts.XDSCert == "") != (opts.XDSKey == "") {
		errs = append(errs, fmt.Errorf("%w: an xds client certificate and key go together", ErrInvalid))
	}
	if opts.XDSCA == "" && (opts.XDSCert != "" || opts.XDSServerName != "") {
		errs = append(errs, fmt.Errorf("%w: TLS to the control plane needs the CA that verifies it (--xds-ca)", ErrInvalid))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	nodeID := opts.NodeID
	if nodeID == "" {
		nodeID = opts.Service + "-sidecar"
	}
	adminPort := opts.AdminPort
	if adminPort == 0 {
		adminPort = DefaultAdminPort
	}

	http2, err := anypb.New(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{
				// An ADS stream is silent while nothing changes: HTTP/2 pings
				// notice a control plane that hangs, or a flow a middlebox
				// dropped, in 40 s rather than at the kernel's TCP keepalive
				// (hours), and Envoy reconnects. The control plane allows
				// pings every 10 s.
				ConnectionKeepalive: &corev3.KeepaliveSettings{
					Interval: durationpb.New(30 * time.Second),
					Timeout:  durationpb.New(10 * time.Second),
				},
			}},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	discovery := clusterv3.Cluster_STRICT_DNS
	if isIP(host) {
		discovery = clusterv3.Cluster_STATIC
	}
	var locality *corev3.Locality
	if opts.Region != "" || opts.Zone != "" || opts.SubZone != "" {
		locality = &corev3.Locality{Region: opts.Region, Zone: opts.Zone, SubZone: opts.SubZone}
	}
	ads := &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
	b := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{
			Id:       nodeID,
			Cluster:  opts.Service,
			Locality: locality,
		},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSCluster},
				}}},
			},
			LdsConfig: ads,
			CdsConfig: ads,
		},
		// The only static cluster reaches the control plane; the ext_proc
		// cluster (hopguard-extproc) comes over CDS with the rest.
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{{
			Name:                 XDSCluster,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: discovery},
			ConnectTimeout:       durationpb.New(time.Second),
			TypedExtensionProtocolOptions: map[string]*anypb.Any{
				"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": http2,
			},
			LoadAssignment: &endpointv3.ClusterLoadAssignment{
				ClusterName: XDSCluster,
				Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: socketAddress(host, uint32(port)),
					}},
				}}}},
			},
		}}},
		Admin: &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", adminPort)},
	}
	if opts.XDSCA != "" {
		ts, err := xdsTLS(opts, host)
		if err != nil {
			return nil, err
		}
		b.StaticResources.Clusters[0].TransportSocket = ts
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return b, nil
}

// xdsTLS is the transport socket of the xDS cluster under TLS: the
// control plane's certificate is verified against opts.XDSCA and must name
// the server (a DNS SAN, or an IP SAN when the host is an address), HTTP/2
// is negotiated by ALPN, and the sidecar's own certificate is presented
// when given.
func xdsTLS(opts Options, host string) (*corev3.TransportSocket, error) {
	name := opts.XDSServerName
	if name == "" {
		name = host
	}
	san := &tlsv3.SubjectAltNameMatcher{
		SanType: tlsv3.SubjectAltNameMatcher_DNS,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: name}},
	}
	if isIP(name) {
		san.SanType = tlsv3.SubjectAltNameMatcher_IP_ADDRESS
	}
	common := &tlsv3.CommonTlsContext{
		AlpnProtocols: []string{"h2"},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa:                 &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: opts.XDSCA}},
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{san},
		}},
	}
	if opts.XDSCert != "" {
		common.TlsCertificates = []*tlsv3.TlsCertificate{{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: opts.XDSCert}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: opts.XDSKey}},
		}}
	}
	up := &tlsv3.UpstreamTlsContext{CommonTlsContext: common}
	if !isIP(name) {
		up.Sni = name
	}
	typed, err := anypb.New(up)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: typed}}, nil
}

func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// isDNSName reports whether h is a DNS name Envoy can resolve: dot-separated
// labels, an optional trailing dot.
func isDNSName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if !isLabel(label) {
			return false
		}
	}
	return true
}

// isLabel reports whether s is one DNS label: 1–63 letters, digits and '-',
// neither first nor last a '-'.
func isLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// YAML renders b as Envoy reads it: proto field names, keys sorted, so equal
// bootstraps render to equal bytes.
func YAML(b *bootstrapv3.Bootstrap) ([]byte, error) {
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	// Round-trip through a generic value so the YAML keys come out sorted
	// and stable.
	var v any
	if err := json.Unmarshal(j, &v); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return out, nil
}
