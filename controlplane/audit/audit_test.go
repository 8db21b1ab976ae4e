package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hopguard/hopguard/policy"
)

// writeLog appends n records to a new log and returns its path.
func writeLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if _, err := l.Append(Record{Kind: KindChange, Generation: uint64(i), NewPolicyHash: "h" + string(rune('a'+i)),
			Time: time.Date(2026, 11, 28, 10, i, 0, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestVerify_IntactChain(t *testing.T) {
	path := writeLog(t, 4)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := Verify(f)
	if err != nil || n != 4 {
		t.Fatalf("Verify = %d, %v; want 4, nil", n, err)
	}
}

func TestVerify_Tampering(t *testing.T) {
	tests := []struct {
		name     string
		tamper   func(ls []string) []string
		wantLine int
	}{
		{"edit a field", func(ls []string) []string {
			ls[1] = strings.Replace(ls[1], `"generation":2`, `"generation":7`, 1)
			return ls
		}, 2},
		{"edit and rehash one record", func(ls []string) []string {
			// A forger who recomputes the edited record's hash still breaks the next link.
			var r Record
			_ = jsonUnmarshal(ls[1], &r)
			r.Detail = "forged"
			r.Hash, _ = r.hash()
			ls[1] = jsonLine(r)
			return ls
		}, 3},
		{"delete a record", func(ls []string) []string { return append(ls[:1], ls[2:]...) }, 2},
		{"reorder records", func(ls []string) []string { ls[1], ls[2] = ls[2], ls[1]; return ls }, 2},
		{"duplicate a record", func(ls []string) []string { return append(ls[:2], append([]string{ls[1]}, ls[2:]...)...) }, 3},
		{"truncate the last record", func(ls []string) []string {
			last := ls[len(ls)-1]
			ls[len(ls)-1] = last[:len(last)/2]
			return ls
		}, 4},
		{"change whitespace", func(ls []string) []string { ls[0] = strings.Replace(ls[0], `,"kind"`, `, "kind"`, 1); return ls }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeLog(t, 4)
			ls := tt.tamper(lines(t, path))
			for i := range ls[:len(ls)-1] {
				if !strings.HasSuffix(ls[i], "\n") {
					ls[i] += "\n"
				}
			}
			_, err := Verify(strings.NewReader(strings.Join(ls, "")))
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %v, want a *VerifyError", err)
			}
			if ve.Line != tt.wantLine {
				t.Errorf("first bad line %d (%s), want %d", ve.Line, ve.Reason, tt.wantLine)
			}
			// Open refuses to extend a broken chain.
			if err := os.WriteFile(path, []byte(strings.Join(ls, "")), 0o640); err != nil {
				t.Fatal(err)
			}
			if l, err := Open(path); err == nil {
				_ = l.Close()
				t.Error("Open accepted a tampered log")
			}
		})
	}
}

func TestOpen_ContinuesTheChain(t *testing.T) {
	path := writeLog(t, 2)
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if last, ok := l.Last(); !ok || last.Generation != 2 {
		t.Errorf("Last = %+v, %v", last, ok)
	}
	r, err := l.Append(Record{Kind: KindFreeze, Detail: "incident"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != 3 || r.Prev != l.Records()[1].Hash {
		t.Errorf("appended %+v", r)
	}
	if last, _ := l.Last(); last.Generation != 2 {
		t.Errorf("a record without a generation became Last: %+v", last)
	}
	_ = l.Close()
	b, _ := os.ReadFile(path)
	if n, err := Verify(bytes.NewReader(b)); err != nil || n != 3 {
		t.Errorf("Verify after reopen = %d, %v", n, err)
	}
}

func TestSources_RoundTripAndTamper(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	files := map[string][]byte{"mesh.yaml": []byte("a: 1\n"), "sub/b.yaml": []byte("b: 2\n")}
	src, err := l.PutSources(files)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(Record{Kind: KindChange, Generation: 11, Sources: src}); err != nil {
		t.Fatal(err)
	}
	got, err := l.Sources(11)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, files); diff != "" {
		t.Errorf("Sources (-got +want):\n%s", diff)
	}
	if _, err := l.Sources(12); !errors.Is(err, ErrNoGeneration) {
		t.Errorf("unknown generation: %v", err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "objects", src[0].SHA256), []byte("evil"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Sources(11); err == nil || !strings.Contains(err.Error(), "modified") {
		t.Errorf("tampered object: %v", err)
	}
}

func TestSummarize(t *testing.T) {
	r := func(id string, attempts int) policy.Route {
		return policy.Route{ID: id, Retry: policy.Retry{Attempts: attempts}}
	}
	old := &policy.Bundle{Routes: []policy.Route{r("a", 1), r("b", 2), r("c", 3)}}
	new := &policy.Bundle{Routes: []policy.Route{r("b", 2), r("c", 4), r("d", 1)}}
	want := Summary{Added: []string{"d"}, Removed: []string{"a"}, Changed: []string{"c"}}
	if diff := cmp.Diff(Summarize(old, new), want); diff != "" {
		t.Errorf("Summarize (-got +want):\n%s", diff)
	}
	if got := Summarize(nil, old); len(got.Added) != 3 {
		t.Errorf("Summarize(nil, old) = %+v", got)
	}
}

// TestRecord_NewFieldsLeaveOldRecordsAlone: the fields added later are
// omitted when empty, so a record written before them encodes, and
// hashes, as it did; a log written then still verifies.
func TestRecord_NewFieldsLeaveOldRecordsAlone(t *testing.T) {
	path := writeLog(t, 2)
	for i, line := range lines(t, path) {
		for _, field := range []string{"old_config_version", "new_config_version", "pinned_to"} {
			if strings.Contains(line, field) {
				t.Errorf("line %d: empty %s written: %s", i+1, field, line)
			}
		}
	}
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(Record{Kind: KindPin, Generation: 3, PinnedTo: 1, OldConfigVersion: "a", NewConfigVersion: "b"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := Verify(f); err != nil || n != 3 {
		t.Errorf("Verify = %d, %v; want 3 records, no error", n, err)
	}
}

func TestLog_Overrides(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	steps := []struct {
		rec  Record
		want Overrides
	}{
		{Record{Kind: KindChange, Generation: 10}, Overrides{}},
		{Record{Kind: KindFreeze, Generation: 11}, Overrides{Frozen: true}},
		{Record{Kind: KindPin, Generation: 12, PinnedTo: 10}, Overrides{Frozen: true, PinnedTo: 10}},
		{Record{Kind: KindRefused}, Overrides{Frozen: true, PinnedTo: 10}},
		{Record{Kind: KindUnfreeze, Generation: 13}, Overrides{PinnedTo: 10}},
		{Record{Kind: KindUnpin, Generation: 14}, Overrides{}},
		// A pin record written before pinned_to existed.
		{Record{Kind: KindPin, Generation: 15, Detail: "pinned to generation 13: incident 42"}, Overrides{PinnedTo: 13}},
	}
	for i, s := range steps {
		if _, err := l.Append(s.rec); err != nil {
			t.Fatal(err)
		}
		if got := l.Overrides(); got != s.want {
			t.Errorf("after record %d (%s): %+v, want %+v", i+1, s.rec.Kind, got, s.want)
		}
	}
}
