package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// breachRecordsCollection holds the records of personal data breaches, one
// document each: the register of Art. 33(5). Few, and never removed.
const breachRecordsCollection = "breach_records"

// breachSubjectsCollection holds the records' lists of affected subjects,
// in chunks of a few thousand, each sealed: one document a chunk, read by
// exact _id in order.
const breachSubjectsCollection = "breach_subjects"

// BreachRecord is one breach: its facts, the assessment it rests on (counts,
// and the affected subjects sealed under its own data key), the decisions
// taken, the reports sent to the authority and the notices queued.
type BreachRecord struct {
	ID          string `bson:"_id"`
	Version     int64  `bson:"v"`
	Fingerprint []byte `bson:"fp"`
	OpenedBy    string `bson:"opened_by"`
	OpenedAt    int64  `bson:"opened_at"` // Unix nanoseconds, as every time here
	AwareAt     int64  `bson:"aware_at"`
	Description string `bson:"description"`
	Category    string `bson:"category"`
	Risk        string `bson:"risk"`
	// The assessment: its scope, when it was taken, and what it counted.
	Scope        BreachScope            `bson:"scope"`
	AssessedAt   int64                  `bson:"assessed_at"`
	Subjects     int64                  `bson:"subjects"`
	Records      int64                  `bson:"records"`
	Categories   []BreachCount          `bson:"categories,omitempty"`
	Controllers  []BreachControllerPart `bson:"controllers,omitempty"`
	ChainsBroken int64                  `bson:"chains_broken,omitempty"`
	// The list of affected subjects (id, controller, categories) is kept
	// beside the record, in SubjectChunks documents of breach_subjects
	// sealed under the record's data key (BreachSubjectsID): a breach of a
	// master key version touches everyone, more than one document holds.
	// SubjectSet names the list the record rests on (none when no subject
	// was affected).
	SubjectSet    string `bson:"subject_set,omitempty"`
	SubjectChunks int64  `bson:"subject_chunks,omitempty"`

	Consequences    string `bson:"consequences,omitempty"`
	MeasuresTaken   string `bson:"measures_taken,omitempty"`
	MeasuresPlanned string `bson:"measures_planned,omitempty"`
	Contact         string `bson:"contact,omitempty"`

	Decisions []BreachDecision `bson:"decisions"`
	Reports   []BreachReport   `bson:"reports,omitempty"`
	Notices   *BreachNotices   `bson:"notices,omitempty"`
	ClosedAt  int64            `bson:"closed_at,omitempty"`
	// Ops remembers the idempotency keys of the changes to the record.
	Ops []Op `bson:"ops,omitempty"`
}

func (d *BreachRecord) version() *int64 { return &d.Version }

// DataKeyID is the id under which the record's data key is kept, beside
// the subjects' keys.
func (d *BreachRecord) DataKeyID() string { return BreachDataKeyID(d.ID) }

// BreachDataKeyID is the data key id of the breach record with this id.
func BreachDataKeyID(id string) string { return "br_" + id }

// BreachSubjects is one chunk of a record's list of affected subjects,
// sealed under the record's data key; the chunks hold the subjects in id
// order.
type BreachSubjects struct {
	ID     string `bson:"_id"` // BreachSubjectsID
	Breach string `bson:"breach"`
	Sealed []byte `bson:"sealed"`
}

func (b *BreachSubjects) docID() string { return b.ID }

// BreachSubjectsID is the id of chunk seq (from 1) of the list set of the
// breach record with this id.
func BreachSubjectsID(breachID, set string, seq int64) string {
	return fmt.Sprintf("%s.%s.%06d", breachID, set, seq)
}

// BreachScope is what an assessment covered.
type BreachScope struct {
	Principal  string `bson:"principal,omitempty"`
	KeyVersion uint32 `bson:"key_version,omitempty"`
	From       int64  `bson:"from,omitempty"`
	To         int64  `bson:"to,omitempty"`
}

// BreachCount is how many subjects hold one category.
type BreachCount struct {
	Category string `bson:"category"`
	Subjects int64  `bson:"subjects"`
}

// BreachControllerPart is what a breach touched of one controller's data.
type BreachControllerPart struct {
	Controller string        `bson:"controller"`
	Subjects   int64         `bson:"subjects"`
	Categories []BreachCount `bson:"categories,omitempty"`
	// NoticeAt is when the customer's notice was queued.
	NoticeAt int64 `bson:"notice_at,omitempty"`
}

