package config

import (
	"fmt"
	"regexp"
	"strings"
)

// browserAgent stands for real traffic: a health user agent pattern that
// matches it and the empty string matches every user agent.
const browserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"

// CheckHealthMatchers compiles exporter.health_user_agents and finds the
// entries of it and of exporter.health_paths that cannot work or would
// count every request as health traffic, which makes busy workloads look
// idle, to be put to sleep. The file's check and exporter.New share it, so
// that a configuration built in code gets the same verdict. Problems are
// keyed by entry; their Source is the caller's to fill.
func (e Exporter) CheckHealthMatchers() ([]*regexp.Regexp, []*Error) {
	var problems []*Error
	add := func(list string, i int, format string, args ...any) {
		problems = append(problems, &Error{Key: fmt.Sprintf("exporter.%s[%d]", list, i), Msg: fmt.Sprintf(format, args...)})
	}
	for i, p := range e.HealthPaths {
		switch {
		case p == "":
			// The analysis matches p exactly or as the prefix p+"/",
			// which is every path.
			add("health_paths", i, "empty: as a prefix it matches every path, so every request would be health traffic")
		case !strings.HasPrefix(p, "/"):
			add("health_paths", i, "%q does not start with /, as request paths do", p)
		}
	}
	var agents []*regexp.Regexp
	for i, a := range e.HealthAgents {
		if a == "" {
			add("health_user_agents", i, "empty: it matches every user agent, so every request would be health traffic")
			continue
		}
		re, err := regexp.Compile(a)
		if err != nil {
			add("health_user_agents", i, "%v", err)
			continue
		}
		if re.MatchString("") && re.MatchString(browserAgent) {
			add("health_user_agents", i, "%q matches every user agent (it matches the empty string), so every request would be health traffic", a)
			continue
		}
		agents = append(agents, re)
	}
	return agents, problems
}
