package requests

import (
	"testing"
	"time"

	"github.com/example/personaldata/service/core"
)

func TestDueDate(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, core.Stockholm)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tt := range []struct {
		received  string
		extension int
		want      string
	}{
		{"2026-01-15 10:00", 0, "2026-02-15"},
		{"2026-01-31 10:00", 0, "2026-02-28"}, // no 31 February
		{"2028-01-31 10:00", 0, "2028-02-29"}, // leap year
		{"2026-03-31 09:00", 0, "2026-04-30"},
		{"2026-12-31 23:30", 0, "2027-01-31"}, // over the year end
		{"2026-01-31 10:00", 2, "2026-04-30"}, // extended by two months from receipt, not from the clamped date
		{"2026-11-30 12:00", 1, "2027-01-30"}, // extended by one
		{"2026-03-29 00:30", 0, "2026-04-29"}, // the night summer time starts
		{"2026-10-25 02:30", 0, "2026-11-25"}, // the hour that happens twice
	} {
		got, end := dueDate(at(tt.received), tt.extension)
		if got != tt.want {
			t.Errorf("dueDate(%s, +%d) = %s, want %s", tt.received, tt.extension, got, tt.want)
		}
		if end.In(core.Stockholm).Format("2006-01-02 15:04:05") != tt.want+" 23:59:59" {
			t.Errorf("dueDate(%s) ends at %s, want the end of %s", tt.received, end.In(core.Stockholm), tt.want)
		}
	}
	// A request received just before midnight UTC is already the next day in Sweden.
	got, _ := dueDate(time.Date(2026, 1, 30, 23, 30, 0, 0, time.UTC), 0)
	if got != "2026-02-28" {
		t.Errorf("received 2026-01-30 23:30 UTC (31 January in Sweden): due %s, want 2026-02-28", got)
	}
}
