package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDollars(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "$0.00"}, {0.004, "$0.00"}, {-0.004, "$0.00"}, {0.005, "$0.01"}, {12.345, "$12.35"}, {999.999, "$1,000.00"},
		{1234567.891, "$1,234,567.89"}, {-1500, "-$1,500.00"}, {100, "$100.00"},
	} {
		if got := Dollars(tc.in); got != tc.want {
			t.Errorf("Dollars(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestQuantities(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  string
		want string
	}{
		{"cpu rounds up to a millicore", CPU(0.3521), "353m"},
		{"cpu exact", CPU(0.25), "250m"},
		{"cpu whole cores", CPU(2), "2"},
		{"cpu never zero", CPU(0), "1m"},
		{"memory rounds up to Mi", Memory(566231040 + 1), "541Mi"},
		{"memory exact Gi", Memory(1 << 30), "1Gi"},
		{"memory never zero", Memory(0), "1"},
		{"memory below a Mi in bytes, as the webhook writes it", Memory(1000), "1k"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestRowsWrite(t *testing.T) {
	r := &Rows{Header: []string{"NAME", "COST"}}
	r.Add("a|b", "$1.00")
	r.Add("long-name, with comma", "$10.00")
	for _, tc := range []struct {
		format string
		style  Style
		want   string
	}{
		{Table, Style{}, "NAME                   COST\na|b                    $1.00\nlong-name, with comma  $10.00\n"},
		{Wide, Style{}, "NAME                   COST\na|b                    $1.00\nlong-name, with comma  $10.00\n"},
		{CSV, Style{on: true}, "NAME,COST\na|b,$1.00\n\"long-name, with comma\",$10.00\n"},
		{Markdown, Style{on: true}, "| NAME | COST |\n| --- | --- |\n| a\\|b | $1.00 |\n| long-name, with comma | $10.00 |\n"},
		{Table, Style{on: true}, "\x1b[1mNAME                   COST\x1b[0m\na|b                    $1.00\nlong-name, with comma  $10.00\n"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			var b bytes.Buffer
			if err := r.Write(&b, tc.format, tc.style); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%q\nwant\n%q", b.String(), tc.want)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	v := struct {
		Name  string   `json:"name"`
		Cost  float64  `json:"cost_dollars"`
		Unset *float64 `json:"unset"`
	}{"web", 1.5, nil}
	for _, tc := range []struct{ format, want string }{
		{JSON, "{\n  \"name\": \"web\",\n  \"cost_dollars\": 1.5,\n  \"unset\": null\n}\n"},
		// YAML keys are the JSON names, numbers stay numbers.
		{YAML, "cost_dollars: 1.5\nname: web\nunset: null\n"},
	} {
		var b bytes.Buffer
		if err := Encode(&b, tc.format, v); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%s: got %q, want %q", tc.format, b.String(), tc.want)
		}
	}
}

func TestStyleFor(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if StyleFor(f).Colored() || StyleFor(&bytes.Buffer{}).Colored() {
		t.Error("colour on a file or a buffer")
	}
	if got := StyleFor(f).Red("x"); got != "x" {
		t.Errorf("plain style wrote %q", got)
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !StyleFor(tty).Colored() {
			t.Error("no colour on a terminal")
		}
		t.Setenv("NO_COLOR", "")
		if StyleFor(tty).Colored() {
			t.Error("colour on a terminal with NO_COLOR set (even empty)")
		}
	} else {
		t.Logf("no terminal to test colour on: %v", err)
	}
	if got := (Style{on: true}).Green("ok"); got != "\x1b[32mok\x1b[0m" {
		t.Errorf("Green = %q", got)
	}
}

// syncBuffer is written by the progress goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgress(t *testing.T) {
	t.Run("not a terminal: silent", func(t *testing.T) {
		var b syncBuffer
		p := NewProgress(&b)
		p.Step("querying")
		time.Sleep(2 * progressDelay)
		p.Stop()
		p.Stop()
		if b.String() != "" {
			t.Errorf("wrote %q to a non-terminal", b.String())
		}
	})
	t.Run("quick on a terminal: silent", func(t *testing.T) {
		var b syncBuffer
		p := startProgress(&b, true)
		p.Step("querying")
		p.Stop()
		if b.String() != "" {
			t.Errorf("a step quicker than %s drew %q", progressDelay, b.String())
		}
	})
	t.Run("slow on a terminal: drawn, then erased", func(t *testing.T) {
		var b syncBuffer
		p := startProgress(&b, true)
		p.Step("querying Prometheus")
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(b.String(), "querying Prometheus") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		p.Stop()
		out := b.String()
		if !strings.Contains(out, "querying Prometheus") {
			t.Fatalf("never drew the step: %q", out)
		}
		if !strings.HasSuffix(out, "\r\x1b[K") {
			t.Errorf("did not erase its line at the end: %q", out)
		}
	})
}

func TestRowsPaint(t *testing.T) {
	on := Style{on: true}
	r := &Rows{Header: []string{"A", "B", "C"}}
	r.Add("x", "yes", "1")
	r.Paint(1, on.Green)
	r.Add("longer", "no", "2")
	var b bytes.Buffer
	if err := r.Write(&b, Table, on); err != nil {
		t.Fatal(err)
	}
	// Columns line up as if there were no colour; the padding is outside it.
	want := "\x1b[1mA       B    C\x1b[0m\nx       \x1b[32myes\x1b[0m  1\nlonger  no   2\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	if err := r.Write(&b, CSV, on); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "\x1b") {
		t.Errorf("colour in CSV: %q", b.String())
	}
}
