package idle

import (
	"os"
	"reflect"
	"regexp"
	"strconv"
	"testing"
)

// The defaults table in docs/idle-score.md is what operators read; it must
// not drift from DefaultParams.
func TestDocumentedDefaults(t *testing.T) {
	doc, err := os.ReadFile("../../docs/idle-score.md")
	if err != nil {
		t.Fatal(err)
	}
	d := reflect.ValueOf(DefaultParams())
	for i := range d.NumField() {
		name := d.Type().Field(i).Name
		row := regexp.MustCompile("(?m)^\\| `" + name + "` \\| ([0-9.]+)").FindSubmatch(doc)
		if row == nil {
			t.Errorf("%s: no row in the defaults table", name)
			continue
		}
		documented, err := strconv.ParseFloat(string(row[1]), 64)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := d.Field(i).Float(); got != documented {
			t.Errorf("%s: default %v, documented %v", name, got, documented)
		}
	}
}
