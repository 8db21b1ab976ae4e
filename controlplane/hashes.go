package controlplane

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/hopguard/hopguard/controlplane/ir"
	"github.com/hopguard/hopguard/policy/bundle"
)

// meshVersion is a hash of the IR's JSON encoding (struct fields in
// declaration order, no maps: canonical).
func meshVersion(m *ir.Mesh) (string, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("controlplane: encode IR: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), nil
}

// PolicyHash is the policy_hash of m's policies (bundle.PolicyHash), as
// distributed while no freeze is in force.
func PolicyHash(m *ir.Mesh) string { return bundle.PolicyHash(m.Bundle()) }

// InChangeWindow reports whether t falls in one of the windows; with no
// windows declared every time is in window. A window whose timezone cannot
// be loaded is read in UTC.
func InChangeWindow(t time.Time, windows []ir.ChangeWindow) bool {
	if len(windows) == 0 {
		return true
	}
	for _, w := range windows {
		loc, err := time.LoadLocation(w.Timezone)
		if err != nil {
			loc = time.UTC
		}
		lt := t.In(loc)
		minute := lt.Hour()*60 + lt.Minute()
		if slices.Contains(w.Days, lt.Weekday()) && minute >= w.From && minute < w.To {
			return true
		}
	}
	return false
}
