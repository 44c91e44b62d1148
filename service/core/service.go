package core

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/jobs"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/service/vault"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/ledger"
)

// Service is what the API services share: their dependencies, set once by
// New and EnableCheckpoints and read-only after, and the methods that apply
// the common rules. Each API service embeds it.
type Service struct {
	Store *store.Store
	// Now is the clock.
	Now func() time.Time
	// Log receives faults; it never receives personal data.
	Log *slog.Logger
	// AuditLog is the audit trail, on the same store.
	AuditLog *audit.Log
	// Checkpoints sign the audit trail's Merkle tree (EnableCheckpoints);
	// nil until enabled.
	Checkpoints *audit.Checkpoints
	// PrincipalCache holds the principals as authentication finds them; every
	// change of one is published through it.
	PrincipalCache *auth.PrincipalCache
	// Vault seals and opens personal data on its way to and from the store.
	Vault *vault.Vault
	// Jobs runs the calls that go through many subjects as resumable jobs.
	Jobs *jobs.Runner
	// streams ends the streams that never end by themselves (the recipients'
	// notifications, the mailer's outbox) when the server shuts down.
	streams streamGate
	// Ledger records every erasure before it is acknowledged (ledger.go);
	// nil keeps none.
	Ledger *ledger.Ledger
	// Sender signs the reply letters.
	Sender LetterSender
}

// Options are the optional dependencies of a Service.
type Options struct {
	// Now is the clock; time.Now when nil. Tests inject their own.
	Now func() time.Time
	// Logger receives faults; it never receives personal data.
	Logger *slog.Logger
	// Ledger, when set, is the erasure ledger every erasure is recorded in
	// before it is acknowledged.
	Ledger *ledger.Ledger
	// Sender is who signs the reply letters, and how the data subject
	// reaches the company (see LetterSender).
	Sender LetterSender
	// BreachSubjectsPerChunk is how many affected subjects one stored chunk
	// of a breach record's list holds; 0 takes the default (2,000, about
	// 250 KB). Tests lower it to span chunks with few subjects. Package
	// accountability keeps it (service.New hands it over).
	BreachSubjectsPerChunk int
}

// New returns a Service on st, sealing personal data with keys.
func New(st *store.Store, keys *vault.Keys, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	v := vault.New(st, keys)
	return &Service{
		Store: st, Now: opts.Now, Log: opts.Logger, AuditLog: audit.New(st),
		PrincipalCache: auth.NewPrincipalCache(st),
		Vault:          v,
		Jobs:           jobs.New(st, v, opts.Now, opts.Logger),
		Ledger:         opts.Ledger,
		Sender:         opts.Sender,
	}
}

// EnableCheckpoints has the audit trail's tree signed, with the key the
// keyring derives for it, and its checkpoints kept and pushed as cfg says;
// from then on VerifyAuditChain and breach impact prove events against the
// newest checkpoint. Call it before serving.
func (s *Service) EnableCheckpoints(cfg audit.CheckpointConfig) (*audit.Checkpoints, error) {
	cfg.Key = s.Vault.Keys.Ring().CheckpointKey()
	if cfg.Now == nil {
		cfg.Now = s.Now
	}
	c, err := audit.NewCheckpoints(s.AuditLog, cfg, s.Log)
	if err != nil {
		return nil, err
	}
	s.Checkpoints = c
	return c, nil
}

// IdempotencyWindow is how long the idempotency key of a change is
// remembered: a retry within the window answers the first result, however
// many other changes came between (24 hours, as payment APIs do). A
// subject's keys are records of their own (store.FindSubjectOp), removed by
// the retention sweeper once the window is over.
const IdempotencyWindow = 24 * time.Hour

// maxOps bounds the keys that the documents other than subjects remember in
// themselves (principals, agreements, rights requests, policy versions), so
// that one changed thousands of times a day cannot grow without end. It is
// far above a day of real changes to one of them; past it the oldest is
// forgotten.
const maxOps = 1000

// OpKey is how an idempotency key is remembered: hashed, so a caller's key,
// whatever it contains, is not stored as it is.
func OpKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:16])
}

// Fingerprint identifies a request, to tell a retry from a different request
// that reuses its idempotency key. It is keyed (the blind-index key), since
// requests carry personal data and a plain hash of them could be confirmed
// by guessing.
func (s *Service) Fingerprint(req proto.Message) []byte {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	return []byte(s.Vault.Keys.Ring().Index("fingerprint", string(req.ProtoReflect().Descriptor().FullName()), string(b)))
}

