package requests

import (
	"time"

	"github.com/example/personaldata/service/core"
)

// monthsAfter is the date months calendar months after t's date in Sweden:
// the same day of the month, or the month's last day when it has no such
// day (31 January + 1 month = 28 or 29 February), as Art. 12(3)'s "one
// month" is counted (Regulation 1182/71, Art. 3(2)(c)). It is midnight at
// the start of that day, Swedish time.
func monthsAfter(t time.Time, months int) time.Time {
	y, m, d := t.In(core.Stockholm).Date()
	first := time.Date(y, m+time.Month(months), 1, 0, 0, 0, 0, core.Stockholm)
	last := first.AddDate(0, 1, -1).Day()
	return time.Date(first.Year(), first.Month(), min(d, last), 0, 0, 0, 0, core.Stockholm)
}

// endOfDay is the last instant of the day that starts at day.
func endOfDay(day time.Time) time.Time {
	y, m, d := day.Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, core.Stockholm).Add(-time.Nanosecond)
}

// dueDate is when a request received at received must be answered, given
// months of extension: the date, and the end of that day.
func dueDate(received time.Time, extension int) (string, time.Time) {
	day := monthsAfter(received, 1+extension)
	return day.Format(time.DateOnly), endOfDay(day)
}
