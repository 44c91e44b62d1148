package core

import (
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// Timestamp turns stored Unix nanoseconds into a timestamp; zero stays absent.
func Timestamp(ns int64) *timestamppb.Timestamp {
	if ns == 0 {
		return nil
	}
	return timestamppb.New(time.Unix(0, ns))
}

// EnumValue turns a stored enum name back into its number (0 if unknown).
func EnumValue[E ~int32](names map[string]int32, name string) E {
	return E(names[name])
}

// MaxTime is the latest time that Unix nanoseconds, as stored, can hold.
var MaxTime = time.Unix(0, math.MaxInt64)

// RFC3339 writes stored Unix nanoseconds as an RFC 3339 time in UTC.
func RFC3339(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) }
