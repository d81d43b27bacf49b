package main

import (
	"os/exec"
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
