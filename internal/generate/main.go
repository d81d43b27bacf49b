// Command generate writes UPID's generated observability files: the rule
// file in alerts/, the dashboards' JSON in dashboards/ and the Kubernetes
// objects in deploy/generated/. Run it from the repository root (`make
// generate`); the packages' freshness tests fail when a committed file differs.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/upid-dev/upid/internal/mixin"
)

func main() {
	files, err := mixin.Files()
	if err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "generate:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(f.Path, f.Data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "generate:", err)
			os.Exit(1)
		}
	}
}
