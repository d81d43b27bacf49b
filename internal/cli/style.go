package cli

import (
	"io"
	"os"
)

// Style colours text for a terminal; the zero Style leaves text plain.
type Style struct{ on bool }

// StyleFor colours only a terminal, and never when NO_COLOR is set to
// anything (https://no-color.org), so pipes, files and CI logs stay plain.
func StyleFor(w io.Writer) Style {
	if _, set := os.LookupEnv("NO_COLOR"); set {
		return Style{}
	}
	return Style{on: IsTerminal(w)}
}

// Colored reports whether the style emits escape codes.
func (s Style) Colored() bool { return s.on }

func (s Style) wrap(code, text string) string {
	if !s.on || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

// Bold is for headings.
func (s Style) Bold(t string) string { return s.wrap("1", t) }

// Red is for money lost and thresholds exceeded.
func (s Style) Red(t string) string { return s.wrap("31", t) }

// Green is for money saved and checks passed.
func (s Style) Green(t string) string { return s.wrap("32", t) }

// Yellow is for notes and skipped things.
func (s Style) Yellow(t string) string { return s.wrap("33", t) }
