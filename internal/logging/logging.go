// Package logging builds the project's go-kit logger and routes every other
// logging API a dependency may use (slog, logr, klog, the standard library's
// log) into it, so a process writes one format.
package logging

import (
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"strings"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/go-logr/logr"
	sloggokit "github.com/tjhop/slog-gokit"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Levels and Formats are the accepted values of --log.level and --log.format.
var (
	Levels  = []string{"debug", "info", "warn", "error"}
	Formats = []string{"logfmt", "json"}
)

// Loggers holds the same sink seen through each logging API.
type Loggers struct {
	Kit  log.Logger
	Slog *slog.Logger
	Logr logr.Logger
}

// New returns loggers that write to w in the given format and drop lines
// below the given level.
func New(w io.Writer, lvl, format string) (Loggers, error) {
	var sink log.Logger
	switch format {
	case "logfmt":
		sink = log.NewLogfmtLogger(log.NewSyncWriter(w))
	case "json":
		sink = log.NewJSONLogger(log.NewSyncWriter(w))
	default:
		return Loggers{}, fmt.Errorf("log.format: unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
	}
	allow, err := level.Parse(lvl)
	if err != nil {
		return Loggers{}, fmt.Errorf("log.level: unknown level %q (want one of %s)", lvl, strings.Join(Levels, ", "))
	}
	stamped := log.With(sink, "ts", log.DefaultTimestampUTC)
	filtered := level.NewFilter(stamped, level.Allow(allow))

	// The slog handler resolves its own caller from the record, so it must
	// not get go-kit's stack-depth caller, and it must not repeat the time
	// that go-kit already stamps as ts.
	handler := sloggokit.NewGoKitHandler(dropKey{next: filtered, key: slog.TimeKey}, slogLevel(allow))
	return Loggers{
		Kit:  log.With(filtered, "caller", log.DefaultCaller),
		Slog: slog.New(handler),
		Logr: logr.FromSlogHandler(handler),
	}, nil
}

// Install makes l the destination of the process-wide loggers of slog, the
// standard library, klog (client-go) and controller-runtime.
func Install(l Loggers, lvl string) {
	slog.SetDefault(l.Slog)
	stdlog.SetFlags(0)
	stdlog.SetOutput(log.NewStdlibAdapter(level.Info(l.Kit)))
	klog.SetLogger(l.Logr)
	// klog decides verbosity before it reaches logr; client-go's V(2)+
	// messages are only useful when debugging.
	verbosity := "0"
	if lvl == "debug" {
		verbosity = "4"
	}
	var v klog.Level
	_ = v.Set(verbosity)
	ctrllog.SetLogger(l.Logr)
}

func slogLevel(v level.Value) slog.Level {
	switch v {
	case level.DebugValue():
		// logr's V(n) maps to slog level -n; debug lets through V(1)..V(4).
		return slog.LevelDebug
	case level.WarnValue():
		return slog.LevelWarn
	case level.ErrorValue():
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

type dropKey struct {
	next log.Logger
	key  string
}

func (d dropKey) Log(keyvals ...any) error {
	for i := 0; i+1 < len(keyvals); i += 2 {
		if k, ok := keyvals[i].(string); ok && k == d.key {
			keyvals = append(keyvals[:i:i], keyvals[i+2:]...)
			break
		}
	}
	return d.next.Log(keyvals...)
}
