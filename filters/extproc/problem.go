package extproc

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/hopguard/hopguard/filters/engine"
)

// ProblemTypeBase prefixes the reason in the `type` member of rejection
// bodies: https://hopguard.dev/problems/<reason>.
const ProblemTypeBase = "https://hopguard.dev/problems/"

// Problem is the RFC 9457 problem details body of an HTTP rejection.
// `instance` is omitted: a rejection has no resource of its own.
type Problem struct {
	// Type is ProblemTypeBase + the reason.
	Type string `json:"type"`
	// Title is the reason in words; the same for every occurrence.
	Title string `json:"title"`
	// Status is the HTTP status of the response.
	Status int `json:"status"`
	// Detail names the route, the remaining deadline and the attempt.
	Detail string `json:"detail"`
}

// problemTitle turns a reason ("retry-not-authority") into a title
// ("Retry not authority").
func problemTitle(r engine.Reason) string {
	s := strings.ReplaceAll(r.String(), "-", " ")
	if s == "" {
		return "Rejected"
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// problemBody renders the problem+json body of an HTTP rejection.
func problemBody(r engine.Reason, status int, routeID string, remaining time.Duration, attempt int) []byte {
	p := Problem{
		Type:   ProblemTypeBase + r.String(),
		Title:  problemTitle(r),
		Status: status,
		Detail: "route " + strconv.Quote(routeID) + ": " + explanation(r) + remaining.Round(time.Millisecond).String() +
			" of deadline remaining at attempt " + strconv.Itoa(max(attempt, 1)),
	}
	// Marshal cannot fail: Problem holds only strings and an int.
	b, _ := json.Marshal(p)
	return b
}

// explanation is a sentence for reasons whose name alone does not say what
// the caller should do; it ends with "; " so the remaining detail follows.
func explanation(r engine.Reason) string {
	switch r {
	case engine.ReasonFrozen:
		return "the mesh is frozen by an operator, only routes marked critical accept side effects; "
	case engine.ReasonPolicyDrift:
		return "the data plane runs another policy than the verified one (drift quarantine), side effects are refused until it converges; "
	}
	return ""
}
