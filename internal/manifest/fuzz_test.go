package manifest

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the parser of `upid check`: it must
// never panic, every error must be a located *Error, and every workload it
// returns must have a kind it knows and a name.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		deployment,
		deployment + "---\nkind: Service\nmetadata: {name: s}\n",
		"kind: List\nitems:\n- kind: List\n  items:\n  - kind: Pod\n    metadata: {name: a}\n    spec: {containers: [{name: c}]}\n",
		"kind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, resources: {requests: {cpu: 1e3, memory: 1Ei}}}]}\n",
		"a: &a [*a]\n",
		"x: &r {cpu: 1}\n---\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, resources: {requests: *r}}]}\n",
		"kind: CronJob\nmetadata: {name: c}\nspec: {jobTemplate: {spec: {template: {spec: {containers: [{name: c}]}}}}}\n",
		"{",
		"- - - -",
		"kind: Deployment\nmetadata: {name: a}\nspec: {replicas: -1, template: {spec: {containers: 3}}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Long inputs are cut, not skipped: the parser sees every input,
		// and runs stay fast (the 32 MiB limit of Read has its own test).
		if len(data) > 64<<10 {
			data = data[:64<<10]
		}
		ws, _, err := Parse("f.yaml", data)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml:") {
					t.Errorf("error line %q does not name the file", line)
				}
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error %T is not located", err)
			}
		}
		for _, w := range ws {
			if _, ok := podSpecPath[w.Kind]; !ok || w.Name == "" {
				t.Errorf("workload %+v has an unknown kind or no name", w)
			}
		}
	})
}
