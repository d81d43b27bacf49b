package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestDockerfile checks what docker cannot check here: the image stamps the same version
// variables as `make build`, builds a static binary, and runs as the UID the chart's pods run as.
func TestDockerfile(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	docker, makefile := read("../Dockerfile"), read("../Makefile")
	stamps := func(s string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`-X\s+(\$\(VERSION_PKG\)|github\.com/prometheus/common/version)\.(\w+)=`).FindAllStringSubmatch(s, -1) {
			out = append(out, m[2])
		}
		slices.Sort(out)
		return out
	}
	if m, d := stamps(makefile), stamps(docker); len(m) == 0 || !slices.Equal(m, d) {
		t.Errorf("version variables: Makefile %v, Dockerfile %v", m, d)
	}
	if !strings.Contains(makefile, "VERSION_PKG := github.com/prometheus/common/version") {
		t.Errorf("Makefile's VERSION_PKG moved; update this test and the Dockerfile")
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/upid", "gcr.io/distroless/static", ":nonroot", "USER 65532:65532", `ENTRYPOINT ["/usr/local/bin/upid"]`} {
		if !strings.Contains(docker, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if n := strings.Count(docker, "\nFROM "); n < 2 {
		t.Errorf("Dockerfile has %d stages, want a build stage and a runtime stage", n)
	}
	var values struct {
		PodSecurityContext struct {
			RunAsUser  int `yaml:"runAsUser"`
			RunAsGroup int `yaml:"runAsGroup"`
		} `yaml:"podSecurityContext"`
	}
	if err := yaml.Unmarshal([]byte(read(chartDir+"/values.yaml")), &values); err != nil {
		t.Fatal(err)
	}
	if values.PodSecurityContext.RunAsUser != 65532 || values.PodSecurityContext.RunAsGroup != 65532 {
		t.Errorf("chart runs as %d:%d, the image as distroless nonroot 65532:65532",
			values.PodSecurityContext.RunAsUser, values.PodSecurityContext.RunAsGroup)
	}
}
