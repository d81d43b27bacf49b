package config

import (
	"reflect"
	"strings"

	"github.com/alecthomas/kingpin/v2"
)

// Flags are the command-line flags and environment variables of every
// setting, registered on a kingpin application.
type Flags struct {
	path   *string
	values []*flagValue
}

// RegisterFlags adds --config and one flag per setting to app. Each flag
// also reads its UPID_* environment variable; kingpin applies the variable
// only when the flag is absent, which is the precedence we want.
func RegisterFlags(app *kingpin.Application) *Flags {
	f := &Flags{
		path: app.Flag("config", "Path to the YAML configuration file (see docs/configuration.md).").
			Envar("UPID_CONFIG").PlaceHolder("FILE").String(),
	}
	for _, s := range Settings() {
		v := &flagValue{setting: s, isBool: s.Type.Kind() == reflect.Bool}
		help := s.Doc
		if len(s.Enum) > 0 {
			help += " One of: " + strings.Join(s.Enum, ", ") + "."
		}
		app.Flag(s.Flag, help).Envar(s.Env).PlaceHolder(placeholder(s)).IsSetByUser(&v.byUser).SetValue(v)
		f.values = append(f.values, v)
		if s.Alias != "" {
			// Its own value, so that an environment variable applied to
			// the main flag cannot overwrite what was typed.
			a := &flagValue{setting: s, isBool: v.isBool, flag: s.Alias}
			app.Flag(s.Alias, "Same as --"+s.Flag+".").Hidden().IsSetByUser(&a.byUser).SetValue(a)
			f.values = append(f.values, a)
		}
	}
	return f
}

// Path is the --config value.
func (f *Flags) Path() string { return *f.path }

// Overrides lists the values given in the environment, then those given as
// flags, so that applying them in order lets flags win.
func (f *Flags) Overrides() []Override {
	var env, flags []Override
	for _, v := range f.values {
		if v.raw == nil {
			continue
		}
		if v.byUser {
			name := v.setting.Flag
			if v.flag != "" {
				name = v.flag
			}
			flags = append(flags, Override{Key: v.setting.Key, Raw: *v.raw, Source: "flag --" + name})
		} else {
			env = append(env, Override{Key: v.setting.Key, Raw: *v.raw, Source: "env " + v.setting.Env})
		}
	}
	return append(env, flags...)
}

// Load reads the file named by --config and applies the environment and flags.
func (f *Flags) Load() (Config, error) {
	return Load(f.Path(), f.Overrides()...)
}

// flagValue only records the raw text: it is parsed after the file is read,
// by the same rules as the file, so errors read alike whatever the source.
type flagValue struct {
	setting Setting
	flag    string // the alias this value belongs to; empty for the main flag
	raw     *string
	byUser  bool
	isBool  bool
}

func (v *flagValue) Set(s string) error {
	v.raw = &s
	return nil
}

func (v *flagValue) String() string {
	if v.raw == nil {
		return ""
	}
	return *v.raw
}

func (v *flagValue) IsBoolFlag() bool { return v.isBool }

func placeholder(s Setting) string {
	if len(s.Enum) > 0 {
		return strings.ToUpper(strings.ReplaceAll(s.Key[strings.LastIndex(s.Key, ".")+1:], "_", "-"))
	}
	switch {
	case s.Type == durationType:
		return "DURATION"
	case s.Type.Kind() == reflect.Slice:
		return "LIST"
	case s.Type.Kind() == reflect.Bool:
		return ""
	default:
		return strings.ToUpper(strings.ReplaceAll(s.Key[strings.LastIndex(s.Key, ".")+1:], "_", "-"))
	}
}
