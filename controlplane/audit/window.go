package audit

import (
	"errors"
	"fmt"
	"time"

	"github.com/hopguard/hopguard/api/v1alpha1"
)

// dayNames maps the day names a ChangeWindow uses to weekdays.
var dayNames = map[string]time.Weekday{
	"Mon": time.Monday, "Tue": time.Tuesday, "Wed": time.Wednesday, "Thu": time.Thursday,
	"Fri": time.Friday, "Sat": time.Saturday, "Sun": time.Sunday,
}

// InWindow reports whether t falls inside one of ws. A window covers, on
// each of its days and in its timezone (UTC when empty), the minutes from
// From included to To excluded. With no windows declared every time is in
// window. A window with an unknown day, a malformed time, To not after
// From, or a timezone that cannot be loaded is an error naming its index;
// the other windows are still consulted, so a true result is reliable even
// then.
func InWindow(ws []v1alpha1.ChangeWindow, t time.Time) (bool, error) {
	if len(ws) == 0 {
		return true, nil
	}
	var errs []error
	for i, w := range ws {
		in, err := inWindow(w, t)
		if err != nil {
			errs = append(errs, fmt.Errorf("audit: changeWindows[%d]: %w", i, err))
			continue
		}
		if in {
			return true, nil
		}
	}
	return false, errors.Join(errs...)
}

func inWindow(w v1alpha1.ChangeWindow, t time.Time) (bool, error) {
	tz := w.Timezone
	if tz == "" {
		tz = "UTC"
	}
	if tz == "Local" {
		return false, fmt.Errorf("timezone %q: want an IANA zone name", tz)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return false, fmt.Errorf("timezone %q: %w", tz, err)
	}
	from, err := minuteOfDay(w.From)
	if err != nil {
		return false, fmt.Errorf("from: %w", err)
	}
	to, err := minuteOfDay(w.To)
	if err != nil {
		return false, fmt.Errorf("to: %w", err)
	}
	if to <= from {
		return false, fmt.Errorf("to %s is not after from %s", w.To, w.From)
	}
	days := make(map[time.Weekday]bool, len(w.Days))
	for _, d := range w.Days {
		wd, ok := dayNames[d]
		if !ok {
			return false, fmt.Errorf("unknown day %q (want Mon … Sun)", d)
		}
		days[wd] = true
	}
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	return days[lt.Weekday()] && m >= from && m < to, nil
}

// minuteOfDay parses "HH:MM" (00:00–23:59) into minutes since midnight.
func minuteOfDay(s string) (int, error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil || h > 23 || m > 59 || h < 0 || m < 0 {
		return 0, fmt.Errorf("%q is not HH:MM between 00:00 and 23:59", s)
	}
	return h*60 + m, nil
}
