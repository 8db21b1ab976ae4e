package engine

// attempts is what a request says about who retried it: the attempt number
// each layer indicates (1 = that layer did not retry).
type attempts struct {
	mesh int
	app  int
}

// attemptsOf reads the attempt headers of f by layer (DESIGN.md §4):
//
//   - x-envoy-attempt-count is Envoy's router retrying: mesh.
//   - grpc-previous-rpc-attempts is grpc-go's retry. A proxyless callee sees
//     the xDS-configured retry of the caller's channel: mesh. Behind a
//     sidecar it is mesh too when the caller is a proxyless client of the
//     mesh: no caller-side Envoy counted the attempt (no
//     x-envoy-attempt-count), and a hopguard filter on the caller's side
//     stamped x-hopguard-deadline. Otherwise it comes from a channel the
//     application configured itself (service config retries): app.
//   - x-hopguard-attempt is set by the caller's code or library: app.
//
// A repeated idempotency key is an app retry too, but whether a key was seen
// before is only known once it is claimed: Decide applies the retry checks
// to such requests after the idempotency step (see checkRepeatedKey).
func attemptsOf(f *Facts) attempts {
	a := attempts{mesh: 1, app: 1}
	a.mesh = max(a.mesh, f.EnvoyAttemptCount)
	if f.GRPCPreviousAttempts > 0 {
		n := min(f.GRPCPreviousAttempts, MaxAttempt-1) + 1
		if f.Proxyless || (f.EnvoyAttemptCount == 0 && !f.HopguardDeadline.IsZero()) {
			a.mesh = max(a.mesh, n)
		} else {
			a.app = max(a.app, n)
		}
	}
	a.app = max(a.app, f.HopguardAttempt)
	return a
}

// number is the attempt number: the largest any layer indicates.
func (a attempts) number() int { return max(a.mesh, a.app) }

// layer is the layer of the largest attempt number; when both layers
// indicate the same retry number, mesh (the hop closer to this filter).
// LayerFirst when nobody retried.
func (a attempts) layer() Layer {
	switch {
	case a.mesh <= 1 && a.app <= 1:
		return LayerFirst
	case a.mesh >= a.app:
		return LayerMesh
	default:
		return LayerApp
	}
}

// retried reports whether layer l indicates a retry.
func (a attempts) retried(l Layer) bool {
	switch l {
	case LayerMesh:
		return a.mesh > 1
	case LayerApp:
		return a.app > 1
	default:
		return false
	}
}
