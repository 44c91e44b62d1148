package server

import (
	"os"
	"runtime"
	"runtime/debug"
)

// DefaultGCPercent is the garbage collector's target the daemon runs with
// unless GOGC is set. The service's live heap is small (tens of MB: caches
// of keys, chain ends and principals) while every call allocates, so at the
// runtime's default of 100 the collector took about a tenth of a busy
// server's CPU; at 400 it takes a fraction of that, for a peak heap a few
// times the live one. GOMEMLIMIT, when set, still bounds the heap.
const DefaultGCPercent = 400

// TuneRuntime applies DefaultGCPercent unless GOGC says otherwise. Call it
// at the start of a process that runs a Server.
func TuneRuntime() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(DefaultGCPercent)
	}
}

// streamWorkers is how many goroutines the gRPC servers keep for calls: one
// per processor the runtime uses.
func streamWorkers() uint32 { return uint32(runtime.GOMAXPROCS(0)) }
