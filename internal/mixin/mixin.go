// Package mixin lists every generated observability file (rules, dashboards,
// Kubernetes objects) with its content, for the generator and the freshness
// tests.
package mixin

import (
	"path"

	"github.com/upid-dev/upid/alerts"
	"github.com/upid-dev/upid/dashboards"
)

// File is one generated file, Path relative to the repository root.
type File struct {
	Path string
	Data []byte
}

// DashboardsDir holds the dashboards' JSON.
const DashboardsDir = "dashboards"

// Files renders every generated file.
func Files() ([]File, error) {
	rules, err := alerts.YAML(alerts.Default())
	if err != nil {
		return nil, err
	}
	files := []File{{Path: alerts.File, Data: rules}}
	for _, d := range dashboards.All() {
		b, err := d.JSON()
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: path.Join(DashboardsDir, d.File), Data: b})
	}
	cms, err := DashboardConfigMaps()
	if err != nil {
		return nil, err
	}
	pr, err := PrometheusRule(alerts.Default())
	if err != nil {
		return nil, err
	}
	docs, err := Docs()
	if err != nil {
		return nil, err
	}
	return append(files,
		File{Path: DashboardsManifest, Data: cms},
		File{Path: RulesManifest, Data: pr},
		File{Path: DocsFile, Data: docs},
	), nil
}
