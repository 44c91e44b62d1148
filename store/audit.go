package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// AuditEvent is one event of an audit chain as stored. Its _id is
// AuditEventID(Chain, Seq), so appending an event reserves its place in the
// chain: a second writer of the same seq gets ErrExists. Package service/audit
// computes PrevHash and Hash; the store only keeps them.
type AuditEvent struct {
	ID        string
	Chain     string
	Seq       int64
	Time      int64 // Unix nanoseconds
	Principal string
	Tenant    string
	Purpose   string
	RPC       string
	SubjectID string
	Fields    []string
	Outcome   string
	PrevHash  string
	Hash      string
	// Leaf is the index of the event's leaf in the Merkle tree over the
	// trail (audittree.go); -1 for an event stored before there was a tree.
	Leaf int64
}

// storedAuditEvent is an event as stored: lean, since every audited call
// inserts one and the embedded store's cost grows with a document's size
// and elements. The chain and seq are not stored apart (the _id holds
// them), empty values are left out, and the fields are one comma-separated
// string (field names hold no commas). Events stored before (with chain
// and seq, and the fields as an array) are read as well.
type storedAuditEvent struct {
	ID        string        `bson:"_id"`
	Time      int64         `bson:"time"`
	Principal string        `bson:"principal"`
	Tenant    string        `bson:"tenant"`
	Purpose   string        `bson:"purpose,omitempty"`
	RPC       string        `bson:"rpc"`
	SubjectID string        `bson:"subject_id,omitempty"`
	Fields    bson.RawValue `bson:"fields,omitempty"`
	Outcome   string        `bson:"outcome"`
	PrevHash  string        `bson:"prev_hash,omitempty"`
	Hash      string        `bson:"hash"`
	Leaf      *int64        `bson:"leaf"`
}

// MarshalBSON stores e in its lean form.
func (e *AuditEvent) MarshalBSON() ([]byte, error) {
	d := bson.D{{Key: "_id", Value: e.ID}, {Key: "time", Value: e.Time}, {Key: "principal", Value: e.Principal}, {Key: "tenant", Value: e.Tenant}}
	if e.Purpose != "" {
		d = append(d, bson.E{Key: "purpose", Value: e.Purpose})
	}
	d = append(d, bson.E{Key: "rpc", Value: e.RPC})
	if e.SubjectID != "" {
		d = append(d, bson.E{Key: "subject_id", Value: e.SubjectID})
	}
	if len(e.Fields) > 0 {
		d = append(d, bson.E{Key: "fields", Value: strings.Join(e.Fields, ",")})
	}
	d = append(d, bson.E{Key: "outcome", Value: e.Outcome})
	if e.PrevHash != "" {
		d = append(d, bson.E{Key: "prev_hash", Value: e.PrevHash})
	}
	d = append(d, bson.E{Key: "hash", Value: e.Hash})
	if e.Leaf >= 0 {
		d = append(d, bson.E{Key: "leaf", Value: e.Leaf})
	}
	return bson.Marshal(d)
}

// UnmarshalBSON reads an event stored in either form.
func (e *AuditEvent) UnmarshalBSON(data []byte) error {
	var d storedAuditEvent
	if err := bson.Unmarshal(data, &d); err != nil {
		return err
	}
	*e = AuditEvent{ID: d.ID, Time: d.Time, Principal: d.Principal, Tenant: d.Tenant, Purpose: d.Purpose, RPC: d.RPC,
		SubjectID: d.SubjectID, Outcome: d.Outcome, PrevHash: d.PrevHash, Hash: d.Hash, Leaf: -1}
	if d.Leaf != nil {
		e.Leaf = *d.Leaf
	}
	if i := strings.LastIndexByte(d.ID, '/'); i > 0 {
		e.Chain = d.ID[:i]
		e.Seq, _ = strconv.ParseInt(d.ID[i+1:], 10, 64)
	}
	switch d.Fields.Type {
	case bson.TypeString:
		if f := d.Fields.StringValue(); f != "" {
			e.Fields = strings.Split(f, ",")
		}
	case bson.TypeArray:
		if err := d.Fields.Unmarshal(&e.Fields); err != nil {
			return fmt.Errorf("audit event fields: %w", err)
		}
	}
	return nil
}

