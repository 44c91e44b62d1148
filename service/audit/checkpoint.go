package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/example/personaldata/service/audit/checkpoint"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/durablefile"
)

// CheckpointConfig says how checkpoints are signed and where copies go.
type CheckpointConfig struct {
	// Origin names the log in every checkpoint (a URI-like name the
	// operator controls, such as "personaldata.example.se/audit").
	Origin string
	// Key signs the checkpoints (Keyring.CheckpointKey).
	Key ed25519.PrivateKey
	// Dir, when set, receives each checkpoint as a file, written
	// atomically and synced: "checkpoint" (the latest) and
	// "checkpoint.<size>".
	Dir string
	// URL, when set, receives each checkpoint in an HTTP POST
	// (text/plain); any status but 2xx is a failed push.
	URL string
	// Client is the HTTP client for URL; http.DefaultClient when nil.
	Client *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Checkpoints takes, keeps and publishes the signed checkpoints of a Log's
// tree, so that a copy lives outside the database: a later state of the
// trail is then proved to extend it, or found not to.
type Checkpoints struct {
	log     *Log
	cfg     CheckpointConfig
	signer  *checkpoint.Signer
	logger  *slog.Logger
	started time.Time
	// taking makes one checkpoint at a time, pushes included; mu guards
	// latest, the newest taken or read, whose signature verified.
	taking sync.Mutex
	mu     sync.Mutex
	latest *Checkpoint

	pushFailures prometheus.Counter
	taken        prometheus.Counter
}

// NewCheckpoints returns the checkpoints of l's tree, and has l's Verify
// prove events against the newest of them (Log.TrustCheckpoints).
func NewCheckpoints(l *Log, cfg CheckpointConfig, logger *slog.Logger) (*Checkpoints, error) {
	signer, err := checkpoint.NewSigner(cfg.Origin, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	c := &Checkpoints{
		log: l, cfg: cfg, signer: signer, logger: logger, started: cfg.Now(),
		pushFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "personaldata_audit_checkpoint_push_failures_total",
			Help: "Checkpoints that could not be written to -audit-checkpoint-dir or sent to -audit-checkpoint-url.",
		}),
		taken: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "personaldata_audit_checkpoints_total",
			Help: "Signed checkpoints of the audit trail's Merkle tree taken.",
		}),
	}
	l.TrustCheckpoints(c.Trusted)
	return c, nil
}

// Checkpoint is a signed checkpoint of the tree.
type Checkpoint = checkpoint.Checkpoint

// VerifierKey is the public key that checks the checkpoints, in the note
// verifier-key form (<origin>+<hash>+<key>) that pdctl and witnesses take.
func (c *Checkpoints) VerifierKey() string { return c.signer.VerifierKey() }

// Origin names the log in every checkpoint.
func (c *Checkpoints) Origin() string { return c.cfg.Origin }

// Open checks a signed checkpoint against this log's key and origin and
// returns what it says (checkpoint.OpenWith).
func (c *Checkpoints) Open(signed []byte) (*Checkpoint, error) {
	return checkpoint.OpenWith(signed, c.cfg.Origin, c.signer.Verifier())
}

// Collectors are the metrics of the tree and its checkpoints.
func (c *Checkpoints) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		c.pushFailures, c.taken,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "personaldata_audit_tree_size",
			Help: "Leaves of the audit trail's Merkle tree that this process knows of: the events appended since the tree began.",
		}, func() float64 {
			n, _ := c.log.tree.known()
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "personaldata_audit_checkpoint_age_seconds",
			Help: "Time since the latest signed checkpoint of the audit trail (since the process started while there is none).",
		}, func() float64 {
			c.mu.Lock()
			defer c.mu.Unlock()
			since := c.started
			if c.latest != nil {
				since = c.latest.Time
			}
			return c.cfg.Now().Sub(since).Seconds()
		}),
	}
}

// Take signs a checkpoint of the tree as it is now, once what it covers is
// durable, stores it in the audit database, and pushes it to the directory
// and URL configured. A failed push is counted and logged, not returned:
// the checkpoint is taken.
func (c *Checkpoints) Take(ctx context.Context) (*Checkpoint, error) {
	// One at a time, pushes included, so that the copies outside go in
	// order; Latest and Trusted wait only for the store.
	c.taking.Lock()
	defer c.taking.Unlock()
	cp, err := c.take(ctx)
	if err != nil {
		return nil, err
	}
	c.push(ctx, cp)
	return cp, nil
}

func (c *Checkpoints) take(ctx context.Context) (*Checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	size, root, err := c.log.tree.current(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	if err := c.log.st.Durable(ctx); err != nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	cp, err := c.signer.Make(size, root, c.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := c.log.st.PutAuditCheckpoint(ctx, store.AuditCheckpoint{Size: size, Root: root, Time: cp.Time.UnixNano(), Note: string(cp.Note)}); err != nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	c.latest = cp
	c.taken.Inc()
	return cp, nil
}

// push writes cp to the directory and sends it to the URL configured.
func (c *Checkpoints) push(ctx context.Context, cp *Checkpoint) {
	fail := func(where string, err error) {
		c.pushFailures.Inc()
		c.logger.ErrorContext(ctx, "audit checkpoint not pushed", slog.String("to", where), slog.Uint64("size", cp.Size), slog.String("error", err.Error()))
	}
	if c.cfg.Dir != "" {
		if err := os.MkdirAll(c.cfg.Dir, 0o750); err != nil {
			fail("directory", err)
		}
		for _, name := range []string{fmt.Sprintf("checkpoint.%d", cp.Size), "checkpoint"} {
			if err := durablefile.Write(filepath.Join(c.cfg.Dir, name), cp.Note, true); err != nil {
				fail("directory", err)
				break
			}
		}
	}
	if c.cfg.URL != "" {
		if err := c.post(ctx, cp.Note); err != nil {
			fail("url", err)
		}
	}
}

func (c *Checkpoints) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

// Latest returns the newest checkpoint: the one this process took, or
// else the newest stored, whose signature must verify; nil when there is
// none.
func (c *Checkpoints) Latest(ctx context.Context) (*Checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.latest != nil {
		return c.latest, nil
	}
	sc, err := c.log.st.LatestAuditCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	cp, err := c.Open([]byte(sc.Note))
	if err != nil {
		return nil, fmt.Errorf("audit: the latest stored checkpoint: %w", err)
	}
	c.latest = cp
	return cp, nil
}

// Trusted is the anchor of the newest checkpoint, for Verify; nil when
// there is none.
func (c *Checkpoints) Trusted(ctx context.Context) (*Anchor, error) {
	cp, err := c.Latest(ctx)
	if err != nil || cp == nil {
		return nil, err
	}
	return &Anchor{Size: cp.Size, Root: cp.Root}, nil
}

// Run takes a checkpoint every interval until ctx ends; failures are
// logged, and the next tick tries again.
func (c *Checkpoints) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := c.Take(ctx); err != nil && ctx.Err() == nil {
				c.logger.ErrorContext(ctx, "audit checkpoint not taken", slog.String("error", err.Error()))
			}
		}
	}
}
