package subjects

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
)

// The access document (Art. 15 and 20) is everything held about a subject.
// What grows without bound is cut into pages, so that no message is too
// large whatever is held: AccessSubject answers one page a call,
// StreamSubjectAccess and the customers' export send them all.

// maxPageBytes is where a page ends: after the item that reaches it. The
// largest item, a history entry (64 Ki characters of body, at most 256 KiB),
// keeps a page far below the 4 MiB a gRPC message may have by default, the
// limit of the server and of its clients.
const maxPageBytes = 1 << 20

// accessList is one growing list of the access document, in page order.
type accessList int

const (
	listChanges accessList = iota
	listConsents
	listDisclosures
	listHolds
	listHistory
	listEnd // past the last list: the document is complete
)

// accessListNames name the lists in page tokens.
var accessListNames = []string{"changes", "consents", "disclosures", "holds", "history"}

// AccessCursor is where a page starts: a list, and the position in it (for
// history, the sequence number). The zero cursor is the first page.
type AccessCursor struct {
	list accessList
	next int64
}

// Done reports whether the cursor is past the last page.
func (c AccessCursor) Done() bool { return c.list == listEnd }

// Access page tokens are opaque to callers: the subject, the list and the
// position, so a token cannot be used on another subject's document.
func encodeAccessToken(subjectID string, c AccessCursor) string {
	return subjectToken(subjectID, accessListNames[c.list], strconv.FormatInt(c.next, 10))
}

func decodeAccessToken(token, subjectID string) (AccessCursor, bool) {
	if token == "" {
		return AccessCursor{}, true
	}
	parts, ok := subjectTokenParts(token, subjectID, 2)
	if !ok {
		return AccessCursor{}, false
	}
	list := slices.Index(accessListNames, parts[0])
	next, err := strconv.ParseInt(parts[1], 10, 64)
	if list < 0 || err != nil || next < 0 {
		return AccessCursor{}, false
	}
	return AccessCursor{list: accessList(list), next: next}, true
}

// accessRequest checks the fields AccessSubject and StreamSubjectAccess share.
func accessRequest(subjectID, pageToken string) (string, AccessCursor, error) {
	var v validate.Violations
	id := v.SubjectID(subjectID)
	from, ok := decodeAccessToken(pageToken, id)
	if !ok {
		v.Add("page_token", "is not a token from this subject's access document")
	}
	return id, from, v.Err()
}

