// Package bundle is the signed policy bundle the control plane distributes
// to ext_proc servers, and the signed runtime manifest it keeps per node.
//
// A bundle's wire form is the JSON encoding Marshal produces, and nothing
// else: Verifier.Accept re-encodes what it decoded and refuses input that
// is not byte for byte that canonical form, so no change to a signed
// bundle — not a flipped letter case, an added field or a whitespace —
// goes unnoticed, even one that would decode to the same values.
package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hopguard/hopguard/policy"
	"github.com/hopguard/hopguard/policy/signing"
)

// SchemaRev names the configuration schema and the revision of the bundle
// encoding. It changes when either changes incompatibly. @2 added the
// idempotency fingerprint fields, which filters of @1 refuse as unknown.
const SchemaRev = "hopguard.dev/v1alpha1@2"

// Signature domains: a bundle signature cannot pass as a manifest's.
const (
	bundleDomain   = "hopguard-bundle-v1"
	manifestDomain = "hopguard-manifest-v1"
)

// Refusal reasons, wrapped by Verifier.Accept's errors.
var (
	ErrMalformed        = errors.New("bundle: malformed")
	ErrUnsigned         = errors.New("bundle: unsigned")
	ErrBadSignature     = errors.New("bundle: bad signature")
	ErrHashMismatch     = errors.New("bundle: policy_hash does not match the policies")
	ErrWrongEnvironment = errors.New("bundle: wrong environment")
	ErrStale            = errors.New("bundle: generation not newer than the one in force")
)

// ErrUnchanged is returned by Verifier.Accept for a verified bundle whose
// policies are those already in force, whatever its generation: the same
// bundle sent again after a reconnect, or by another control-plane
// replica, which numbers generations on its own. It is not a refusal:
// nothing needs installing.
var ErrUnchanged = errors.New("bundle: same policies as the bundle in force")

// Reason returns the metric label of a refusal: malformed, unsigned,
// signature, hash, environment, stale, or other ("unchanged" for
// ErrUnchanged, which is not a refusal).
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrUnsigned):
		return "unsigned"
	case errors.Is(err, ErrBadSignature):
		return "signature"
	case errors.Is(err, ErrHashMismatch):
		return "hash"
	case errors.Is(err, ErrWrongEnvironment):
		return "environment"
	case errors.Is(err, ErrStale):
		return "stale"
	case errors.Is(err, ErrUnchanged):
		return "unchanged"
	}
	return "other"
}

// Bundle is the compiled route policies with what a verifier needs to
// decide whether to enforce them.
type Bundle struct {
	// PolicyHash is PolicyHash(&Policies).
	PolicyHash string `json:"policy_hash"`
	// SchemaRev is SchemaRev of the control plane that built the bundle.
	SchemaRev string `json:"schema_rev"`
	// Environment is the MeshConfig's environment.
	Environment string `json:"environment"`
	// Generation increases with every bundle a control plane distributes.
	Generation uint64 `json:"generation"`
	// IssuedAt is when the bundle was built (UTC).
	IssuedAt time.Time `json:"issued_at"`
	// SignedBy is the signing key's id; empty when unsigned.
	SignedBy string `json:"signed_by"`
	// Signature is the base64 ed25519 signature over the canonical encoding
	// of the bundle with Signature empty; empty when unsigned.
	Signature string `json:"signature"`
	// Policies are what the filters enforce.
	Policies policy.Bundle `json:"policies"`
}

// PolicyHash is a hash over the canonical encoding of p (routes in ID
// order): the same policies give the same hash, whatever the order or
// formatting of the YAML they came from.
func PolicyHash(p *policy.Bundle) string {
	c := *p
	c.Routes = slices.Clone(p.Routes)
	slices.SortFunc(c.Routes, func(a, b policy.Route) int { return strings.Compare(a.ID, b.ID) })
	// encoding/json writes struct fields in declaration order and policy
	// holds no maps, so the encoding is canonical; it cannot fail on these
	// types.
	b, _ := json.Marshal(&c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// New returns an unsigned bundle of p.
func New(p policy.Bundle, schemaRev, env string, gen uint64, now time.Time) *Bundle {
	return &Bundle{PolicyHash: PolicyHash(&p), SchemaRev: schemaRev, Environment: env, Generation: gen,
		IssuedAt: now.UTC().Round(0), Policies: p}
}

// signedBytes is the canonical encoding of b without its signature.
func (b *Bundle) signedBytes() ([]byte, error) {
	c := *b
	c.Signature = ""
	raw, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("bundle: encode: %w", err)
	}
	return raw, nil
}

// Sign signs b with k, setting SignedBy and Signature.
func (b *Bundle) Sign(k *signing.PrivateKey) error {
	b.SignedBy = k.ID()
	msg, err := b.signedBytes()
	if err != nil {
		return err
	}
	b.Signature = base64.StdEncoding.EncodeToString(k.Sign(bundleDomain, msg))
	return nil
}

// Marshal returns the canonical wire form of b.
func Marshal(b *Bundle) ([]byte, error) {
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("bundle: encode: %w", err)
	}
	return raw, nil
}

// Unmarshal decodes raw, which must be in canonical form (see the package
// comment).
func Unmarshal(raw []byte) (*Bundle, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the bundle", ErrMalformed)
	}
	again, err := json.Marshal(&b)
	if err != nil || !bytes.Equal(again, raw) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	return &b, nil
}

// Verifier accepts bundles signed by one of its keys, for its environment,
// newer than the last one it accepted. It is safe for concurrent use.
type Verifier struct {
	env           string
	keys          map[string]*signing.PublicKey
	allowUnsigned bool

	mu   sync.Mutex
	last uint64
	hash string // PolicyHash of the bundle in force
}

