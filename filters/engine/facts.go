package engine

// SetHeader records the request header name (lower case) with value in f,
// when it is one the engine reads: the deadline, timeout and attempt
// headers, the route's idempotency key header idemHeader and the mesh
// principal header principalHeader (both lower case; "" skips them). Other
// headers are ignored. Adapters call it once per header value, in the
// order received, so every data plane reads the same headers the same way:
//
//   - of a header sent more than once, the first well-formed value counts,
//     as most applications read it;
//   - an idempotency key sent more than once with different values is no
//     key anyone can de-duplicate on: f.Key becomes "", which the engine
//     refuses as idempotency-key-invalid;
//   - a malformed value leaves its fact as it was and is reported to bad
//     with the header's name.
func (f *Facts) SetHeader(name, value, idemHeader, principalHeader string, bad func(header string)) {
	switch name {
	case HeaderHopguardDeadline:
		if t, ok := ParseUnixMillis(value); ok {
			if f.HopguardDeadline.IsZero() {
				f.HopguardDeadline = t
			}
			return
		}
	case HeaderGRPCTimeout:
		if d, ok := ParseGRPCTimeout(value); ok {
			if f.GRPCTimeout == 0 {
				f.GRPCTimeout = d
			}
			return
		}
	case HeaderEnvoyExpectedTimeout:
		if d, ok := ParseMillis(value); ok {
			if f.EnvoyExpectedTimeout == 0 {
				f.EnvoyExpectedTimeout = d
			}
			return
		}
	case HeaderEnvoyAttemptCount:
		if n, ok := ParseAttempt(value); ok {
			if f.EnvoyAttemptCount == 0 {
				f.EnvoyAttemptCount = n
			}
			return
		}
	case HeaderGRPCPreviousAttempts:
		if n, ok := ParseAttempt(value); ok {
			if f.GRPCPreviousAttempts == 0 {
				f.GRPCPreviousAttempts = n
			}
			return
		}
	case HeaderHopguardAttempt:
		if n, ok := ParseAttempt(value); ok {
			if f.HopguardAttempt == 0 {
				f.HopguardAttempt = n
			}
			return
		}
	default:
		// The route's idempotency header and the principal header are
		// configuration, so they cannot be switch cases.
		switch {
		case idemHeader != "" && name == idemHeader:
			if !f.HasKey {
				f.HasKey, f.Key = true, value
			} else if f.Key != value {
				f.Key = ""
			}
		case principalHeader != "" && name == principalHeader:
			if f.Principal == "" {
				f.Principal = value
			}
		}
		return
	}
	bad(name)
}
