package scaler

import (
	"strings"
	"testing"
	"time"
)

func TestWindows(t *testing.T) {
	berlin, at := clock(t)
	// 2026-11-23 is a Monday.
	tests := []struct {
		window string
		at     time.Time
		in     bool
	}{
		{"Mon-Fri 08:00-18:00 Europe/Berlin", at("2026-11-23 08:00", berlin), true},
		{"Mon-Fri 08:00-18:00 Europe/Berlin", at("2026-11-23 07:59", berlin), false},
		{"Mon-Fri 08:00-18:00 Europe/Berlin", at("2026-11-23 18:00", berlin), false},
		{"Mon-Fri 08:00-18:00 Europe/Berlin", at("2026-11-23 07:30", time.UTC), true}, // 08:30 in Berlin
		{"Mon-Fri 08:00-18:00 Europe/Berlin", at("2026-11-28 12:00", berlin), false},  // Saturday
		{"Mon-Fri 08:00-18:00", at("2026-11-23 07:30", time.UTC), false},              // UTC by default
		{"Sat,Sun 00:00-24:00", at("2026-11-29 23:59", time.UTC), true},
		{"Sat,Sun 00:00-24:00", at("2026-11-30 00:00", time.UTC), false},
		{"Fri 22:00-06:00", at("2026-11-27 23:00", time.UTC), true},
		{"Fri 22:00-06:00", at("2026-11-28 05:59", time.UTC), true}, // Saturday morning, Friday's window
		{"Fri 22:00-06:00", at("2026-11-28 22:30", time.UTC), false},
		{"Fri-Mon 09:00-10:00", at("2026-11-29 09:30", time.UTC), true}, // wraps over the week's end
		{"Fri-Mon 09:00-10:00", at("2026-11-25 09:30", time.UTC), false},
		{"* 12:00-13:00", at("2026-11-25 12:10", time.UTC), true},
	}
	for _, tc := range tests {
		w, err := ParseWindow(tc.window)
		if err != nil {
			t.Fatalf("%q: %v", tc.window, err)
		}
		if got := w.Contains(tc.at); got != tc.in {
			t.Errorf("%q contains %s = %v, want %v", tc.window, tc.at, got, tc.in)
		}
	}
}

func TestParseWindowErrors(t *testing.T) {
	tests := map[string]string{
		"Mon-Fri":                        "want DAYS HH:MM-HH:MM",
		"Mon-Fry 08:00-18:00":            `day "Fry"`,
		"Mon-Fri 8-18":                   `time "8": want HH:MM`,
		"Mon-Fri 08:00":                  "want HH:MM-HH:MM",
		"Mon-Fri 08:00-25:00":            `time "25:00"`,
		"Mon-Fri 08:00-18:00 Mars/Olymp": `time zone "Mars/Olymp"`,
		"Mon 08:00-18:00 UTC extra":      "want DAYS",
	}
	for text, want := range tests {
		if _, err := ParseWindow(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to say %q", text, err, want)
		}
	}
	_, err := ParseWindows([]string{"Mon 08:00-09:00", "bad"})
	if err == nil || !strings.Contains(err.Error(), "scaler.wake_windows[1]") {
		t.Errorf("error %v does not name the index", err)
	}
}

// TestOpenedAt: when the wake windows around a time opened, across windows
// that touch or overlap, so that the wake loop can tell a sleep made before
// the window (woken) from an operator's inside it (kept).
func TestOpenedAt(t *testing.T) {
	berlin, at := clock(t)
	// 2026-11-23 is a Monday.
	for _, tc := range []struct {
		windows []string
		at      time.Time
		want    time.Time // zero: outside every window
	}{
		{[]string{"Mon-Fri 08:00-18:00 Europe/Berlin"}, at("2026-11-23 10:17", berlin), at("2026-11-23 08:00", berlin)},
		{[]string{"Mon-Fri 08:00-18:00 Europe/Berlin"}, at("2026-11-23 07:59", berlin), time.Time{}},
		{[]string{"Mon-Fri 00:00-24:00"}, at("2026-11-25 12:00", time.UTC), at("2026-11-23 00:00", time.UTC)}, // one opening, not three
		{[]string{"Fri 22:00-06:00"}, at("2026-11-28 05:00", time.UTC), at("2026-11-27 22:00", time.UTC)},
		{[]string{"Mon 08:00-12:00", "Mon 11:00-14:00"}, at("2026-11-23 13:00", time.UTC), at("2026-11-23 08:00", time.UTC)},
		{[]string{"* 00:00-24:00"}, at("2026-11-23 13:00", time.UTC), at("2026-11-15 13:00", time.UTC)}, // always open
	} {
		ws, err := ParseWindows(tc.windows)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := OpenedAt(ws, tc.at)
		if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
			t.Errorf("%q at %s: opened %s (%v), want %s", tc.windows, tc.at, got, ok, tc.want)
		}
	}
}

// clock returns Berlin's time zone and a parser of "2006-01-02 15:04" in a
// zone, for the window tables.
func clock(t *testing.T) (*time.Location, func(string, *time.Location) time.Time) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("no tz database: %v", err)
	}
	return berlin, func(s string, loc *time.Location) time.Time {
		tt, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
}
