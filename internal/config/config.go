// Package config defines every setting of the upid components in one place:
// its YAML key, flag, environment variable, default and documentation. The
// struct tags are the single source from which flags are registered, files
// are checked and docs/configuration.md is generated.
//
// Tags on a field:
//
//	yaml:"key"   the key in the file; nested structs are sections
//	doc:"..."    one sentence for docs/configuration.md and --help
//	flag:"name"  overrides the flag name derived from the key path
//	enum:"a,b"   the only accepted values
//	min:"N"      the smallest accepted number or duration
package config

// Config is the configuration of every upid component. Each process reads
// the sections it needs and ignores the others, so one file serves the
// whole suite.
type Config struct {
	Log Log `yaml:"log"`
	Web Web `yaml:"web"`
}

// Log configures the process logger.
type Log struct {
	Level  string `yaml:"level" enum:"debug,info,warn,error" doc:"Lowest level written; debug also raises client-go's verbosity."`
	Format string `yaml:"format" enum:"logfmt,json" doc:"Line format of every log line, including those of client-go and controller-runtime."`
}

// Web configures the HTTP server that every long-running component runs for
// its metrics and API.
type Web struct {
	ListenAddress string `yaml:"listen_address" flag:"web.listen-address" doc:"Address the HTTP server listens on; empty means the component's own default port."`
	ConfigFile    string `yaml:"config_file" flag:"web.config.file" doc:"Path to an exporter-toolkit web configuration file that enables TLS, mTLS or basic auth on the HTTP server."`
}

// Default returns the configuration used when nothing else is given.
func Default() Config {
	return Config{
		Log: Log{Level: "info", Format: "logfmt"},
	}
}
