package recommend

import (
	"os"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// The defaults table in docs/recommendations.md is what operators read; it
// must not drift from DefaultPolicy.
func TestDocumentedDefaults(t *testing.T) {
	doc, err := os.ReadFile("../../docs/recommendations.md")
	if err != nil {
		t.Fatal(err)
	}
	d := reflect.ValueOf(DefaultPolicy())
	for i := range d.NumField() {
		name := d.Type().Field(i).Name
		row := regexp.MustCompile("(?m)^\\| `" + name + "` \\| ([^ |]+) \\|").FindSubmatch(doc)
		if row == nil {
			t.Errorf("%s: no row in the defaults table", name)
			continue
		}
		documented := string(row[1])
		f := d.Field(i)
		switch v := f.Interface().(type) {
		case time.Duration:
			dd, err := time.ParseDuration(documented)
			if err != nil || dd != v {
				t.Errorf("%s: default %v, documented %s", name, v, documented)
			}
		case float64:
			x, err := strconv.ParseFloat(documented, 64)
			if err != nil || x != v {
				t.Errorf("%s: default %v, documented %s", name, v, documented)
			}
		case LimitPolicy:
			if string(v) != documented {
				t.Errorf("%s: default %v, documented %s", name, v, documented)
			}
		default:
			t.Errorf("%s: no check for %T", name, v)
		}
	}
}
