package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"

	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/logging"
)

// Exit codes, documented in README.md.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed, or found a problem
	exitUsage   = 2 // bad flags or config, or a command that does not exist yet
)

// command is what a subcommand does once flags and config are loaded.
type command func(env *environment) int

// environment is what every command gets: its streams, config and loggers.
type environment struct {
	stdout, stderr io.Writer
	cfg            config.Config
	log            logging.Loggers
}

func run(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("upid", "Finds the money a Kubernetes cluster wastes and takes it back safely.")
	// --help and --version return here instead of exiting the process.
	terminated := -1
	app.Terminate(func(code int) { terminated = code })
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.Version(version.Print("upid"))
	app.HelpFlag.Short('h')
	flags := config.RegisterFlags(app)

	commands := map[string]command{}
	add := func(clause *kingpin.CmdClause, c command) { commands[clause.FullCommand()] = c }

	exporter := app.Command("exporter", "Compute idle scores, costs, waste and recommendations per workload and serve them as Prometheus metrics.")
	demo := exporter.Flag("demo", "Serve a small built-in cluster whose usage comes from real traces, through the same queries and analysis.").Bool()
	add(exporter, func(env *environment) int { return runExporter(env, *demo) })
	add(app.Command("webhook", "Run the mutating admission webhook that injects rightsized requests into Pods."), runWebhook)
	add(app.Command("scaler", "Receive Alertmanager notifications and scale idle workloads to zero and back."), runScaler)
	for _, action := range []string{"sleep", "wake"} {
		help := map[string]string{
			"sleep": "Put one workload to sleep now: save its replica count in annotations and scale it to zero.",
			"wake":  "Wake one workload now: restore exactly what upid sleep or the scaler saved.",
		}[action]
		cmd := app.Command(action, help)
		ref := cmd.Arg("workload", "NAMESPACE/KIND/NAME, e.g. shop/Deployment/web (KIND: Deployment, StatefulSet or Rollout).").Required().String()
		dry := cmd.Flag("dry-run", "Record what would be done (log, Event) and change nothing.").Bool()
		add(cmd, func(env *environment) int { return runSleepWake(env, action, *ref, *dry) })
	}
	registerAnalyze(app, add)
	registerRecommend(app, add)
	registerCheck(app, add)
	registerReport(app, add)
	registerStatus(app, add)
	registerBacktest(app, add)
	add(app.Command("version", "Print the version and build information."), func(env *environment) int {
		fmt.Fprintln(env.stdout, version.Print("upid"))
		return exitOK
	})

	cfgCmd := app.Command("config", "Inspect and validate configuration.")
	checkCmd := cfgCmd.Command("check", "Validate a configuration file: every unknown key and bad value is reported with its line.")
	checkFile := checkCmd.Arg("file", "Configuration file to check.").Required().String()
	add(checkCmd, func(env *environment) int { return configCheck(env, *checkFile) })
	add(cfgCmd.Command("defaults", "Print the complete default configuration as YAML."), configDefaults)
	add(cfgCmd.Command("docs", "Print docs/configuration.md.").Hidden(), func(env *environment) int {
		fmt.Fprint(env.stdout, config.Markdown())
		return exitOK
	})

	selected, err := app.Parse(args)
	if terminated >= 0 {
		return terminated
	}
	if err != nil {
		fmt.Fprintf(stderr, "upid: error: %v, try --help\n", err)
		return exitUsage
	}
	cmd := commands[selected]

	env := &environment{stdout: stdout, stderr: stderr}
	if selected != checkCmd.FullCommand() {
		env.cfg, err = flags.Load()
		if err != nil {
			printConfigErrors(stderr, err)
			return exitUsage
		}
	} else {
		env.cfg = config.Default()
	}
	env.log, err = logging.New(stderr, env.cfg.Log.Level, env.cfg.Log.Format)
	if err != nil {
		fmt.Fprintf(stderr, "upid: %v\n", err)
		return exitUsage
	}
	logging.Install(env.log, env.cfg.Log.Level)
	return cmd(env)
}

func configCheck(env *environment, path string) int {
	if _, err := config.Load(path); err != nil {
		printConfigErrors(env.stderr, err)
		return exitFailure
	}
	fmt.Fprintf(env.stdout, "%s: ok\n", path)
	return exitOK
}

func configDefaults(env *environment) int {
	out, err := config.DefaultsYAML()
	if err != nil {
		fmt.Fprintf(env.stderr, "upid: %v\n", err)
		return exitFailure
	}
	_, _ = env.stdout.Write(out)
	return exitOK
}

// printConfigErrors writes one problem a line, as compilers do, so editors
// and CI logs can jump to each.
func printConfigErrors(w io.Writer, err error) {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range config.Flatten(err) {
			fmt.Fprintln(w, e)
		}
		return
	}
	fmt.Fprintln(w, err)
}
