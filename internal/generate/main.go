// Command generate writes UPID's generated observability files: the rule
// file in alerts/, the dashboards' JSON in dashboards/ and the Kubernetes
// objects in deploy/generated/. Run it from the repository root (`make
// generate`); the packages' freshness tests fail when a committed file differs.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/upid-dev/upid/internal/mixin"
)

func main() {
	// Paths are relative to the repository root; writing them anywhere else
	// would scatter stale copies.
	if b, err := os.ReadFile("go.mod"); err != nil || !strings.Contains(string(b), "module github.com/upid-dev/upid\n") {
		fmt.Fprintln(os.Stderr, "generate: run from the repository root (make generate)")
		os.Exit(2)
	}
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