// BreachDecision is one decision on a record.
type BreachDecision struct {
	Kind     string `bson:"kind"`
	At       int64  `bson:"at"`
	By       string `bson:"by"`
	Decision string `bson:"decision"`
	Reason   string `bson:"reason,omitempty"`
}

// BreachReport is one report to the authority, as sent.
type BreachReport struct {
	Phase        string        `bson:"phase"`
	SentAt       int64         `bson:"sent_at"`
	SentBy       string        `bson:"sent_by"`
	Late         bool          `bson:"late,omitempty"`
	DelayReasons string        `bson:"delay_reasons,omitempty"`
	Fields       []ReportField `bson:"fields"`
}

// ReportField is one question of the authority's form and its answer.
type ReportField struct {
	Name  string `bson:"name"`
	Value string `bson:"value"`
}

// BreachNotices counts what the last notification of the subjects found.
type BreachNotices struct {
	Subjects           int64 `bson:"subjects"`
	Notified           int64 `bson:"notified"`
	RestrictedNotified int64 `bson:"restricted_notified"`
	Erased             int64 `bson:"erased"`
	Unreachable        int64 `bson:"unreachable"`
	LeftToControllers  int64 `bson:"left_to_controllers"`
	At                 int64 `bson:"at"`
}

func (s *Store) breachRecords() *mongo.Collection {
	return s.subjects.Database().Collection(breachRecordsCollection)
}

// InsertBreachRecord records a new breach; an existing id is ErrExists.
func (s *Store) InsertBreachRecord(ctx context.Context, r *BreachRecord) error {
	if err := s.insert(ctx, s.breachRecords(), r); err != nil {
		return fmt.Errorf("store: insert breach record: %w", err)
	}
	return nil
}

// GetBreachRecord reads a breach record by its id.
func (s *Store) GetBreachRecord(ctx context.Context, id string) (*BreachRecord, error) {
	var r BreachRecord
	if err := get(ctx, s.breachRecords(), id, &r); err != nil {
		return nil, fmt.Errorf("store: get breach record: %w", err)
	}
	return &r, nil
}

// UpdateBreachRecord changes a breach record atomically, as UpdateSubject
// does.
func (s *Store) UpdateBreachRecord(ctx context.Context, id string, change func(*BreachRecord) error) (*BreachRecord, error) {
	return update(ctx, s, s.breachRecords(), id, change)
}

// EachBreachRecord hands fn every breach record, in id order: for the
// register and the gauges (breaches are few).
func (s *Store) EachBreachRecord(ctx context.Context, fn func(*BreachRecord) error) error {
	return each(ctx, s.breachRecords(), bson.D{}, fn)
}

func (s *Store) breachSubjects() *mongo.Collection {
	return s.subjects.Database().Collection(breachSubjectsCollection)
}

// PutBreachSubjects writes the chunks of a list of affected subjects, each
// replacing one of the same id (a retry of the same list), and returns once
// they are durable: before the record that names them is written.
func (s *Store) PutBreachSubjects(ctx context.Context, chunks []*BreachSubjects) error {
	c := s.breachSubjects()
	for _, b := range chunks {
		unlock := s.lock(breachSubjectsCollection, b.ID)
		err := s.apply(ctx, c, func(ctx context.Context) error {
			_, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: b.ID}}, b, options.Replace().SetUpsert(true))
			return err
		})
		unlock()
		if err != nil {
			return fmt.Errorf("store: put breach subjects: %w", classify(err))
		}
	}
	if err := s.durable(ctx, c.Database().Name()); err != nil {
		return fmt.Errorf("store: put breach subjects: %w", err)
	}
	return nil
}

// BreachSubjectChunks reads up to limit chunks of the list set of a breach
// record, from chunk from on, stopping at the first missing.
func (s *Store) BreachSubjectChunks(ctx context.Context, breachID, set string, from int64, limit int) ([]*BreachSubjects, error) {
	return seqRange[BreachSubjects](ctx, s, s.breachSubjects(), func(seq int64) string { return BreachSubjectsID(breachID, set, seq) }, from, limit)
}

// DeleteBreachSubjects removes the n chunks of a list no record names: the
// list of an open that lost to a concurrent one.
func (s *Store) DeleteBreachSubjects(ctx context.Context, breachID, set string, n int64) error {
	for seq := int64(1); seq <= n; seq++ {
		if err := s.remove(ctx, s.breachSubjects(), BreachSubjectsID(breachID, set, seq), nil); err != nil {
			return fmt.Errorf("store: delete breach subjects: %w", err)
		}
	}
	return nil
}
