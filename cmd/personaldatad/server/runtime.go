package server

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
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

// version is set at link time by builds that have no VCS information, as
// the Dockerfile's (-ldflags "-X .../server.version=v1.2.3").
var version string

// Version is the build's version: the one set at link time, else the
// module version, else the VCS revision the binary was built from (with
// "+dirty" for local changes), else "devel".
func Version() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return rev[:min(12, len(rev))] + dirty
}

// buildInfo is personaldata_build_info: 1, labelled with the version and
// the Go version the binary was built with.
func buildInfo(version string) prometheus.Collector {
	if version == "" {
		version = Version()
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "personaldata_build_info",
		Help:        "The running build: 1, labelled with its version and Go version.",
		ConstLabels: prometheus.Labels{"version": version, "go_version": runtime.Version()},
	})
	g.Set(1)
	return g
}
