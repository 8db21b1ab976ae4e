package engine

// SetHeader records the request header name (lower case) with value in f,
// when it is one the engine reads: the deadline, timeout and attempt
// headers, the route's idempotency key header idemHeader and the mesh
// principal header principalHeader (both lower case; "" skips them). Other
// headers are ignored. A malformed value leaves its fact as it was and is
// reported to bad with the header's name. Adapters call it once per header
// they pass on, so every data plane reads the same headers the same way.
func (f *Facts) SetHeader(name, value, idemHeader, principalHeader string, bad func(header string)) {
	switch name {
	case HeaderHopguardDeadline:
		if t, ok := ParseUnixMillis(value); ok {
			f.HopguardDeadline = t
			return
		}
	case HeaderGRPCTimeout:
		if d, ok := ParseGRPCTimeout(value); ok {
			f.GRPCTimeout = d
			return
		}
	case HeaderEnvoyExpectedTimeout:
		if d, ok := ParseMillis(value); ok {
			f.EnvoyExpectedTimeout = d
			return
		}
	case HeaderEnvoyAttemptCount:
		if n, ok := ParseAttempt(value); ok {
			f.EnvoyAttemptCount = n
			return
		}
	case HeaderGRPCPreviousAttempts:
		if n, ok := ParseAttempt(value); ok {
			f.GRPCPreviousAttempts = n
			return
		}
	case HeaderHopguardAttempt:
		if n, ok := ParseAttempt(value); ok {
			f.HopguardAttempt = n
			return
		}
	default:
		// The route's idempotency header and the principal header are
		// configuration, so they cannot be switch cases.
		if idemHeader != "" && name == idemHeader {
			f.HasKey, f.Key = true, value
		} else if principalHeader != "" && name == principalHeader {
			f.Principal = value
		}
		return
	}
	bad(name)
}