// AuditHead is a hint of the last event of a chain, its seq and hash; its _id
// is the chain. It is moved forward after each append, best effort, so it may
// lag behind the chain but, short of tampering, is never ahead of it, and
// its hash is that of its seq's event.
type AuditHead struct {
	ID   string `bson:"_id"`
	Seq  int64  `bson:"seq"`
	Hash string `bson:"hash"`
}

// AuditEventID is the _id of event seq of chain. The seq is zero-padded so
// that the events of a chain sort by _id in seq order.
func AuditEventID(chain string, seq int64) string {
	return fmt.Sprintf("%s/%012d", chain, seq)
}

// InsertAuditEvent adds an event; an event with the same _id (another writer
// took that seq) is ErrExists.
func (s *Store) InsertAuditEvent(ctx context.Context, e *AuditEvent) error {
	if e.ID == "" {
		e.ID = AuditEventID(e.Chain, e.Seq)
	}
	if err := s.insert(ctx, s.auditEvents, e); err != nil {
		return fmt.Errorf("store: insert audit event: %w", err)
	}
	return nil
}

// InsertAuditEvents adds events in order, in one round trip, stopping at
// the first that fails; it returns how many were inserted, and ErrExists
// when the one after them had its _id taken. It does not wait for them to
// be durable: the caller calls Durable before it answers, outside its batch,
// so that the next batch need not wait for this one's sync.
//
// Their leaves in the Merkle tree, when given, follow them in the same
// insert (audittree.go): a count above len(events) includes leaves.
func (s *Store) InsertAuditEvents(ctx context.Context, events []*AuditEvent, leaves ...*AuditLeaf) (int, error) {
	docs := make([]any, 0, len(events)+len(leaves))
	for _, e := range events {
		if e.ID == "" {
			e.ID = AuditEventID(e.Chain, e.Seq)
		}
		docs = append(docs, e)
	}
	for _, l := range leaves {
		l.ID = AuditLeafID(l.Index)
		docs = append(docs, l)
	}
	return s.insertOrdered(ctx, s.auditEvents, docs, "audit events")
}

