package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/event"
	"google.golang.org/protobuf/proto"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/storetest"
)

// TestRoundTripsPerCall counts the commands the store receives during one
// call of each hot RPC, on a replica whose caches are warm (the subject's,
// after the first read that follows its creation), one call at a
// time (so no audit batch is shared). The counts are the cost model of the
// service (see cmd/pdbench/README.md and store/doc.go): a change that adds a round
// trip to a hot call fails here and must say so. Not counted: the read of
// the principals' generation, which a replica makes every
// auth.GenerationWindow/2 under load whatever the number of calls.
func TestRoundTripsPerCall(t *testing.T) {
	var mu sync.Mutex
	var watching bool
	var seen []string
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		mu.Lock()
		defer mu.Unlock()
		coll, _ := e.Command.Lookup(e.CommandName).StringValueOK()
		if watching && coll != "generations" {
			seen = append(seen, e.CommandName+" "+coll)
		}
	}}
	dir := t.TempDir()
	srv, _ := serve(t, dir, server.Config{Store: store.Config{
		URI: storetest.URI(), DataDir: filepath.Join(dir, "data"), Database: "roundtrips", Monitor: monitor,
	}}, slog.New(slog.DiscardHandler))
	conn := dial(t, srv)
	op := grpcCaller{conn, readToken(t, filepath.Join(dir, "operator.token"))}
	c := grpcCaller{conn, createPrincipal(t, op, "tester", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, allPurposes)}

	// count runs one call and returns the commands it sent.
	count := func(method string, req, resp proto.Message) []string {
		t.Helper()
		mu.Lock()
		watching, seen = true, nil
		mu.Unlock()
		call(t, c, method, req, resp)
		mu.Lock()
		defer mu.Unlock()
		watching = false
		return slices.Clone(seen)
	}
	// Warm the caches (principal, data key, chain end) with a first subject.
	warm := create(t, c, 380)
	call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: warm.GetSubjectId()}, &pdv1.AccessSubjectResponse{})

	// On the embedded store this process owns the data and keeps the
	// subjects it read or wrote (the store's subject cache): once a subject
	// was read, its reads and its guarded update send no find. On MongoDB,
	// where other replicas write too, every call reads the subject.
	owner := storetest.URI() == ""
	either := func(owned, shared []string) []string {
		if owner {
			return owned
		}
		return shared
	}
	// An audit batch (here, one call's event) is one insert: its events
	// and their leaves in the Merkle tree (service/audit/tree.go).
	created := &pdv1.CreateSubjectResponse{}
	steps := []struct {
		rpc  string
		want []string // the commands, sorted
		run  func() []string
	}{
		{"CreateSubject", []string{"insert audit_events", "insert data_keys", "insert keys", "insert subjects"}, func() []string {
			return count("CreateSubject", createReq("roundtrips-create", 381), created)
		}},
		{"AccessSubject", []string{"find subjects", "insert audit_events"}, func() []string {
			return count("AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: created.GetSubject().GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		}},
		{"GetSubjectForPurpose", either([]string{"insert audit_events"}, []string{"find subjects", "insert audit_events"}), func() []string {
			return count("GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: created.GetSubject().GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{})
		}},
		// A phone number has no lookup key, but the rules and the keys to
		// claim are decided on a first read, before the guarded update
		// reads the subject again and writes it back; then the audit.
		// The idempotency key costs two more (store/ops.go): the read of
		// its record in the collection of ops (one exact _id; made before
		// the update, to answer a retry before the version check, and
		// standing inside it while the subject is unchanged), and the
		// insert of the record once the subject is written (batched with
		// those of concurrent changes). The record of
		// the subject's last op, which the change overwrites, is not read:
		// this process wrote it (here there is none, the create's key
		// stays in the subject). A process that did not (another
		// replica, or this one after a restart) reads it too on its first
		// change to the subject: in the same find on MongoDB, one more
		// exact _id read on the embedded store.
		{"RectifySubject", either([]string{"find subject_ops", "insert audit_events", "insert subject_ops", "update subjects"},
			[]string{"find subject_ops", "find subjects", "find subjects", "insert audit_events", "insert subject_ops", "update subjects"}), func() []string {
			return count("RectifySubject", rectifyReq(created.GetSubject(), "roundtrips-rectify", &pdv1.Person{Phone: "+46701234567"}, "phone"), &pdv1.RectifySubjectResponse{})
		}},
	}
	var table []string
	for _, s := range steps {
		got := s.run()
		slices.Sort(got)
		table = append(table, fmt.Sprintf("%-22s %d: %s", s.rpc, len(got), strings.Join(got, ", ")))
		if !slices.Equal(got, s.want) {
			t.Errorf("%s sent %d commands %v, want %d %v", s.rpc, len(got), got, len(s.want), s.want)
		}
	}
	t.Logf("store round trips per call, warm caches:\n%s", strings.Join(table, "\n"))
}
