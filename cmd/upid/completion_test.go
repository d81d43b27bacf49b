package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletion runs the binary: kingpin writes completion to the
// process's stdout, whatever writer the app was given.
func TestCompletion(t *testing.T) {
	bin := buildUpid(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--completion-script-bash"}, []string{"complete -F", "upid"}},
		{[]string{"--completion-script-zsh"}, []string{"compdef", "upid"}},
		{[]string{"--completion-bash"}, []string{"analyze", "recommend", "check", "report"}},
		{[]string{"--completion-bash", "check", "--"}, []string{"--max-waste", "--max-waste-percent", "--filename"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := exec.Command(bin, tc.args...).Output()
			if err != nil {
				t.Fatalf("%v: %v", tc.args, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestCheckProcess runs `upid check -f -` as a process, with the manifest on
// its real stdin, and reads its exit code as CI would.
func TestCheckProcess(t *testing.T) {
	bin := buildUpid(t)
	manifest, err := os.ReadFile(filepath.Join("testdata", "check-shop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"over", []string{"--max-waste", "100"}, exitOverThreshold, "over --max-waste $100.00"},
		{"within", []string{"--max-waste-percent", "99"}, exitOK, "within --max-waste-percent 99%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := exec.Command(bin, append([]string{"check", "--demo", "-f", "-"}, tc.args...)...)
			c.Stdin = bytes.NewReader(manifest)
			var stdout, stderr bytes.Buffer
			c.Stdout, c.Stderr = &stdout, &stderr
			_ = c.Run()
			if code := c.ProcessState.ExitCode(); code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.want) || !strings.Contains(stdout.String(), "<stdin>:11") {
				t.Errorf("stdout lacks %q or <stdin>:11:\n%s", tc.want, stdout.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr not empty: %s", stderr.String())
			}
		})
	}
}
