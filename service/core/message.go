package core

import (
	"errors"
	"strings"
	"time"
	_ "time/tzdata"
)

// ErrNothingToQueue stops an update that has nothing left to queue.
var ErrNothingToQueue = errors.New("queued already")

// ComplaintSV tells of the right to complain (Art. 12(4), 77, 79).
const ComplaintSV = "Du har rätt att klaga till Integritetsskyddsmyndigheten (IMY), Box 8114, 104 20 Stockholm, imy.se, " +
	"och att väcka talan i allmän domstol."

// ShortID is the part of a request id a requester can quote.
func ShortID(id string) string { return strings.ToUpper(id[:min(8, len(id))]) }

// Day is the date of a Unix-nanosecond time in Sweden.
func Day(ns int64) string { return time.Unix(0, ns).In(Stockholm).Format(time.DateOnly) }

// Stockholm is Swedish time, in which the accounting law's calendar year runs.
var Stockholm = func() *time.Location {
	l, err := time.LoadLocation("Europe/Stockholm")
	if err != nil {
		panic(err) // embedded by time/tzdata: cannot happen
	}
	return l
}()
