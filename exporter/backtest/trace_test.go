package backtest

import (
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const borgHeader = "time,unique_id,collection_id,instance_index,priority,scheduling_class,machine_id,alloc_collection_id,alloc_instance_index,collection_type,avg_cpu_usage,avg_memory_usage,max_cpu_usage,max_memory_usage,random_sample_cpu_usage,assigned_memory,sample_rate,memory_limit,cpu_limit\n"

func borgRow(t int64, machine string, avgCPU, avgMem, maxCPU, maxMem float64) string {
	return strings.Join([]string{
		itoa(t), "7-1", "7", "1", "200", "2", machine, "0", "-1", "0",
		ftoa(avgCPU), ftoa(avgMem), ftoa(maxCPU), ftoa(maxMem), "0", "0", "1", "0.004", "0.002",
	}, ",") + "\n"
}

func itoa(v int64) string   { return strconv.FormatInt(v, 10) }
func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func TestReadBorgExcerpt(t *testing.T) {
	f, err := os.Open("testdata/borg_382_22.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := ReadBorg(f)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Name != "borg/382417448240-22" || tr.Source != "borg" || len(tr.Samples) != 890 {
		t.Fatalf("%s %s %d samples", tr.Name, tr.Source, len(tr.Samples))
	}
	s := tr.Samples[0]
	// time 900077000000 µs after the origin, which is 600 s before
	// 2019-05-01 00:00 PDT; the instance started there.
	if want := time.Date(2019, 5, 1, 7, 0, 0, 0, time.UTC).Add(900077*time.Second - 600*time.Second); !s.Time.Equal(want) || !s.Start {
		t.Errorf("first sample at %v start %v, want %v true", s.Time, s.Start, want)
	}
	// It started 77 s into a window, which it only fills for 223 s.
	if s.Duration != 223*time.Second || math.Abs(s.CPURequest-0.0016193389892570002*BorgCoresPerNCU) > 1e-12 ||
		math.Abs(s.MemoryRequest-0.002616882324218*BorgBytesPerNMU) > 1 {
		t.Errorf("first sample %+v", s)
	}
	if tr.Samples[1].Start {
		t.Error("second sample marked as a start")
	}
}

func TestReadBorgRestartsAndDuplicates(t *testing.T) {
	in := borgHeader +
		borgRow(300000000, "m1", 0.01, 0.002, 0.02, 0.003) + // running at the trace start
		borgRow(600000000, "m1", 0.01, 0.002, 0.02, 0.003) +
		borgRow(700000000, "m1", 0.01, 0.002, 0.02, 0.003) + // previous window cut to 100 s; off the grid
		borgRow(700000000, "m1", 0.03, 0.001, 0.01, 0.004) + // repeated window: merged
		borgRow(900000000, "m1", 0.01, 0.002, 0.02, 0.003) + // back on the grid: not a start
		borgRow(1200000000, "m2", 0.01, 0.002, 0.02, 0.003) + // new machine
		borgRow(1800000000, "m2", 0.01, 0.002, 0.02, 0.003) // after a gap
	tr, err := ReadBorg(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var starts []bool
	for _, s := range tr.Samples {
		starts = append(starts, s.Start)
	}
	if want := []bool{false, false, true, false, true, true}; fmtBools(starts) != fmtBools(want) {
		t.Errorf("starts %v, want %v", starts, want)
	}
	if tr.Samples[1].Duration != 100*time.Second {
		t.Errorf("cut window lasts %v, want 100s", tr.Samples[1].Duration)
	}
	m := tr.Samples[2]
	if m.Duration != 200*time.Second {
		t.Errorf("off-grid window lasts %v, want 200s to the grid line", m.Duration)
	}
	if m.CPU != 0.03*BorgCoresPerNCU || m.Memory != 0.002*BorgBytesPerNMU || m.MemoryMax != 0.004*BorgBytesPerNMU {
		t.Errorf("merged sample %+v, want the larger of each figure", m)
	}
}

func fmtBools(b []bool) string {
	var s []string
	for _, v := range b {
		if v {
			s = append(s, "t")
		} else {
			s = append(s, "f")
		}
	}
	return strings.Join(s, ",")
}

func TestReadBorgErrors(t *testing.T) {
	ok := borgRow(300000000, "m1", 0.01, 0.002, 0.02, 0.003)
	for _, c := range []struct{ name, in, want string }{
		{"empty", "", "line 1: empty file"},
		{"header only", borgHeader, "no rows"},
		{"missing column", strings.Replace(borgHeader, "max_memory_usage", "x", 1) + ok, `line 1: missing column "max_memory_usage"`},
		{"not a number", borgHeader + strings.Replace(ok, "0.02,", "abc,", 1), `line 2, column 46 (max_cpu_usage): "abc" is not a number`},
		{"negative", borgHeader + strings.Replace(ok, ",0.003,", ",-0.003,", 1), "line 2, column 51 (max_memory_usage): -0.003 is not a finite number >= 0"},
		{"NaN", borgHeader + strings.Replace(ok, "0.01,", "NaN,", 1), "(avg_cpu_usage): NaN is not a finite number"},
		{"fractional time", borgHeader + strings.Replace(ok, "300000000,", "3.5,", 1), "line 2, column 1 (time): 3.5 is not a whole number"},
		{"time goes back", borgHeader + ok + borgRow(200000000, "m1", 0, 0, 0, 0), "line 3, column 1 (time): 200000000 is before the previous row's 300000000"},
		{"other instance", borgHeader + ok + strings.Replace(borgRow(600000000, "m1", 0, 0, 0, 0), "7-1", "7-2", 1), `line 3, column 11 (unique_id): "7-2" differs from the first row's "7-1"`},
		{"short row", borgHeader + "1,2,3\n", "line 2, column 1: wrong number of fields"},
		{"bad quote", borgHeader + `"x` + "\n", "line 2, column 4: extraneous or missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadBorg(strings.NewReader(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestReadAzure(t *testing.T) {
	trs, err := ReadAzureFiles("testdata/azure_avg.csv", "testdata/azure_max.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(trs) != 10 || trs[0].Name != "azure/1633748" || len(trs[0].Samples) != 2000 {
		t.Fatalf("%d traces, first %s with %d samples", len(trs), trs[0].Name, len(trs[0].Samples))
	}
	s := trs[0].Samples[0]
	// 44.459092 % and 71.889037 % of a 2-core VM; the request is the VM.
	if math.Abs(s.CPU-0.88918184) > 1e-12 || math.Abs(s.CPUMax-1.43778074) > 1e-12 || s.CPURequest != AzureVMCores || !math.IsNaN(s.Memory) {
		t.Errorf("first sample %+v", s)
	}
	if d := trs[0].Samples[1].Time.Sub(s.Time); d != 5*time.Minute {
		t.Errorf("step %v", d)
	}

	const avg = "step,a,b\n1,10,20\n2,11,21\n"
	for _, c := range []struct{ name, avg, max, want string }{
		{"header differs", avg, "step,a,c\n1,10,20\n2,11,21\n", "max: line 1: header differs"},
		{"row count", avg, "step,a,b\n1,10,20\n", "max: 1 rows, the avg file has 2"},
		{"max below avg", avg, "step,a,b\n1,10,20\n2,11,20\n", "max: line 3, column 3 (b): 20 is below the mean 21"},
		{"not a percentage", "step,a,b\n1,10,200\n", avg, "avg: line 2, column 6 (b): \"200\" is not a percentage"},
		{"step order", "step,a,b\n2,10,20\n1,11,21\n", avg, "avg: line 3, column 1 (step): 1 is not after the previous row's 2"},
		{"repeated VM", "step,a,a\n1,10,20\n", avg, `avg: line 1, column 3: VM id "a" is empty or repeated`},
		{"no header", "", avg, "avg: line 1: empty file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadAzure(strings.NewReader(c.avg), strings.NewReader(c.max))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestReadBorgTooBig(t *testing.T) {
	var b strings.Builder
	b.WriteString(borgHeader)
	for i := range 3 {
		b.WriteString(borgRow(int64(300000000*(i+1)), "m", 0, 0, 0, 0))
	}
	if _, err := readBorgLimited(strings.NewReader(b.String()), 2); err == nil || !strings.Contains(err.Error(), "line 4: more than 2 rows") {
		t.Errorf("error %v, want a row limit on line 4", err)
	}
}

// FuzzReadBorg checks that no input panics the reader and that whatever it
// accepts is a well-formed trace.
func FuzzReadBorg(f *testing.F) {
	data, err := os.ReadFile("testdata/borg_382_22.csv")
	if err != nil {
		f.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	f.Add(strings.Join(lines[:4], ""))
	f.Add(borgHeader + borgRow(300000000, "m1", 0.01, 0.002, 0.02, 0.003) + borgRow(300000000, "m2", 1, 1, 1, 1))
	f.Add(borgHeader + `"a,b` + "\n")
	f.Add("time\n1\n")
	f.Fuzz(func(t *testing.T, in string) {
		tr, err := ReadBorg(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") && !strings.HasPrefix(err.Error(), "no rows") {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		if len(tr.Samples) == 0 || !strings.HasPrefix(tr.Name, "borg/") {
			t.Fatalf("accepted an empty or unnamed trace: %+v", tr)
		}
		for i, s := range tr.Samples {
			for _, v := range []float64{s.CPU, s.CPUMax, s.Memory, s.MemoryMax, s.CPURequest, s.MemoryRequest} {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Fatalf("sample %d has %v", i, v)
				}
			}
			if s.Duration <= 0 || s.Duration > 300*time.Second || (i > 0 && !s.Time.After(tr.Samples[i-1].Time)) {
				t.Fatalf("sample %d: time %v duration %v", i, s.Time, s.Duration)
			}
		}
		if err := checkTrace(tr); err != nil {
			t.Fatal(err)
		}
	})
}