// FindOpIn returns the operation recorded under key, if any.
func FindOpIn(ops []store.Op, key string) *store.Op {
	for i := range ops {
		if ops[i].Key == key {
			return &ops[i]
		}
	}
	return nil
}

// AppendOp remembers an operation applied at now, and forgets those older
// than IdempotencyWindow (and the oldest beyond maxOps).
func AppendOp(ops []store.Op, op store.Op, now time.Time) []store.Op {
	op.At = now.UnixNano()
	cutoff := now.Add(-IdempotencyWindow).UnixNano()
	kept := make([]store.Op, 0, len(ops)+1)
	for _, o := range ops {
		if o.At == 0 || o.At >= cutoff { // 0: recorded before ops had a time
			kept = append(kept, o)
		}
	}
	kept = append(kept, op)
	if len(kept) > maxOps {
		kept = kept[len(kept)-maxOps:]
	}
	return kept
}

// Replayed is returned from inside an update when the request was applied
// before: the update is abandoned and the earlier result answered.
type Replayed struct{ Op store.Op }

// Error says the request was applied before; it never reaches a caller.
func (r *Replayed) Error() string { return "replayed" }

// CheckReplay returns *Replayed when key is among the applied ops with the
// same request, INVALID_ARGUMENT when with another request, nil when never.
func CheckReplay(ops []store.Op, key string, fp []byte) error {
	op := FindOpIn(ops, key)
	if op == nil {
		return nil
	}
	if !bytes.Equal(op.Fingerprint, fp) {
		return validate.KeyReused()
	}
	return &Replayed{Op: *op}
}

// SubjectOp returns *Replayed when the key (hashed: OpKey) was applied to
// sub with the same request, INVALID_ARGUMENT when with another, nil when
// never. Inside a change function of an update of sub it decides, and
// makes sure the op it will overwrite is kept (store.FindSubjectOp); outside
// one it only finds a replay early, and memo carries its lookup into the
// update that follows while the subject is unchanged.
func (s *Service) SubjectOp(ctx context.Context, sub *store.Subject, key string, fp []byte, memo *store.OpMemo) error {
	op, err := s.Store.FindSubjectOp(ctx, sub, key, s.Now().Add(-IdempotencyWindow).UnixNano(), memo)
	if err != nil {
		return s.Internal(ctx, "idempotency key", err)
	}
	if op == nil {
		return nil
	}
	if !bytes.Equal(op.Fingerprint, fp) {
		return validate.KeyReused()
	}
	return &Replayed{Op: *op}
}

// RecordOp makes op, applied at now, sub's last, in the update of the
// change it records; the store keeps it once the update is written
// (store.UpdateSubject). The legacy in-document records past the window go.
func RecordOp(sub *store.Subject, op store.Op, now time.Time) {
	op.At = now.UnixNano()
	sub.LastOp = &op
	cutoff := now.Add(-IdempotencyWindow).UnixNano()
	// Those with no time were recorded before ops had one: long expired.
	sub.Ops = slices.DeleteFunc(sub.Ops, func(o store.Op) bool { return o.At < cutoff })
	if len(sub.Ops) == 0 {
		sub.Ops = nil
	}
}

// DerivedID is an opaque id derived from a caller's idempotency key with the
// keyed hash of the blind indexes, so that it reveals nothing of the key.
func (s *Service) DerivedID(kind, scope, key string) string {
	index := s.Vault.Keys.Ring().Index(kind, scope, key)
	sum, _ := hex.DecodeString(index[strings.IndexByte(index, '.')+1:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16]))
}

// NotificationPollInterval is how often a stream that never ends by itself
// (the recipients' notifications, the mailer's outbox) looks for new ones.
const NotificationPollInterval = 200 * time.Millisecond

// streamGate is closed once, when the server shuts down; its zero value is
// open.
type streamGate struct {
	mu     sync.Mutex
	closed chan struct{}
}

// done is closed when the server shuts down.
func (g *streamGate) done() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed == nil {
		g.closed = make(chan struct{})
	}
	return g.closed
}

// EndStreams ends the notification streams, now and any opened later, with
// UNAVAILABLE, so that a graceful shutdown need not wait for them; their
// clients reconnect to another replica. Call it as shutdown begins.
func (s *Service) EndStreams() { s.streams.end() }

// ShuttingDown is closed by EndStreams: a stream that never ends by itself
// returns when it is.
func (s *Service) ShuttingDown() <-chan struct{} { return s.streams.done() }

func (g *streamGate) end() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed == nil {
		g.closed = make(chan struct{})
	}
	select {
	case <-g.closed:
	default:
		close(g.closed)
	}
}
