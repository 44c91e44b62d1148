package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collection names of the recipients' notification queues (GDPR Art. 19).
const (
	notificationsCollection     = "notifications"
	notificationHeadsCollection = "notification_heads"
	notificationKeysCollection  = "notification_keys"
)

// Notification is one entry of a recipient's queue: that a subject whose
// data went to the recipient was rectified, restricted or erased. It names
// the subject, the kind and the fields, never values. Its _id is
// NotificationID(Recipient, Seq), so inserting it reserves its place in the
// queue, and a recipient's queue is read by exact _id from its head.
type Notification struct {
	ID        string `bson:"_id"`
	Version   int64  `bson:"v"`
	Recipient string `bson:"recipient"`
	Seq       int64  `bson:"seq"`
	// Key names the news the notification carries, e.g. a subject and the
	// version of its change: the queue holds each key once.
	Key        string   `bson:"key"`
	SubjectID  string   `bson:"subject_id"`
	Controller string   `bson:"controller"`
	Kind       string   `bson:"kind"`
	Fields     []string `bson:"fields,omitempty"`
	CreatedAt  int64    `bson:"created_at"` // Unix nanoseconds
	Acked      bool     `bson:"acked,omitempty"`
	AckedAt    int64    `bson:"acked_at,omitempty"`
	AckedBy    string   `bson:"acked_by,omitempty"`
}

func (d *Notification) version() *int64 { return &d.Version }

// NotificationHead is a recipient's place in its queue; its _id is the
// recipient. Both numbers only move forward and may lag behind the queue.
type NotificationHead struct {
	ID      string `bson:"_id"`
	Version int64  `bson:"v"`
	// Next is a hint of the next free seq: every seq below it is taken.
	Next int64 `bson:"next"`
	// AckedUpto: every notification with a seq up to and including it is
	// acknowledged, so a listing starts after it.
	AckedUpto int64 `bson:"acked_upto"`
}

func (d *NotificationHead) version() *int64 { return &d.Version }

// notificationKey remembers where a recipient's notification with a given
// key is (or is about to be) in the queue: the seq it was last tried at.
// The candidate moves only when another notification took that seq, so a
// notification can be at no other place, and enqueueing it again after an
// interruption finds it instead of queueing it twice.
type notificationKey struct {
	ID        string `bson:"_id"` // recipient + "/" + key
	Version   int64  `bson:"v"`
	Candidate int64  `bson:"candidate"`
}

func (d *notificationKey) version() *int64 { return &d.Version }

func (s *Store) notifications() *mongo.Collection {
	return s.subjects.Database().Collection(notificationsCollection)
}

func (s *Store) notificationHeads() *mongo.Collection {
	return s.subjects.Database().Collection(notificationHeadsCollection)
}

func (s *Store) notificationKeys() *mongo.Collection {
	return s.subjects.Database().Collection(notificationKeysCollection)
}

// NotificationID is the _id of notification seq of a recipient. The seq is
// zero-padded so that a recipient's queue sorts by _id in seq order.
func NotificationID(recipient string, seq int64) string {
	return fmt.Sprintf("%s/%012d", recipient, seq)
}

// maxEnqueueAttempts bounds the seqs one enqueue tries before giving up.
const maxEnqueueAttempts = 32

// errCandidateMoved aborts the move of a key's candidate that another
// writer moved first.
var errCandidateMoved = errors.New("candidate moved")

// EnqueueNotification appends n (Recipient, Key and content set) to its
// recipient's queue at the next free seq, exactly once per key: a second
// call with the same recipient and key, concurrent or after an interrupted
// first one, returns the notification already queued. Several replicas may
// enqueue at once; no transaction is needed.
func (s *Store) EnqueueNotification(ctx context.Context, n *Notification) (*Notification, error) {
	keyID := n.Recipient + "/" + n.Key
	for range maxEnqueueAttempts {
		k, err := s.getOrInsertNotificationKey(ctx, keyID)
		if err != nil {
			return nil, err
		}
		if k.Candidate != 0 {
			got, err := s.GetNotification(ctx, n.Recipient, k.Candidate)
			switch {
			case err == nil && got.Key == n.Key:
				return got, s.moveNotificationHead(ctx, n.Recipient, got.Seq+1, 0)
			case errors.Is(err, ErrNotFound):
				// Tried before and not (yet) written: try that seq again.
				ok, err := s.insertNotification(ctx, n, k.Candidate)
				if err != nil || ok {
					return n, err
				}
				continue
			case err != nil:
				return nil, err
			}
			// Another notification took the candidate: find another seq.
		}
		seq, err := s.freeNotificationSeq(ctx, n.Recipient, k.Candidate+1)
		if err != nil {
			return nil, err
		}
		_, err = update(ctx, s, s.notificationKeys(), keyID, func(d *notificationKey) error {
			if d.Candidate != k.Candidate {
				return errCandidateMoved
			}
			d.Candidate = seq
			return nil
		})
		if errors.Is(err, errCandidateMoved) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: enqueue notification: %w", err)
		}
		ok, err := s.insertNotification(ctx, n, seq)
		if err != nil || ok {
			return n, err
		}
	}
	return nil, fmt.Errorf("store: enqueue notification: %w", ErrConflict)
}

