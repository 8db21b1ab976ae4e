package xds

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"strings"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/hopguard/hopguard/controlplane/translate"
)

// versionLen is the number of hex characters of a snapshot version: 64 bits
// of sha256 make accidental collisions between two configurations negligible.
const versionLen = 16

// Version returns the snapshot version of a node's resources: a hex sha256
// over every resource's type, name and deterministic proto encoding, types in
// a fixed order and resources in name order. Equal resources give equal
// versions on every replica and after every restart. Duplicate names within
// a type are an error, because the cache would silently keep only one.
func Version(res *translate.Resources) (string, error) {
	if res == nil {
		return "", fmt.Errorf("xds: version of nil resources")
	}
	h := sha256.New()
	for _, group := range resourceGroups(res) {
		if err := hashGroup(h, group.typeURL, group.items); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:versionLen], nil
}

type resourceGroup struct {
	typeURL resourcev3.Type
	items   []types.Resource
}

// resourceGroups lists the resource slices in the fixed order hashed by Version.
func resourceGroups(res *translate.Resources) []resourceGroup {
	return []resourceGroup{
		{resourcev3.ListenerType, res.Listeners},
		{resourcev3.RouteType, res.Routes},
		{resourcev3.ClusterType, res.Clusters},
		{resourcev3.EndpointType, res.Endpoints},
	}
}

func hashGroup(h hash.Hash, typeURL string, items []types.Resource) error {
	type named struct {
		name string
		res  types.Resource
	}
	sorted := make([]named, 0, len(items))
	for _, r := range items {
		if r == nil {
			return fmt.Errorf("xds: nil %s resource", typeName(typeURL))
		}
		sorted = append(sorted, named{cachev3.GetResourceName(r), r})
	}
	slices.SortFunc(sorted, func(a, b named) int { return strings.Compare(a.name, b.name) })
	opts := proto.MarshalOptions{Deterministic: true}
	writeField(h, []byte(typeURL))
	for i, r := range sorted {
		if i > 0 && sorted[i-1].name == r.name {
			return fmt.Errorf("xds: duplicate %s resource %q", typeName(typeURL), r.name)
		}
		b, err := opts.Marshal(r.res)
		if err != nil {
			return fmt.Errorf("xds: marshal %s %q: %w", typeName(typeURL), r.name, err)
		}
		writeField(h, []byte(r.name))
		writeField(h, b)
	}
	return nil
}

// writeField writes a length-prefixed field so that no two different
// sequences of fields hash the same.
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}
