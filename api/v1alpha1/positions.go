package v1alpha1

import "strings"

// Lookup returns the position of path, or of its nearest recorded parent
// ("spec.retry.on[1]" → "spec.retry.on" → "spec.retry" → "spec"), or doc when
// none is recorded. A nil Positions always yields doc.
func (p Positions) Lookup(path string, doc Pos) Pos {
	for path != "" {
		if pos, ok := p[path]; ok {
			return pos
		}
		path = parentPath(path)
	}
	return doc
}

// parentPath strips the last segment (".name" or "[i]") of a field path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