// insertOrdered inserts docs into c in order, in one round trip, stopping
// at the first that fails, without waiting for the sync (apply): it
// returns how many were inserted, and ErrExists when the one after them had
// its _id taken.
func (s *Store) insertOrdered(ctx context.Context, c *mongo.Collection, docs []any, what string) (int, error) {
	err := s.apply(ctx, c, func(ctx context.Context) error {
		_, err := c.InsertMany(ctx, docs, options.InsertMany().SetOrdered(true))
		return err
	})
	if err == nil {
		return len(docs), nil
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && len(bwe.WriteErrors) > 0 {
		first := bwe.WriteErrors[0]
		if mongo.IsDuplicateKeyError(err) {
			return first.Index, fmt.Errorf("store: insert %s: %w", what, ErrExists)
		}
		return first.Index, fmt.Errorf("store: insert %s: %w", what, classify(err))
	}
	// Nothing is known to have been written.
	return 0, fmt.Errorf("store: insert %s: %w", what, classify(err))
}

// GetAuditEvent reads event seq of chain by its exact _id.
func (s *Store) GetAuditEvent(ctx context.Context, chain string, seq int64) (*AuditEvent, error) {
	var e AuditEvent
	if err := get(ctx, s.auditEvents, AuditEventID(chain, seq), &e); err != nil {
		return nil, fmt.Errorf("store: get audit event: %w", err)
	}
	return &e, nil
}

// GetAuditEventByID reads an event by its _id (AuditEventID), as a tree
// leaf names it.
func (s *Store) GetAuditEventByID(ctx context.Context, id string) (*AuditEvent, error) {
	var e AuditEvent
	if err := get(ctx, s.auditEvents, id, &e); err != nil {
		return nil, fmt.Errorf("store: get audit event: %w", err)
	}
	return &e, nil
}

// ListAuditChain returns the events of chain from seq from on, consecutive:
// it stops at limit events or at the first seq that is missing. On MongoDB
// that is one walk over the _id index; on the embedded store, which would
// scan for a range, it is one exact _id read per event.
func (s *Store) ListAuditChain(ctx context.Context, chain string, from int64, limit int) ([]*AuditEvent, error) {
	return seqRange[AuditEvent](ctx, s, s.auditEvents, func(seq int64) string { return AuditEventID(chain, seq) }, from, limit)
}

// ListAuditEventsByTenant returns up to limit events of tenant, of every
// chain, whose _id comes after afterID (all when it is empty), in _id order:
// chain by chain, each in seq order. Listing a tenant's events cannot be an
// exact _id read: on the embedded store each call scans the whole
// audit_events collection (FerretDB v1 pushes down only a filter of the lone
// _id), which is acceptable for this rare operator or controller listing; on
// MongoDB the index {tenant: 1, _id: 1} that Open creates serves it.
func (s *Store) ListAuditEventsByTenant(ctx context.Context, tenant, afterID string, limit int) ([]*AuditEvent, error) {
	return listAfter[AuditEvent](ctx, s.auditEvents, bson.D{{Key: "tenant", Value: tenant}}, afterID, limit)
}

// AuditScan selects the events a breach assessment reads: of one principal,
// within a time window, or both.
type AuditScan struct {
	// Principal, when set, is the principal the events name.
	Principal string
	// From and To bound the events' time in Unix nanoseconds, From
	// inclusive, To exclusive; 0 leaves that end open.
	From, To int64
}

// ScanAuditEvents hands fn every event that q selects, in _id order (chain
// by chain, each in seq order), through one cursor, so that only a batch is
// held at a time; an error of fn stops the scan and is returned. On MongoDB
// the index {principal: 1, _id: 1} that Open creates serves a principal's
// scan, and a window alone walks the _id index; the embedded store scans the
// collection once.
func (s *Store) ScanAuditEvents(ctx context.Context, q AuditScan, fn func(*AuditEvent) error) error {
	filter := bson.D{}
	if q.Principal != "" {
		filter = append(filter, bson.E{Key: "principal", Value: q.Principal})
	}
	var window bson.D
	if q.From != 0 {
		window = append(window, bson.E{Key: "$gte", Value: q.From})
	}
	if q.To != 0 {
		window = append(window, bson.E{Key: "$lt", Value: q.To})
	}
	if len(window) > 0 {
		filter = append(filter, bson.E{Key: "time", Value: window})
	}
	// Not the tree's leaves, which sort after every event.
	filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: auditLeafPrefix}}})
	return each(ctx, s.auditEvents, filter, fn)
}

// GetAuditHead returns the head hint of chain: the last event known to be
// appended; Seq 0 when there is none.
func (s *Store) GetAuditHead(ctx context.Context, chain string) (AuditHead, error) {
	h := AuditHead{ID: chain}
	err := get(ctx, s.auditHeads, chain, &h)
	if errors.Is(err, ErrNotFound) {
		return AuditHead{ID: chain}, nil
	}
	if err != nil {
		return AuditHead{}, fmt.Errorf("store: get audit head: %w", err)
	}
	return h, nil
}

// SetAuditHead moves the head hint of chain forward to event seq with hash;
// a head at seq or beyond already is left as it is, so concurrent writers
// never move it back. Seq and hash are written together, in one document.
// On MongoDB the comparison is in the filter; on the embedded store, which
// would scan for such a filter, it is made under the document's lock.
func (s *Store) SetAuditHead(ctx context.Context, chain string, seq int64, hash string) error {
	if s.locks == nil {
		_, err := s.auditHeads.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: chain}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: seq}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: seq}, {Key: "hash", Value: hash}}}},
			options.UpdateOne().SetUpsert(true))
		if mongo.IsDuplicateKeyError(err) {
			return nil // the head is at seq or beyond: the upsert found no match and collided
		}
		if err != nil {
			return fmt.Errorf("store: set audit head: %w", classify(err))
		}
		return nil
	}
	unlock := s.lock(auditHeadsCollection, chain)
	defer unlock()
	current, err := s.GetAuditHead(ctx, chain)
	if err != nil {
		return err
	}
	if current.Seq >= seq {
		return nil
	}
	// A hint: not waited for (apply).
	err = s.apply(ctx, s.auditHeads, func(ctx context.Context) error {
		_, err := s.auditHeads.ReplaceOne(ctx, bson.D{{Key: "_id", Value: chain}}, &AuditHead{ID: chain, Seq: seq, Hash: hash},
			options.Replace().SetUpsert(true))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: set audit head: %w", classify(err))
	}
	return nil
}
