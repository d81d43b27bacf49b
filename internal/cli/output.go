// Package cli holds what the upid terminal commands share: output formats
// (table, wide, csv, markdown, json, yaml), colour that respects the
// terminal and NO_COLOR, a progress indicator on stderr, and the way money
// and resources are printed.
package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/upid-dev/upid/internal/quantity"
)

// Output formats shared by the commands.
const (
	Table    = "table"
	Wide     = "wide"
	JSON     = "json"
	YAML     = "yaml"
	CSV      = "csv"
	Markdown = "markdown"
)

// Formats are the formats every listing command accepts.
var Formats = []string{Table, Wide, JSON, YAML, CSV, Markdown}

// Rows is a table: a header and rows of cells, rendered as an aligned
// table, CSV or a Markdown table.
type Rows struct {
	Header []string
	Rows   [][]string
	paint  map[[2]int]func(string) string
}

// Add appends one row.
func (r *Rows) Add(cells ...string) { r.Rows = append(r.Rows, cells) }

// Paint colours cell col of the last row added, in the table formats only;
// f is a Style method, so it is a no-op where colour is off.
func (r *Rows) Paint(col int, f func(string) string) {
	if r.paint == nil {
		r.paint = map[[2]int]func(string) string{}
	}
	r.paint[[2]int{len(r.Rows) - 1, col}] = f
}

// Write renders r in format (table and wide align columns; csv and markdown
// are their own). Bold headers only when style says so.
func (r *Rows) Write(w io.Writer, format string, style Style) error {
	switch format {
	case CSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(r.Header); err != nil {
			return err
		}
		if err := cw.WriteAll(r.Rows); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	case Markdown:
		var b strings.Builder
		line := func(cells []string) {
			b.WriteString("|")
			for _, c := range cells {
				b.WriteString(" " + markdownCell(c) + " |")
			}
			b.WriteString("\n")
		}
		line(r.Header)
		b.WriteString("|")
		for range r.Header {
			b.WriteString(" --- |")
		}
		b.WriteString("\n")
		for _, row := range r.Rows {
			line(row)
		}
		_, err := io.WriteString(w, b.String())
		return err
	default:
		// Aligned here rather than by tabwriter: escape codes have no width
		// on a terminal, so cells are padded plain and coloured after.
		widths := make([]int, len(r.Header))
		for _, row := range append([][]string{r.Header}, r.Rows...) {
			for i, c := range row {
				if i < len(widths) {
					widths[i] = max(widths[i], utf8.RuneCountInString(c))
				}
			}
		}
		var b strings.Builder
		line := func(ri int, row []string, paint func(int) func(string) string) {
			var l strings.Builder
			for i, c := range row {
				pad := ""
				if i < len(row)-1 && i < len(widths) {
					pad = strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2)
				}
				if f := paint(i); f != nil {
					c = f(c)
				}
				l.WriteString(c + pad)
			}
			b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
		}
		line(-1, r.Header, func(int) func(string) string { return nil })
		for ri, row := range r.Rows {
			line(ri, row, func(col int) func(string) string { return r.paint[[2]int{ri, col}] })
		}
		header, rest, _ := strings.Cut(b.String(), "\n")
		_, err := io.WriteString(w, style.Bold(header)+"\n"+rest)
		return err
	}
}

func markdownCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// Encode writes v as indented JSON or as YAML.
func Encode(w io.Writer, format string, v any) error {
	if format == YAML {
		// Through JSON first, so YAML has the same keys as JSON (the types
		// carry json tags only) and numbers stay numbers.
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var generic any
		if err := yaml.Unmarshal(b, &generic); err != nil {
			return err
		}
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(generic); err != nil {
			return err
		}
		return enc.Close()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Dollars prints an amount of money: cents always, thousands grouped.
func Dollars(x float64) string {
	neg := x < 0
	if neg {
		x = -x
	}
	s := fmt.Sprintf("%.2f", x)
	intPart, frac := s[:len(s)-3], s[len(s)-3:]
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := "$" + b.String() + frac
	if neg && out != "$0.00" {
		out = "-" + out
	}
	return out
}

// Percent prints a share in [0, 1] as a whole percentage.
func Percent(x float64) string { return fmt.Sprintf("%.0f%%", 100*x) }

// CPU prints cores as Kubernetes writes them: millicores, rounded up so
// that a recommendation is never cut below what was computed.
func CPU(cores float64) string {
	q := quantity.Request(corev1.ResourceCPU, cores, 0)
	return q.String()
}

// Memory prints bytes as Kubernetes writes them, rounded up to whole Mi
// (bytes below one).
func Memory(bytes float64) string {
	q := quantity.Request(corev1.ResourceMemory, bytes, 0)
	return q.String()
}

// IsTerminal reports whether w is a terminal: only then are colours and
// progress drawn.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
