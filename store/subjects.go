package store

import (
	"context"
	"errors"
	"fmt"
)

// Subject is the stored record of one data subject. Enumerated values are
// stored by name so that the documents read on their own.
type Subject struct {
	ID         string `bson:"_id"`
	Version    int64  `bson:"v"`
	Controller string `bson:"controller"`
	// Person is the personal data in the clear, nil once the subject is
	// erased. It is never stored: the service seals it into Sealed before a
	// write and opens it after a read.
	Person *Person `bson:"-"`
	// Sealed is Person encrypted under the subject's data key.
	Sealed      *SealedPerson `bson:"sealed,omitempty"`
	Restriction *Restriction  `bson:"restriction,omitempty"`
	Erasure     *Erasure      `bson:"erasure,omitempty"`
	Changes     []Change      `bson:"changes"`
	// HistoryCount is the number of history sequence numbers handed out.
	HistoryCount int64 `bson:"history_count"`
	// Keys are the _ids of the lookup keys this subject holds; kept until an
	// erasure has removed them.
	Keys []string `bson:"keys,omitempty"`
	// CleanupPending says an erasure still has key and history documents to
	// remove.
	CleanupPending bool `bson:"cleanup_pending,omitempty"`
	// Holds are the legal retention holds on the subject's data, active and
	// ended (holds.go).
	Holds []Hold `bson:"holds,omitempty"`
	// Kept names the data categories an erasure kept because a hold covered
	// them: storage only, until the retention sweeper purges them.
	Kept []string `bson:"kept,omitempty"`
	// Consents are the consents the subject gave, withdrawn or not, and
	// Disclosures every hand-over of its data to a third party (consents.go).
	// Neither holds personal values; both stay in the tombstone.
	Consents    []Consent    `bson:"consents,omitempty"`
	Disclosures []Disclosure `bson:"disclosures,omitempty"`
	// PolicyAcks record the policy versions the subject was informed of
	// and accepted (policy.go).
	PolicyAcks []PolicyAck `bson:"policy_acks,omitempty"`
	// NotifiedVersion: the recipients of earlier disclosures have been
	// queued notifications of the changes up to this version (Art. 19).
	NotifiedVersion int64 `bson:"notified_version,omitempty"`
	// LastOp is the last change applied to the subject under an
	// idempotency key, written in the same update as the change; the
	// earlier ones are in a collection of their own (ops.go).
	LastOp *Op `bson:"last_op,omitempty"`
	// CreateOp is the create's, for the subject's life: its id follows from
	// the create's key, so a retried create finds it whenever it comes.
	CreateOp *Op `bson:"create_op,omitempty"`
	// Ops are the idempotency records that subjects held in their document
	// before the collection: honoured until they expire, never added to.
	Ops       []Op  `bson:"ops,omitempty"`
	CreatedAt int64 `bson:"created_at"` // Unix nanoseconds
	UpdatedAt int64 `bson:"updated_at"`
}

// Person is the personal data of a subject.
type Person struct {
	IdentityNumber string  `bson:"identity_number"`
	GivenName      string  `bson:"given_name"`
	FamilyName     string  `bson:"family_name"`
	Email          string  `bson:"email"`
	Phone          string  `bson:"phone,omitempty"`
	Address        Address `bson:"address"`
}

// Address is a postal address.
type Address struct {
	Lines       []string `bson:"lines,omitempty"`
	PostalCode  string   `bson:"postal_code,omitempty"`
	Locality    string   `bson:"locality,omitempty"`
	CountryCode string   `bson:"country_code,omitempty"`
}

// Restriction is an active restriction of processing.
type Restriction struct {
	Ground      string `bson:"ground"`
	At          int64  `bson:"at"`
	Channel     string `bson:"channel"`
	Reference   string `bson:"reference"`
	PerformedBy string `bson:"performed_by"`
}

// Erasure records when and why a subject was erased.
type Erasure struct {
	Ground      string `bson:"ground"`
	At          int64  `bson:"at"`
	Channel     string `bson:"channel"`
	Reference   string `bson:"reference"`
	PerformedBy string `bson:"performed_by"`
}

// Change is one entry of the record of changes. It names fields, never values.
type Change struct {
	Kind              string   `bson:"kind"`
	Fields            []string `bson:"fields,omitempty"`
	At                int64    `bson:"at"`
	Channel           string   `bson:"channel,omitempty"`
	Reference         string   `bson:"reference,omitempty"`
	PerformedBy       string   `bson:"performed_by,omitempty"`
	Version           int64    `bson:"version"`
	RestrictionGround string   `bson:"restriction_ground,omitempty"`
	LiftResolution    string   `bson:"lift_resolution,omitempty"`
	ErasureGround     string   `bson:"erasure_ground,omitempty"`
}

// Op remembers an idempotency key applied to a subject, with a fingerprint of
// the request and what it produced, so a retry can be answered without a
// second write.
type Op struct {
	Key         string `bson:"key"`
	Fingerprint []byte `bson:"fp"`
	// Result is what the operation produced: the version it wrote, or the
	// sequence number of the history entry it added.
	Result int64 `bson:"result"`
	// At is when it was applied (Unix ns), for the idempotency window.
	At int64 `bson:"at,omitempty"`
}

// GetSubject reads a subject by its id.
func (s *Store) GetSubject(ctx context.Context, id string) (*Subject, error) {
	var sub Subject
	if err := s.read(ctx, s.subjects, id, &sub, false); err != nil {
		return nil, fmt.Errorf("store: get subject: %w", err)
	}
	return &sub, nil
}

// InsertSubject adds a new subject; an existing id is ErrExists.
func (s *Store) InsertSubject(ctx context.Context, sub *Subject) error {
	if err := s.subjectInserts.insertOne(ctx, sub); err != nil {
		return fmt.Errorf("store: insert subject: %w", err)
	}
	return nil
}

// UpdateSubject reads the subject, lets change modify it and writes it back
// with its version one higher, atomically: no concurrent update is lost, on
// MongoDB across replicas (the version is in the filter) and on the embedded
// store within the process that owns it (the document is locked). An error
// from change aborts the update and is returned as it is. change may run more
// than once when a race is lost, so it must not have side effects.
//
// A change that sets the subject's LastOp (a change under an idempotency
// key, which looked its key up with FindSubjectOp) has the op written into
// the collection of ops once the update succeeded; if that write fails the
// op stays the subject's last, and the next keyed change writes it (ops.go).
func (s *Store) UpdateSubject(ctx context.Context, id string, change func(*Subject) error) (*Subject, error) {
	var before *Op
	sub, err := update(ctx, s, s.subjects, id, func(sub *Subject) error {
		before = sub.LastOp
		return change(sub)
	})
	if err != nil || sub.LastOp == nil || sub.LastOp == before || (before != nil && sub.LastOp.Key == before.Key && sub.LastOp.At == before.At) {
		return sub, err
	}
	if s.putOp(ctx, id, *sub.LastOp) == nil {
		s.opsKnown.add(id, sub.LastOp.Key)
	}
	return sub, nil
}

func (d *Subject) version() *int64 { return &d.Version }

// IsNotFound reports whether err says a document does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
