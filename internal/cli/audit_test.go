package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hopguard/hopguard/controlplane/audit"
)

// auditLog writes an audit log of n change records and returns its path.
func auditLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i := range n {
		if _, err := l.Append(audit.Record{Kind: audit.KindChange, Time: start.Add(time.Duration(i) * time.Minute),
			NewPolicyHash: fmt.Sprintf("h%d", i+1), Generation: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuditVerifyCmd_Success(t *testing.T) {
	path := auditLog(t, 3)
	var out strings.Builder
	if _, _, err := execute(t, newAuditCmd(Env{Stdout: &out}, &globalFlags{}), "verify", path); err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	if want := path + ": 3 records, chain intact\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestAuditVerifyCmd_Errors(t *testing.T) {
	path := auditLog(t, 3)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(t.TempDir(), "edited.jsonl")
	if err := os.WriteFile(edited, []byte(strings.Replace(string(raw), `"new_policy_hash":"h2"`, `"new_policy_hash":"h9"`, 1)), 0o640); err != nil {
		t.Fatal(err)
	}
	ls := strings.SplitAfter(string(raw), "\n")
	removed := filepath.Join(t.TempDir(), "removed.jsonl")
	if err := os.WriteFile(removed, []byte(ls[0]+ls[2]), 0o640); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"edited record", []string{"audit", "verify", edited}, ExitFindings, edited + ":2: ", ""},
		{"removed record", []string{"audit", "verify", removed}, ExitFindings, removed + ":2: ", ""},
		{"missing file", []string{"audit", "verify", filepath.Join(t.TempDir(), "none")}, ExitError, "", "no such file"},
		{"no file argument", []string{"audit", "verify"}, ExitError, "", "accepts 1 arg"},
		{"no subcommand", []string{"audit"}, ExitError, "", "usage: hopguard audit verify FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut strings.Builder
			code := Main(t.Context(), Env{Args: tt.args, Stdout: &out, Stderr: &errOut})
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stdout %q, stderr %q)", code, tt.wantCode, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout %q lacks %q", out.String(), tt.wantOut)
			}
			if !strings.Contains(errOut.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut.String(), tt.wantErr)
			}
		})
	}
}
