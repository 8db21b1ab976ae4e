package audit

import (
	"encoding/json"
	"strings"
)

func jsonUnmarshal(line string, v any) error {
	return json.Unmarshal([]byte(strings.TrimSpace(line)), v)
}

func jsonLine(v any) string {
	b, _ := json.Marshal(v)
	return string(b) + "\n"
}
