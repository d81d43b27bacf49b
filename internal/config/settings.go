package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/prometheus/common/model"
)

// Setting describes one leaf of the configuration.
type Setting struct {
	Key  string // dotted YAML path, e.g. "log.level"
	Flag string // without the leading dashes
	// Alias is a second, hidden spelling of the flag, for the kubectl-style
	// names terminal users type (--prometheus-url).
	Alias string
	Env   string
	Doc   string
	Enum  []string
	Min   string
	Max   string // "<N" excludes N
	Type  reflect.Type

	index []int
}

// Settings lists every setting of Config in declaration order.
func Settings() []Setting {
	return settingsOf(reflect.TypeOf(Config{}))
}

func settingsOf(t reflect.Type) []Setting {
	var out []Setting
	walkSettings(t, nil, nil, &out)
	return out
}

func walkSettings(t reflect.Type, path []string, index []int, out *[]Setting) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		p := append(append([]string{}, path...), name)
		idx := append(append([]int{}, index...), i)
		if isSection(f.Type) {
			walkSettings(f.Type, p, idx, out)
			continue
		}
		key := strings.Join(p, ".")
		flag := f.Tag.Get("flag")
		if flag == "" {
			flag = strings.ReplaceAll(key, "_", "-")
		}
		s := Setting{
			Key:   key,
			Flag:  flag,
			Alias: f.Tag.Get("alias"),
			Env:   "UPID_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key)),
			Doc:   f.Tag.Get("doc"),
			Min:   f.Tag.Get("min"),
			Max:   f.Tag.Get("max"),
			Type:  f.Type,
			index: idx,
		}
		if e := f.Tag.Get("enum"); e != "" {
			s.Enum = strings.Split(e, ",")
		}
		*out = append(*out, s)
	}
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

var durationType = reflect.TypeOf(model.Duration(0))

// isSection tells nested sections from leaf values: a struct is a section
// unless it decodes itself from YAML.
func isSection(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	return !reflect.PointerTo(t).Implements(yamlUnmarshalerType) && !reflect.PointerTo(t).Implements(obsoleteUnmarshalerType)
}

// describe says in words what a value of t looks like, for error messages and docs.
func describe(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 30s, 5m, 12h or 7d"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "an integer"
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return "a non-negative integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(describe(t.Elem()), "a "), "an ") + "s"
	case t.Kind() == reflect.Map || t.Kind() == reflect.Struct:
		return "a mapping"
	default:
		return fmt.Sprintf("a %s", t)
	}
}

// field returns the setting's field in root, a pointer to the struct the
// setting was derived from.
func (s Setting) field(root reflect.Value) reflect.Value {
	return root.Elem().FieldByIndex(s.index)
}
