package forecast

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// azureLimits bound what ReadAzure reads, so that a malformed or hostile
// file cannot take the process's memory. The full 100-VM sample is two
// files of 3.7 MB with 51 columns and 8,005 lines, far inside them.
type azureLimits struct {
	bytes   int64 // of input
	columns int   // VM columns
	rows    int
	cells   int // rows × columns
}

var defaultAzureLimits = azureLimits{bytes: 256 << 20, columns: 10_000, rows: 1_000_000, cells: 20_000_000}

// AzureStep is the spacing of the Azure V1 vm_cpu_readings.
const AzureStep = 5 * time.Minute

// AzureEpoch is the Start given to the point with step 1. The selection
// in /work/shared/data does not keep the absolute start of the trace, so
// the series are pinned to a fixed Monday midnight: daily and weekly
// phases stay consistent between VMs, but do not mean wall-clock hours.
var AzureEpoch = time.Date(2016, 11, 14, 0, 0, 0, 0, time.UTC)

// ReadAzure reads the CSV layout of the Azure V1 CPU sample: a header
// "step,<vm id>,..." then one row per 5-minute reading, "<step>,<cpu %>,...",
// with steps consecutive from any start. It returns one Series per VM.
// Empty cells and "NaN" are missing points; negative or infinite values,
// duplicate ids and gaps in step are errors that name the line and column.
//
// The input is bounded: at most 256 MiB, 10,000 VMs, 1,000,000 rows and
// 20,000,000 values.
func ReadAzure(r io.Reader) ([]Series, error) { return readAzure(r, defaultAzureLimits) }

func readAzure(r io.Reader, lim azureLimits) ([]Series, error) {
	lr := &io.LimitedReader{R: r, N: lim.bytes + 1}
	cr := csv.NewReader(lr)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1 // checked here, to name the line in our words

	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("azure csv: empty input")
	}
	if err != nil {
		return nil, azureErr(lr, lim, err)
	}
	if len(header) < 2 || strings.TrimSpace(strings.TrimPrefix(header[0], "\ufeff")) != "step" {
		return nil, errors.New(`azure csv: line 1, column 1: header must be "step,<vm id>,..."`)
	}
	if len(header)-1 > lim.columns {
		return nil, fmt.Errorf("azure csv: line 1: %d VM columns, more than %d", len(header)-1, lim.columns)
	}
	series := make([]Series, len(header)-1)
	seen := make(map[string]int, len(series))
	for i, id := range header[1:] {
		id = strings.TrimSpace(id)
		if id == "" {
			return nil, fmt.Errorf("azure csv: line 1, column %d: empty vm id", i+2)
		}
		if j, ok := seen[id]; ok {
			return nil, fmt.Errorf("azure csv: line 1, column %d: vm id %q repeats column %d", i+2, id, j+2)
		}
		seen[id] = i
		series[i] = Series{Name: id, Step: AzureStep}
	}

	var first int64
	rows := 0
	for {
		rec, err := cr.Read()
		if lr.N <= 0 {
			// The input was cut at the limit, so this record may be a
			// fragment: the size is the error, whatever the record says.
			return nil, fmt.Errorf("azure csv: larger than %d bytes", lim.bytes)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, azureErr(lr, lim, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(series)+1 {
			return nil, fmt.Errorf("azure csv: line %d: %d fields, header has %d", line, len(rec), len(series)+1)
		}
		rows++
		if rows > lim.rows || rows*len(series) > lim.cells {
			return nil, fmt.Errorf("azure csv: line %d: more than %d rows or %d values", line, lim.rows, lim.cells)
		}
		step, err := strconv.ParseInt(strings.TrimSpace(rec[0]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("azure csv: line %d, column 1: step %q is not an integer", line, rec[0])
		}
		if rows == 1 {
			if step < 0 || step > 1<<40 {
				return nil, fmt.Errorf("azure csv: line %d, column 1: step %d out of range", line, step)
			}
			first = step
		} else if step != first+int64(rows-1) {
			return nil, fmt.Errorf("azure csv: line %d, column 1: step %d, want %d (steps must be consecutive)", line, step, first+int64(rows-1))
		}
		for i, cell := range rec[1:] {
			v, err := parseAzureCell(cell)
			if err != nil {
				return nil, fmt.Errorf("azure csv: line %d, column %d (vm %s): %v", line, i+2, series[i].Name, err)
			}
			series[i].Values = append(series[i].Values, v)
		}
	}
	if rows == 0 {
		return nil, errors.New("azure csv: no data rows")
	}
	start := AzureEpoch.Add(time.Duration(first-1) * AzureStep)
	for i := range series {
		series[i].Start = start
	}
	return series, nil
}

func parseAzureCell(cell string) (float64, error) {
	cell = strings.TrimSpace(cell)
	switch strings.ToLower(cell) {
	case "", "nan", "na":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(cell, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", cell)
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not finite", cell)
	}
	if v < 0 {
		return 0, fmt.Errorf("%v: CPU utilisation cannot be negative", v)
	}
	return v, nil
}

func azureErr(lr *io.LimitedReader, lim azureLimits, err error) error {
	if lr.N <= 0 {
		return fmt.Errorf("azure csv: larger than %d bytes", lim.bytes)
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("azure csv: line %d, column %d: %v", pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("azure csv: %w", err)
}
