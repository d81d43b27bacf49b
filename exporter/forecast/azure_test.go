package forecast

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestReadAzure(t *testing.T) {
	got, err := ReadAzure(strings.NewReader("step,a,b\n10,1.5,2\n11,,NaN\n12,0,4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Fatalf("series = %+v", got)
	}
	wantStart := AzureEpoch.Add(9 * 5 * time.Minute)
	for _, s := range got {
		if !s.Start.Equal(wantStart) || s.Step != AzureStep || len(s.Values) != 3 {
			t.Errorf("%s: start %v step %v len %d", s.Name, s.Start, s.Step, len(s.Values))
		}
	}
	if v := got[0].Values; v[0] != 1.5 || !math.IsNaN(v[1]) || v[2] != 0 {
		t.Errorf("a = %v", v)
	}
	if v := got[1].Values; v[0] != 2 || !math.IsNaN(v[1]) || v[2] != 4 {
		t.Errorf("b = %v", v)
	}
}

func TestReadAzureErrors(t *testing.T) {
	for _, c := range []struct {
		in, want string
	}{
		{"", "empty input"},
		{"time,a\n1,2\n", "line 1, column 1: header must be"},
		{"step\n1\n", "line 1, column 1: header must be"},
		{"step,a,\n1,2,3\n", "line 1, column 3: empty vm id"},
		{"step,a,b,a\n1,2,3,4\n", `line 1, column 4: vm id "a" repeats column 2`},
		{"step,a\n", "no data rows"},
		{"step,a,b\n1,2,3\n2,3\n", "line 3: 2 fields, header has 3"},
		{"step,a\nx,2\n", `line 2, column 1: step "x" is not an integer`},
		{"step,a\n-1,2\n", "line 2, column 1: step -1 out of range"},
		{"step,a\n1,2\n3,2\n", "line 3, column 1: step 3, want 2"},
		{"step,a,b\n1,2,3\n2,2,x\n", `line 3, column 3 (vm b): "x" is not a number`},
		{"step,a\n1,-0.5\n", "line 2, column 2 (vm a): -0.5: CPU utilisation cannot be negative"},
		{"step,a\n1,+Inf\n", `line 2, column 2 (vm a): "+Inf" is not finite`},
		{"step,a\n1,\"2\n", "line 2, column"},
		{"step,a\n1,2\"x\n", "line 2, column 4"},
	} {
		_, err := ReadAzure(strings.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ReadAzure(%q) error = %v, want %q", c.in, err, c.want)
		}
	}
}

func TestReadAzureLimits(t *testing.T) {
	in := "step,a,b\n1,1,2\n2,3,4\n3,5,6\n"
	for _, c := range []struct {
		lim  azureLimits
		want string
	}{
		{azureLimits{bytes: 10, columns: 10, rows: 10, cells: 100}, "larger than 10 bytes"},
		{azureLimits{bytes: 1000, columns: 1, rows: 10, cells: 100}, "line 1: 2 VM columns, more than 1"},
		{azureLimits{bytes: 1000, columns: 10, rows: 2, cells: 100}, "line 4: more than 2 rows"},
		{azureLimits{bytes: 1000, columns: 10, rows: 10, cells: 5}, "line 4: more than 10 rows or 5 values"},
	} {
		_, err := readAzure(strings.NewReader(in), c.lim)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("limits %+v: error = %v, want %q", c.lim, err, c.want)
		}
	}
	if _, err := readAzure(strings.NewReader(in), azureLimits{bytes: int64(len(in)), columns: 2, rows: 3, cells: 6}); err != nil {
		t.Errorf("input exactly at the limits: %v", err)
	}
}

func readExcerpt(t testing.TB) []Series {
	t.Helper()
	f, err := os.Open("testdata/azure_v1_avg_cpu_5min_4vms.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ReadAzure(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReadAzureExcerpt(t *testing.T) {
	s := readExcerpt(t)
	names := []string{"1633748", "1962655", "737498", "955414"}
	if len(s) != len(names) {
		t.Fatalf("%d series", len(s))
	}
	for i, x := range s {
		if x.Name != names[i] || len(x.Values) != 8004 || !x.Start.Equal(AzureEpoch) {
			t.Errorf("series %d: %s, %d values, start %v", i, x.Name, len(x.Values), x.Start)
		}
	}
	if s[0].Values[0] != 44.459092 || s[3].Values[8003] != 1.662783 {
		t.Errorf("first/last values %v %v", s[0].Values[0], s[3].Values[8003])
	}
	h, err := s[0].Resample(time.Hour)
	if err != nil || len(h.Values) != 667 {
		t.Fatalf("hourly: %d values, %v", len(h.Values), err)
	}
}

func FuzzReadAzure(f *testing.F) {
	if data, err := os.ReadFile("testdata/azure_v1_avg_cpu_5min_4vms.csv"); err == nil {
		f.Add(data[:bytes.IndexByte(data[2000:], '\n')+2001])
	}
	for _, seed := range []string{
		"step,a,b\n1,1.5,2\n2,,NaN\n3,0,4\n",
		"\ufeffstep,x\n7,1e2\n8,0x10\n",
		"step,a\n1,\"2\"\n2,\"3\n\"\n",
		"step,a,a\n",
		"step,a\r\n1,2\r\n\r\n2,3\r\n",
		"step,\"a,b\",c\n1,2,3\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		series, err := ReadAzure(bytes.NewReader(data))
		if err != nil {
			if series != nil {
				t.Fatal("series with an error")
			}
			if !strings.HasPrefix(err.Error(), "azure csv: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, s := range series {
			if s.Name == "" || seen[s.Name] {
				t.Fatalf("bad or repeated name %q", s.Name)
			}
			seen[s.Name] = true
			if len(s.Values) != len(series[0].Values) || len(s.Values) == 0 || s.Step != AzureStep {
				t.Fatalf("%s: %d values, step %v", s.Name, len(s.Values), s.Step)
			}
			for _, v := range s.Values {
				if !math.IsNaN(v) && (v < 0 || math.IsInf(v, 0)) {
					t.Fatalf("%s: value %v", s.Name, v)
				}
			}
			// Whatever is read must be forecastable without panics.
			if m, err := Fit(s, Options{}); err == nil {
				for _, p := range m.Forecast(3) {
					if !(p.P50 >= 0 && p.P90 >= p.P50) {
						t.Fatalf("%s: forecast %+v", s.Name, p)
					}
				}
			}
		}
	})
}
