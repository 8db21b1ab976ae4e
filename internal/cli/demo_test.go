package cli

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hopguard/hopguard/internal/demo"
)

// fakeDemoProcess records what the demo command asks of the process.
type fakeDemoProcess struct {
	env     map[string]string
	execErr error
	ran     []*exec.Cmd
	opts    []demo.Options
}

func (f *fakeDemoProcess) process() demoProcess {
	return demoProcess{
		lookupEnv:  func(k string) (string, bool) { v, ok := f.env[k]; return v, ok },
		environ:    func() []string { return []string{"HOME=/home/demo"} },
		executable: func() (string, error) { return "/usr/local/bin/hopguard", nil },
		exec:       func(c *exec.Cmd) error { f.ran = append(f.ran, c); return f.execErr },
		run: func(_ context.Context, o demo.Options) (demo.Summary, error) {
			f.opts = append(f.opts, o)
			return demo.Summary{}, nil
		},
	}
}

func runDemoCmd(t *testing.T, f *fakeDemoProcess, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Args: append([]string{"demo"}, args...), Stdout: &out, Stderr: &errOut}
	cmd := newDemoCmdWith(env, &globalFlags{logFormat: "json", logLevel: "info"}, f.process())
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestDemoCmd_Success(t *testing.T) {
	t.Run("runs the demo when the process has the ext_proc variable", func(t *testing.T) {
		f := &fakeDemoProcess{env: map[string]string{extProcOnClientEnv: "true"}}
		if _, err := runDemoCmd(t, f, "--duration", "3s", "--rate", "7"); err != nil {
			t.Fatal(err)
		}
		if len(f.ran) != 0 {
			t.Errorf("re-executed %d times, want 0", len(f.ran))
		}
		if len(f.opts) != 1 {
			t.Fatalf("demo ran %d times, want 1", len(f.opts))
		}
		got := f.opts[0]
		if got.Duration != 3*time.Second || got.Rate != 7 || got.Interactive || got.Logger == nil || got.Out == nil {
			t.Errorf("demo options = %+v, want 3s at 7/s, not interactive (a buffer), with a logger and output", got)
		}
	})
	t.Run("re-executes itself with the variable set when it is missing", func(t *testing.T) {
		f := &fakeDemoProcess{env: map[string]string{extProcOnClientEnv: "false"}}
		if _, err := runDemoCmd(t, f, "--rate", "9"); err != nil {
			t.Fatal(err)
		}
		if len(f.opts) != 0 {
			t.Errorf("demo ran in the process without the variable")
		}
		if len(f.ran) != 1 {
			t.Fatalf("re-executed %d times, want 1", len(f.ran))
		}
		c := f.ran[0]
		if diff := cmp.Diff(c.Args, []string{"/usr/local/bin/hopguard", "demo", "--rate", "9"}); diff != "" {
			t.Errorf("child argv (-got +want):\n%s", diff)
		}
		if !slices.Contains(c.Env, extProcOnClientEnv+"=true") || !slices.Contains(c.Env, "HOME=/home/demo") {
			t.Errorf("child env = %v, want the parent's plus %s=true", c.Env, extProcOnClientEnv)
		}
		if c.Cancel == nil || c.WaitDelay == 0 {
			t.Errorf("child is not interrupted and awaited on cancellation")
		}
	})
}

func TestDemoCmd_Errors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		execErr error
		args    []string
		want    string
	}{
		{"zero rate", map[string]string{extProcOnClientEnv: "true"}, nil, []string{"--rate", "0"}, "usage:"},
		{"negative duration", map[string]string{extProcOnClientEnv: "true"}, nil, []string{"--duration", "-1s"}, "usage:"},
		{"child cannot start", nil, errors.New("permission denied"), nil, "demo: re-run with " + extProcOnClientEnv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeDemoProcess{env: tt.env, execErr: tt.execErr}
			_, err := runDemoCmd(t, f, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
			if len(f.opts) != 0 {
				t.Errorf("demo ran despite the error")
			}
		})
	}
}

func TestIsTerminal_NotForBuffers(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a bytes.Buffer is reported as a terminal")
	}
}