// insertNotification inserts n at seq; false when the seq is taken.
func (s *Store) insertNotification(ctx context.Context, n *Notification, seq int64) (bool, error) {
	n.Seq, n.ID, n.Version = seq, NotificationID(n.Recipient, seq), 1
	err := s.insert(ctx, s.notifications(), n)
	if errors.Is(err, ErrExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: insert notification: %w", err)
	}
	return true, s.moveNotificationHead(ctx, n.Recipient, seq+1, 0)
}

func (s *Store) getOrInsertNotificationKey(ctx context.Context, id string) (*notificationKey, error) {
	var k notificationKey
	err := get(ctx, s.notificationKeys(), id, &k)
	if errors.Is(err, ErrNotFound) {
		k = notificationKey{ID: id, Version: 1}
		err = s.insert(ctx, s.notificationKeys(), &k)
		if errors.Is(err, ErrExists) {
			err = get(ctx, s.notificationKeys(), id, &k)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store: notification key: %w", err)
	}
	return &k, nil
}

// freeNotificationSeq is the first seq of recipient's queue, at least
// atLeast, with no notification: found from the head hint by exact _id
// reads.
func (s *Store) freeNotificationSeq(ctx context.Context, recipient string, atLeast int64) (int64, error) {
	head, err := s.GetNotificationHead(ctx, recipient)
	if err != nil {
		return 0, err
	}
	seq := max(head.Next, atLeast, 1)
	for {
		_, err := s.GetNotification(ctx, recipient, seq)
		if errors.Is(err, ErrNotFound) {
			return seq, nil
		}
		if err != nil {
			return 0, err
		}
		seq++
	}
}

// GetNotification reads notification seq of recipient.
func (s *Store) GetNotification(ctx context.Context, recipient string, seq int64) (*Notification, error) {
	var n Notification
	if err := get(ctx, s.notifications(), NotificationID(recipient, seq), &n); err != nil {
		return nil, fmt.Errorf("store: get notification: %w", err)
	}
	return &n, nil
}

// NotificationsFrom returns recipient's notifications from seq from on,
// acknowledged or not, consecutive: it stops at limit or at the first seq
// with none. On MongoDB that is one walk over the _id index; on the
// embedded store, which would scan for a range, one exact _id read each.
func (s *Store) NotificationsFrom(ctx context.Context, recipient string, from int64, limit int) ([]*Notification, error) {
	return seqRange[Notification](ctx, s, s.notifications(), func(seq int64) string { return NotificationID(recipient, seq) }, from, limit)
}

// errAlreadyAcked skips the write of an acknowledgement made before.
var errAlreadyAcked = errors.New("already acknowledged")

// AckNotification marks notification seq of recipient acknowledged, at at
// by by; acknowledging it again changes nothing. It then moves the head's
// AckedUpto past every acknowledged notification in a row.
func (s *Store) AckNotification(ctx context.Context, recipient string, seq, at int64, by string) (*Notification, error) {
	n, err := update(ctx, s, s.notifications(), NotificationID(recipient, seq), func(n *Notification) error {
		if n.Acked {
			return errAlreadyAcked
		}
		n.Acked, n.AckedAt, n.AckedBy = true, at, by
		return nil
	})
	if errors.Is(err, errAlreadyAcked) {
		n, err = s.GetNotification(ctx, recipient, seq)
	}
	if err != nil {
		return nil, fmt.Errorf("store: acknowledge notification: %w", err)
	}
	head, err := s.GetNotificationHead(ctx, recipient)
	if err != nil {
		return nil, err
	}
	upto := head.AckedUpto
	for {
		next, err := s.GetNotification(ctx, recipient, upto+1)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if !next.Acked {
			break
		}
		upto++
	}
	if upto > head.AckedUpto {
		if err := s.moveNotificationHead(ctx, recipient, 0, upto); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// GetNotificationHead returns recipient's head; a recipient without one
// has an empty queue.
func (s *Store) GetNotificationHead(ctx context.Context, recipient string) (*NotificationHead, error) {
	h := NotificationHead{ID: recipient}
	err := get(ctx, s.notificationHeads(), recipient, &h)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store: get notification head: %w", err)
	}
	h.Next = max(h.Next, 1)
	return &h, nil
}

// errHeadAhead skips a head move that another writer made already.
var errHeadAhead = errors.New("head ahead")

// moveNotificationHead moves recipient's head forward to next and
// ackedUpto, where they are ahead of it; it never moves it back.
func (s *Store) moveNotificationHead(ctx context.Context, recipient string, next, ackedUpto int64) error {
	for range maxUpdateAttempts {
		_, err := update(ctx, s, s.notificationHeads(), recipient, func(h *NotificationHead) error {
			if h.Next >= next && h.AckedUpto >= ackedUpto {
				return errHeadAhead
			}
			h.Next, h.AckedUpto = max(h.Next, next), max(h.AckedUpto, ackedUpto)
			return nil
		})
		switch {
		case err == nil, errors.Is(err, errHeadAhead):
			return nil
		case !errors.Is(err, ErrNotFound):
			return fmt.Errorf("store: move notification head: %w", err)
		}
		err = s.insert(ctx, s.notificationHeads(), &NotificationHead{ID: recipient, Version: 1, Next: 1})
		if err != nil && !errors.Is(err, ErrExists) {
			return fmt.Errorf("store: create notification head: %w", err)
		}
	}
	return fmt.Errorf("store: move notification head: %w", ErrConflict)
}

// MarkSubjectNotified records in the subject that its changes up to version
// are queued for their recipients. It only moves the mark forward and does
// not count as a change of the subject (its version stays). On MongoDB a
// concurrent update of the subject may write back an older mark: that only
// makes the service look again, and enqueueing is idempotent.
func (s *Store) MarkSubjectNotified(ctx context.Context, id string, version int64) error {
	filter := bson.D{{Key: "_id", Value: id}}
	if s.locks == nil {
		_, err := s.subjects.UpdateOne(ctx, filter, bson.D{{Key: "$max", Value: bson.D{{Key: "notified_version", Value: version}}}})
		if err != nil {
			return fmt.Errorf("store: mark subject notified: %w", classify(err))
		}
		return nil
	}
	// The embedded store: under the lock that its updates of the subject
	// take, so that neither loses the other's write.
	unlock := s.lock(subjectsCollection, id)
	defer unlock()
	var cur struct {
		NotifiedVersion int64 `bson:"notified_version"`
	}
	if err := s.read(ctx, s.subjects, id, &cur, true); err != nil {
		return fmt.Errorf("store: mark subject notified: %w", err)
	}
	if cur.NotifiedVersion >= version {
		return nil
	}
	err := s.write(ctx, s.subjects, func(ctx context.Context) error {
		_, err := s.subjects.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "notified_version", Value: version}}}})
		return err
	})
	s.wrote(s.subjects, id, nil, false) // read again next time
	if err != nil {
		return fmt.Errorf("store: mark subject notified: %w", classify(err))
	}
	return nil
}

// CountUnackedNotifications counts the recipients' notifications not yet
// acknowledged, over every recipient.
func (s *Store) CountUnackedNotifications(ctx context.Context) (int64, error) {
	// Counted here, not by a filter on a field that is absent until set:
	// FerretDB v1 gets some such filters wrong (embedded-store.md).
	cur, err := s.notifications().Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "acked", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("store: count notifications: %w", classify(err))
	}
	defer cur.Close(ctx)
	var n int64
	for cur.Next(ctx) {
		var d struct {
			Acked bool `bson:"acked"`
		}
		if err := cur.Decode(&d); err != nil {
			return 0, fmt.Errorf("store: count notifications: %w", err)
		}
		if !d.Acked {
			n++
		}
	}
	return n, classify(cur.Err())
}