// AccessSubject returns a page of everything held about a subject.
func (s *Service) AccessSubject(ctx context.Context, req *pdv1.AccessSubjectRequest) (*pdv1.AccessSubjectResponse, error) {
	id, from, err := accessRequest(req.GetSubjectId(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	sub, agreements, err := s.SubjectForAccess(ctx, id)
	if err != nil {
		return nil, err
	}
	page, _, err := s.AccessPage(ctx, sub, agreements, from)
	if err != nil {
		return nil, s.Internal(ctx, "access", err)
	}
	return page, nil
}

// StreamSubjectAccess sends every page of a subject's access document, all
// from one read of the subject.
func (s *Service) StreamSubjectAccess(req *pdv1.StreamSubjectAccessRequest, stream grpc.ServerStreamingServer[pdv1.StreamSubjectAccessResponse]) error {
	ctx := stream.Context()
	id, from, err := accessRequest(req.GetSubjectId(), req.GetPageToken())
	if err != nil {
		return err
	}
	sub, agreements, err := s.SubjectForAccess(ctx, id)
	if err != nil {
		return err
	}
	for c := from; c.list != listEnd; {
		var page *pdv1.AccessSubjectResponse
		if page, c, err = s.AccessPage(ctx, sub, agreements, c); err != nil {
			return s.Internal(ctx, "access", err)
		}
		if err := stream.Send(&pdv1.StreamSubjectAccessResponse{Page: page}); err != nil {
			return err
		}
	}
	return nil
}

// SubjectForAccess reads a subject for an access request, with its
// controller's agreements when it is a customer (nil for the company's own
// data and for a tombstone, which need none): the subject exists and is
// visible, the request comes on the controller's instruction, and an
// agreement in force covers the data held.
func (s *Service) SubjectForAccess(ctx context.Context, id string) (*store.Subject, *store.Agreements, error) {
	sub, err := s.GetSubject(ctx, "access", id)
	if sub == nil {
		return nil, nil, err
	}
	// For an erased subject err says so; access shows its tombstone.
	core.Note(ctx, audit.Touch{SubjectID: id, Fields: append([]string{"history", "changes"}, rules.PersonFields...)})
	if err := s.OnControllersInstruction(ctx, sub); err != nil {
		return nil, nil, err
	}
	if sub.Erasure != nil {
		return sub, nil, nil
	}
	agreements, err := s.AgreementsOf(ctx, sub.Controller)
	if err != nil {
		return nil, nil, err
	}
	if err := s.AgreementCovers(agreements, sub.Controller, pdv1.Purpose_PURPOSE_UNSPECIFIED, HeldCategories(sub)); err != nil {
		return nil, nil, err
	}
	return sub, agreements, nil
}

// HeldCategories are the categories of personal data a live subject has.
func HeldCategories(sub *store.Subject) []pdv1.DataCategory {
	cats := []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_CONTACT}
	if sub.HistoryCount > 0 {
		cats = append(cats, pdv1.DataCategory_DATA_CATEGORY_HISTORY)
	}
	return cats
}

// AccessPage is the page of sub's access document that starts at from, and
// where the next one starts (list listEnd after the last). The first page
// has the purposes and the retention; for an erased subject, the tombstone
// is all that is held, with what legal holds keep (storage only), and no
// purpose.
func (s *Service) AccessPage(ctx context.Context, sub *store.Subject, agreements *store.Agreements, from AccessCursor) (*pdv1.AccessSubjectResponse, AccessCursor, error) {
	now := s.Now()
	out := &pdv1.AccessSubjectResponse{Subject: subjectToProto(sub), GenerateTime: timestamppb.New(now)}
	if from == (AccessCursor{}) {
		if sub.Erasure == nil {
			out.Purposes = rules.ProcessingPurposes(sub.Controller, agreements, now.UnixNano())
		}
		out.Retention = retentionOf(sub, agreements, now)
		for i := range sub.PolicyAcks {
			out.PolicyAcknowledgements = append(out.PolicyAcknowledgements, PolicyAckToProto(&sub.PolicyAcks[i]))
		}
	}
	size := proto.Size(out)
	c := from
	for c.list < listEnd {
		if c.next >= accessListLen(sub, c.list) {
			c = AccessCursor{list: c.list + 1}
			continue
		}
		if size >= maxPageBytes {
			out.NextPageToken = encodeAccessToken(sub.ID, c)
			return out, c, nil
		}
		n, err := s.addAccessItem(ctx, out, sub, c)
		if err != nil {
			return nil, c, err
		}
		size += n
		c.next++
	}
	return out, c, nil
}

// accessListLen is the length of a list of sub's document.
func accessListLen(sub *store.Subject, l accessList) int64 {
	switch l {
	case listChanges:
		return int64(len(sub.Changes))
	case listConsents:
		return int64(len(sub.Consents))
	case listDisclosures:
		return int64(len(sub.Disclosures))
	case listHolds:
		return int64(len(sub.Holds))
	case listHistory:
		if sub.Erasure != nil && !keepsHistory(sub) {
			return 0
		}
		return sub.HistoryCount
	}
	return 0
}

// addAccessItem adds the item at c to page and returns its encoded size.
func (s *Service) addAccessItem(ctx context.Context, page *pdv1.AccessSubjectResponse, sub *store.Subject, c AccessCursor) (int, error) {
	var item proto.Message
	switch i := c.next; c.list {
	case listChanges:
		m := changeToProto(sub.Changes[i])
		page.Changes, item = append(page.Changes, m), m
	case listConsents:
		m := ConsentToProto(&sub.Consents[i])
		page.Consents, item = append(page.Consents, m), m
	case listDisclosures:
		m := DisclosureToProto(&sub.Disclosures[i])
		page.Disclosures, item = append(page.Disclosures, m), m
	case listHolds:
		m := HoldToProto(&sub.Holds[i])
		page.Holds, item = append(page.Holds, m), m
	case listHistory:
		m, err := s.historyEntry(ctx, sub.ID, i)
		if m == nil {
			return 0, err
		}
		page.History, item = append(page.History, m), m
	}
	return proto.Size(item), nil
}

// historyEntry reads entry seq of a subject by exact _id: nil without error
// for a number with no entry (an add interrupted before its entry was
// written).
func (s *Service) historyEntry(ctx context.Context, subjectID string, seq int64) (*pdv1.HistoryEntry, error) {
	e, err := s.Vault.GetHistoryEntry(ctx, subjectID, seq)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return historyToProto(e), nil
}
