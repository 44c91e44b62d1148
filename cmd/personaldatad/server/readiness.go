package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/store"
)

// readiness is the one state every probe answers from: /livez, /readyz and
// /healthz, and the gRPC health service (Check, Watch and List, of the
// server "" and of each API service). It is set at once by the events that
// change it, each of which calls observe:
//   - an audit append failing, or working again (audit.Log.OnChange);
//   - a failed sync of the embedded store (store.Store.OnSyncFailed);
//   - the store's ping failing or answering again (probe);
//   - shutdown beginning (drain).
//
// and it is right before the listeners serve the first call: Serve
// probes it first, appending a probe event to the audit trail, so that a
// start on a full disk is not ready from the first answer on.
//
// Live (/livez): the process can serve at all; not once a sync failed
// (only a restart recovers). A store that is down or full is not a reason:
// restarting would not help it. Ready (/readyz, /healthz, gRPC health of
// each API service): calls can succeed: not shutting down, live, the store
// answers and takes audit appends, which every audited call makes (reads
// too). gRPC health of the server as a whole ("") is live and not shutting
// down. Reasons name the part that fails, never data.
type readiness struct {
	log      *slog.Logger
	store    *store.Store
	auditLog *audit.Log
	// services are the API services, whose health is readiness; the
	// server as a whole ("") is live.
	services []string

	// probing serialises probes: one ping and audit probe at a time.
	probing sync.Mutex

	mu       sync.Mutex
	draining bool
	pingErr  error // the last ping's failure; nil once one answers
	live     error
	ready    error
	// changed is closed, and replaced, at every change of live or ready:
	// Watch streams wait on it.
	changed chan struct{}
	// closed ends the Watch streams (shutdown).
	closed bool
}

func newReadiness(log *slog.Logger, st *store.Store, auditLog *audit.Log, services []string) *readiness {
	r := &readiness{log: log, store: st, auditLog: auditLog, services: services, changed: make(chan struct{})}
	// Not ready until the first probe says otherwise.
	r.ready = errors.New("starting")
	auditLog.OnChange(r.observe)
	st.OnSyncFailed(r.observe)
	return r
}

// observe computes the state from what the events left, without I/O, and
// wakes the watchers if it changed. Cheap enough to call from any event.
func (r *readiness) observe() {
	// Read under r.mu, so that of two observations racing, the one that
	// read last also sets last: the state never settles on an older
	// reading. Neither reading takes a lock that is held while the hooks
	// that call observe run (the audit log and the syncer release theirs
	// before they call).
	r.mu.Lock()
	defer r.mu.Unlock()
	syncFailed := r.store.SyncFailed()
	auditFailing := r.auditLog.Failing()
	var live, ready error
	if syncFailed != nil {
		live = errors.New("the store failed to sync a write: restart to recover")
	}
	switch {
	case r.draining:
		ready = errors.New("shutting down")
	case live != nil:
		ready = live
	case r.pingErr != nil:
		ready = errors.New("store unavailable")
	case auditFailing != nil:
		ready = errors.New("store refuses audit appends")
	}
	r.set(live, ready)
}

// set records live and ready; r.mu held.
func (r *readiness) set(live, ready error) {
	if (live == nil) == (r.live == nil) && (ready == nil) == (r.ready == nil) &&
		errText(live) == errText(r.live) && errText(ready) == errText(r.ready) {
		return
	}
	switch {
	case ready != nil && r.ready == nil:
		r.log.Warn("not ready", slog.String("reason", ready.Error()))
	case ready == nil && r.ready != nil:
		r.log.Info("ready")
	}
	r.live, r.ready = live, ready
	close(r.changed)
	r.changed = make(chan struct{})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// probe asks the store itself: a ping, and an audit append when appends
// were failing (audit.Log.Ready) or when force is set (at start), then
// returns the state. The probes of /readyz, /livez and gRPC health, and
// the watcher's ticks, all go through it.
func (r *readiness) probe(ctx context.Context, force bool) (live, ready error) {
	r.probing.Lock()
	defer r.probing.Unlock()
	if r.isDraining() {
		r.observe()
		return r.state()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	pingErr := r.store.Ping(ctx)
	if pingErr != nil && ctx.Err() != nil && context.Cause(ctx) != context.DeadlineExceeded {
		// The prober went away: that says nothing about the store.
		return r.state()
	}
	r.mu.Lock()
	r.pingErr = pingErr
	r.mu.Unlock()
	if pingErr == nil && r.store.SyncFailed() == nil {
		// Its outcome reaches the state through OnChange.
		if force {
			_ = r.auditLog.Probe(ctx)
		} else {
			_ = r.auditLog.Ready(ctx)
		}
	}
	r.observe()
	return r.state()
}

func (r *readiness) state() (live, ready error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live, r.ready
}

func (r *readiness) isDraining() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.draining
}

// drain marks the server shutting down: neither live nor ready.
func (r *readiness) drain() {
	r.mu.Lock()
	r.draining = true
	r.mu.Unlock()
	r.observe()
}

// close ends the Watch streams, once they have seen NOT_SERVING (drain),
// so that the graceful stop does not wait for them.
func (r *readiness) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.changed)
		r.changed = make(chan struct{})
	}
}

// watch keeps the state fresh: it probes every interval (a store that went
// down, or came back, shows without a call) until ctx ends.
func (r *readiness) watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.probe(ctx, false)
		}
	}
}

// healthService is the gRPC health service (grpc.health.v1.Health),
// answering from the readiness: "" is SERVING while the server is live,
// each API service while it is ready.
type healthService struct {
	healthpb.UnimplementedHealthServer
	r *readiness
}

// statusOf is the health of service in the state given; false for a
// service this server does not have.
func (r *readiness) statusOf(service string, live, ready error) (healthpb.HealthCheckResponse_ServingStatus, bool) {
	if r.isDraining() {
		live = ready
	}
	serving := func(err error) healthpb.HealthCheckResponse_ServingStatus {
		if err != nil {
			return healthpb.HealthCheckResponse_NOT_SERVING
		}
		return healthpb.HealthCheckResponse_SERVING
	}
	if service == "" {
		return serving(live), true
	}
	for _, s := range r.services {
		if s == service {
			return serving(ready), true
		}
	}
	return healthpb.HealthCheckResponse_SERVICE_UNKNOWN, false
}

func (h *healthService) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	live, ready := h.r.probe(ctx, false)
	st, ok := h.r.statusOf(req.GetService(), live, ready)
	if !ok {
		return nil, status.Error(codes.NotFound, "unknown service")
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

func (h *healthService) List(ctx context.Context, _ *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	live, ready := h.r.probe(ctx, false)
	out := &healthpb.HealthListResponse{Statuses: map[string]*healthpb.HealthCheckResponse{}}
	for _, s := range append([]string{""}, h.r.services...) {
		st, _ := h.r.statusOf(s, live, ready)
		out.Statuses[s] = &healthpb.HealthCheckResponse{Status: st}
	}
	return out, nil
}

// Watch sends the service's status at once and again at every change,
// until the caller leaves or the server shuts down.
func (h *healthService) Watch(req *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	ctx := stream.Context()
	last := healthpb.HealthCheckResponse_ServingStatus(-1)
	for {
		h.r.mu.Lock()
		live, ready, changed, closed := h.r.live, h.r.ready, h.r.changed, h.r.closed
		h.r.mu.Unlock()
		st, _ := h.r.statusOf(req.GetService(), live, ready)
		if st != last {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		if closed {
			return status.Error(codes.Unavailable, "shutting down")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}