// NewVerifier returns a verifier for environment env trusting keys (several
// during a key rotation).
func NewVerifier(env string, keys ...*signing.PublicKey) *Verifier {
	v := &Verifier{env: env, keys: map[string]*signing.PublicKey{}}
	for _, k := range keys {
		v.keys[k.ID()] = k
	}
	return v
}

// Generation returns the generation in force: the highest generation of
// a verified bundle carrying the policies in force (0 before the first).
func (v *Verifier) Generation() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last
}

// AllowUnsigned makes the verifier accept unsigned bundles (every other
// check still applies). For trials only: anyone who can reach the filter's
// subscription can then change what it enforces.
func (v *Verifier) AllowUnsigned() { v.allowUnsigned = true }

// Accept decodes and verifies raw and, when it passes, records its
// generation as the one in force and returns it. A refused bundle changes
// nothing; the error wraps one of the Err values of this package. A bundle
// that verifies and carries the policies in force returns it with an error
// wrapping ErrUnchanged: nothing is installed, and its generation, when
// higher, becomes the one in force (so no older bundle can roll back past
// it). Only a bundle with other policies must be newer than the one in
// force.
func (v *Verifier) Accept(raw []byte) (*Bundle, error) {
	b, err := Unmarshal(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case b.Signature == "" && b.SignedBy == "":
		if !v.allowUnsigned {
			return nil, fmt.Errorf("%w: generation %d carries no signature", ErrUnsigned, b.Generation)
		}
	default:
		k := v.keys[b.SignedBy]
		if k == nil {
			return nil, fmt.Errorf("%w: signed by %q, which is not a trusted key", ErrBadSignature, b.SignedBy)
		}
		sig, err := base64.StdEncoding.DecodeString(b.Signature)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		msg, err := b.signedBytes()
		if err != nil {
			return nil, err
		}
		if err := k.Verify(bundleDomain, msg, sig); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
	}
	if got := PolicyHash(&b.Policies); got != b.PolicyHash {
		return nil, fmt.Errorf("%w: says %s, policies hash to %s", ErrHashMismatch, b.PolicyHash, got)
	}
	for i := range b.Policies.Routes {
		if err := b.Policies.Routes[i].Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	if b.Environment != v.env {
		return nil, fmt.Errorf("%w: bundle for %q, this filter enforces %q", ErrWrongEnvironment, b.Environment, v.env)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.hash != "" && b.PolicyHash == v.hash {
		// A higher generation still raises the floor: a bundle older than
		// it, with other policies, stays refused as stale.
		in := v.last
		v.last = max(v.last, b.Generation)
		return b, fmt.Errorf("%w: generation %d, in force %d, policy_hash %s", ErrUnchanged, b.Generation, in, b.PolicyHash)
	}
	if b.Generation <= v.last {
		return nil, fmt.Errorf("%w: generation %d, in force %d", ErrStale, b.Generation, v.last)
	}
	v.last, v.hash = b.Generation, b.PolicyHash
	return b, nil
}

// Locality is a node's region, zone and sub-zone.
type Locality struct {
	Region  string `json:"region"`
	Zone    string `json:"zone"`
	SubZone string `json:"sub_zone"`
}

// Manifest says what one xDS node runs and what it should run, signed by
// the control plane.
type Manifest struct {
	// Service and Node identify the node (Node.cluster and Node.id).
	Service string `json:"service"`
	Node    string `json:"node"`
	// Locality is the node's reported locality.
	Locality Locality `json:"locality"`
	// SnapshotVersion is the version the node acknowledged for every type
	// it asked for ("" when they differ or none was acknowledged).
	SnapshotVersion string `json:"snapshot_version"`
	// ConfigHash is the hash of the resources rendered for the node: the
	// version it should run.
	ConfigHash string `json:"config_hash"`
	// Connected is whether the node has an open xDS stream; Drifted is the
	// control plane's verdict (it NACKed ConfigHash, or has not acknowledged
	// it within the drift grace while connected). A connected node running
	// another version and not drifted is still applying a change.
	Connected bool `json:"connected,omitempty"`
	Drifted   bool `json:"drifted,omitempty"`
	// PolicyHash, Generation and ExpectedEnv describe the bundle in force.
	PolicyHash  string `json:"policy_hash"`
	Generation  uint64 `json:"generation"`
	SchemaRev   string `json:"schema_rev"`
	ExpectedEnv string `json:"expected_env"`
	// IssuedAt is when the manifest was made (UTC).
	IssuedAt time.Time `json:"issued_at"`
	// SignedBy and Signature as in Bundle.
	SignedBy  string `json:"signed_by"`
	Signature string `json:"signature"`
}

func (m *Manifest) signedBytes() ([]byte, error) {
	c := *m
	c.Signature = ""
	raw, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("bundle: encode manifest: %w", err)
	}
	return raw, nil
}

// Sign signs m with k.
func (m *Manifest) Sign(k *signing.PrivateKey) error {
	m.IssuedAt = m.IssuedAt.UTC().Round(0)
	m.SignedBy = k.ID()
	msg, err := m.signedBytes()
	if err != nil {
		return err
	}
	m.Signature = base64.StdEncoding.EncodeToString(k.Sign(manifestDomain, msg))
	return nil
}

// Verify checks m's signature against pub.
func (m *Manifest) Verify(pub *signing.PublicKey) error {
	if m.Signature == "" {
		return fmt.Errorf("%w: manifest of node %q", ErrUnsigned, m.Node)
	}
	if m.SignedBy != pub.ID() {
		return fmt.Errorf("%w: manifest signed by %q, verifying with %q", ErrBadSignature, m.SignedBy, pub.ID())
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	msg, err := m.signedBytes()
	if err != nil {
		return err
	}
	if err := pub.Verify(manifestDomain, msg, sig); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return nil
}
