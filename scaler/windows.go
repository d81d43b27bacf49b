package scaler

import (
	"fmt"
	"strings"
	"time"
)

// Window is a weekly time range, in its own time zone, during which
// workloads are kept awake.
type Window struct {
	Text       string
	days       [7]bool // by time.Weekday of the start
	start, end int     // minutes after midnight; end <= start runs past midnight
	loc        *time.Location
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseWindows parses every window, naming each bad one by its index.
func ParseWindows(texts []string) ([]Window, error) {
	var out []Window
	var errs []string
	for i, t := range texts {
		w, err := ParseWindow(t)
		if err != nil {
			errs = append(errs, fmt.Sprintf("scaler.wake_windows[%d]: %v", i, err))
			continue
		}
		out = append(out, w)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return out, nil
}

// ParseWindow reads "DAYS HH:MM-HH:MM [ZONE]": DAYS is a comma-separated
// list of days (Mon) and ranges (Mon-Fri, Fri-Mon) or *; ZONE is an IANA
// name and defaults to UTC. A range whose end is not after its start ends
// the next day ("Fri 22:00-06:00" covers Friday night).
func ParseWindow(text string) (Window, error) {
	f := strings.Fields(text)
	if len(f) < 2 || len(f) > 3 {
		return Window{}, fmt.Errorf("%q: want DAYS HH:MM-HH:MM [ZONE], e.g. \"Mon-Fri 08:00-18:00 Europe/Berlin\"", text)
	}
	w := Window{Text: text, loc: time.UTC}
	if err := parseDays(f[0], &w.days); err != nil {
		return Window{}, fmt.Errorf("%q: %v", text, err)
	}
	from, to, ok := strings.Cut(f[1], "-")
	if !ok {
		return Window{}, fmt.Errorf("%q: time range %q: want HH:MM-HH:MM", text, f[1])
	}
	var err error
	if w.start, err = parseClock(from); err != nil {
		return Window{}, fmt.Errorf("%q: %v", text, err)
	}
	if w.end, err = parseClock(to); err != nil {
		return Window{}, fmt.Errorf("%q: %v", text, err)
	}
	if len(f) == 3 {
		if w.loc, err = time.LoadLocation(f[2]); err != nil {
			return Window{}, fmt.Errorf("%q: time zone %q: %v", text, f[2], err)
		}
	}
	return w, nil
}

func parseDays(s string, days *[7]bool) error {
	if s == "*" {
		for i := range days {
			days[i] = true
		}
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, "-")
		first, ok := weekdays[strings.ToLower(a)]
		if !ok {
			return fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", a)
		}
		last := first
		if isRange {
			if last, ok = weekdays[strings.ToLower(b)]; !ok {
				return fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", b)
			}
		}
		for d := first; ; d = (d + 1) % 7 {
			days[d] = true
			if d == last {
				break
			}
		}
	}
	return nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		if s == "24:00" {
			return 24 * 60, nil
		}
		return 0, fmt.Errorf("time %q: want HH:MM from 00:00 to 24:00", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Contains says whether t falls inside the window.
func (w Window) Contains(t time.Time) bool {
	local := t.In(w.loc)
	minute := local.Hour()*60 + local.Minute()
	today := local.Weekday()
	if w.end > w.start {
		return w.days[today] && minute >= w.start && minute < w.end
	}
	// Past midnight: the evening part belongs to today, the morning part
	// to yesterday's window.
	yesterday := (today + 6) % 7
	return (w.days[today] && minute >= w.start) || (w.days[yesterday] && minute < w.end)
}

// maxWindowLookback bounds OpenedAt's walk back: a weekly schedule that
// has not opened within a week and a day is always open.
const maxWindowLookback = 8 * 24 * time.Hour

// OpenedAt returns when the windows around t opened: the first minute of
// the run of in-window minutes that reaches t, across windows that touch
// or overlap (Mon-Fri 00:00-24:00 is one opening, not five). For windows
// always open, it is t less maxWindowLookback. ok is false outside every
// window.
func OpenedAt(ws []Window, t time.Time) (opened time.Time, ok bool) {
	t = t.Truncate(time.Minute)
	if !InWindow(ws, t) {
		return time.Time{}, false
	}
	opened = t
	for opened.After(t.Add(-maxWindowLookback)) && InWindow(ws, opened.Add(-time.Minute)) {
		opened = opened.Add(-time.Minute)
	}
	return opened, true
}

// InWindow says whether t falls in any of the windows.
func InWindow(ws []Window, t time.Time) bool {
	for _, w := range ws {
		if w.Contains(t) {
			return true
		}
	}
	return false
}
