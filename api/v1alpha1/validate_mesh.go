package v1alpha1

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// mesh checks a MeshConfig: environment, principal header, change windows,
// drift handling and the ext_proc endpoint.
func (v *validator) mesh(d docRef, m *MeshConfig) {
	v.typeMeta(d, m.TypeMeta, KindMeshConfig)
	v.meta(d, m.Metadata)
	sp := m.Spec
	if sp.Environment != "" && !isLabel(sp.Environment) {
		v.errorf(d, "spec.environment", "invalid environment %q: %s", sp.Environment, labelRule)
	}
	if !tokenRE.MatchString(sp.PrincipalHeader) {
		v.errorf(d, "spec.principalHeader", "invalid header name %q (want an HTTP token)", sp.PrincipalHeader)
	}
	for i, w := range sp.ChangeWindows {
		p := fmt.Sprintf("spec.changeWindows[%d]", i)
		if len(w.Days) == 0 {
			v.errorf(d, p+".days", "required: at least one of %s", strings.Join(weekdays, ", "))
		}
		seen := map[string]bool{}
		for j, day := range w.Days {
			switch {
			case !slices.Contains(weekdays, day):
				v.errorf(d, fmt.Sprintf("%s.days[%d]", p, j), "unknown day %q (want one of %s)", day, strings.Join(weekdays, ", "))
			case seen[day]:
				v.errorf(d, fmt.Sprintf("%s.days[%d]", p, j), "duplicate day %q", day)
			}
			seen[day] = true
		}
		fromOK, toOK := hhmmRE.MatchString(w.From), hhmmRE.MatchString(w.To)
		if !fromOK {
			v.errorf(d, p+".from", "invalid time %q (want HH:MM, 00:00–23:59)", w.From)
		}
		if !toOK {
			v.errorf(d, p+".to", "invalid time %q (want HH:MM, 00:00–23:59)", w.To)
		}
		if fromOK && toOK && w.From >= w.To {
			v.errorf(d, p+".to", "to (%s) must be after from (%s)", w.To, w.From)
		}
		if w.Timezone == "Local" {
			v.errorf(d, p+".timezone", "invalid timezone %q (want an IANA zone name such as UTC or Europe/Paris)", w.Timezone)
		} else if _, err := time.LoadLocation(w.Timezone); err != nil {
			v.errorf(d, p+".timezone", "invalid timezone %q (want an IANA zone name such as UTC or Europe/Paris)", w.Timezone)
		}
	}
	switch sp.Drift.Action {
	case DriftAlert, DriftQuarantine:
	default:
		v.errorf(d, "spec.drift.action", "unknown action %q (want alert or quarantine)", sp.Drift.Action)
	}
	if q := sp.Drift.MaxQuarantinePercent; q != nil && (*q < 0 || *q > 100) {
		v.errorf(d, "spec.drift.maxQuarantinePercent", "must be between 0 and 100, got %d", *q)
	}
	if msg := checkHostPort(sp.ExtProc.Address, false); msg != "" {
		v.errorf(d, "spec.extProc.address", "invalid address %q: %s", sp.ExtProc.Address, msg)
	}
	if sp.ExtProc.Timeout <= 0 {
		v.errorf(d, "spec.extProc.timeout", "must be greater than 0")
	}
}
