package dashboards

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// dashQuery is one PromQL query of a generated dashboard, read back from its
// JSON so that the tests check what Grafana gets.
type dashQuery struct {
	Dashboard, Panel, RefID, Expr string
	// Unit is the panel's unit, or the table column's.
	Unit string
	// Variable is set for a template variable's label_values selector.
	Variable string
}

func (q dashQuery) String() string {
	if q.Variable != "" {
		return fmt.Sprintf("%s: variable %s", q.Dashboard, q.Variable)
	}
	return fmt.Sprintf("%s: %q %s", q.Dashboard, q.Panel, q.RefID)
}

var labelValues = regexp.MustCompile(`(?s)^label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\)$`)

type jsonPanel struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr       string `json:"expr"`
		RefID      string `json:"refId"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit  string `json:"unit"`
			Links []struct {
				URL string `json:"url"`
			} `json:"links"`
		} `json:"defaults"`
		Overrides []struct {
			Matcher struct {
				ID      string `json:"id"`
				Options any    `json:"options"`
			} `json:"matcher"`
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Transformations []struct {
		ID      string `json:"id"`
		Options struct {
			RenameByName map[string]string `json:"renameByName"`
		} `json:"options"`
	} `json:"transformations"`
	Links []struct {
		URL string `json:"url"`
	} `json:"links"`
}

type jsonDashboard struct {
	UID        string      `json:"uid"`
	Title      string      `json:"title"`
	Tags       []string    `json:"tags"`
	Panels     []jsonPanel `json:"panels"`
	Templating struct {
		List []struct {
			Type  string `json:"type"`
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Links []struct {
		Type        string   `json:"type"`
		Tags        []string `json:"tags"`
		IncludeVars bool     `json:"includeVars"`
		KeepTime    bool     `json:"keepTime"`
	} `json:"links"`
}

func readDashboard(t *testing.T, d Dashboard) jsonDashboard {
	t.Helper()
	b, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var jd jsonDashboard
	if err := json.Unmarshal(b, &jd); err != nil {
		t.Fatalf("%s: %v", d.File, err)
	}
	return jd
}

// columnUnit is the unit of a table column by the field name Grafana gives
// its query's values ("Value #B"), through the rename and the override.
func (p jsonPanel) columnUnit(refID string, single bool) string {
	field := "Value #" + refID
	if single {
		field = "Value"
	}
	name := field
	for _, tr := range p.Transformations {
		if n, ok := tr.Options.RenameByName[field]; ok {
			name = n
		}
	}
	for _, o := range p.FieldConfig.Overrides {
		if o.Matcher.ID == "byName" && o.Matcher.Options == name {
			for _, prop := range o.Properties {
				if prop.ID == "unit" {
					if s, ok := prop.Value.(string); ok {
						return s
					}
				}
			}
		}
	}
	return p.FieldConfig.Defaults.Unit
}

func queriesOf(t *testing.T, d Dashboard) []dashQuery {
	t.Helper()
	jd := readDashboard(t, d)
	var out []dashQuery
	for _, v := range jd.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		m := labelValues.FindStringSubmatch(strings.TrimSpace(q))
		if m == nil {
			t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", d.File, v.Name, q)
			continue
		}
		out = append(out, dashQuery{Dashboard: d.File, Expr: m[1], Variable: v.Name})
	}
	for _, p := range jd.Panels {
		for _, tg := range p.Targets {
			unit := p.FieldConfig.Defaults.Unit
			if p.Type == "table" {
				unit = p.columnUnit(tg.RefID, len(p.Targets) == 1)
			}
			out = append(out, dashQuery{Dashboard: d.File, Panel: p.Title, RefID: tg.RefID, Expr: tg.Expr, Unit: unit})
		}
	}
	return out
}
