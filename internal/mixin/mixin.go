// Package mixin lists every generated observability file (rules, dashboards,
// Kubernetes objects) with its content, for the generator and the freshness
// tests.
package mixin

import (
	"github.com/upid-dev/upid/alerts"
)

// File is one generated file, Path relative to the repository root.
type File struct {
	Path string
	Data []byte
}

// Files renders every generated file.
func Files() ([]File, error) {
	rules, err := alerts.YAML(alerts.Default())
	if err != nil {
		return nil, err
	}
	return []File{{Path: alerts.File, Data: rules}}, nil
}
