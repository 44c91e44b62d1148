package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/storetest"
)

// TestHotPathsReadByExactID watches every command the store sends while the
// hot calls run (create, find, access, purpose view, rectify, history): each
// filter names exactly one _id, the only filter the embedded store pushes
// down. A scan on a hot path fails it.
func TestHotPathsReadByExactID(t *testing.T) {
	var watching atomic.Bool
	var mu sync.Mutex
	var bad []string
	var filters int
	check := func(cmd, coll string, filter bson.Raw) {
		if !exactID(filter, storetest.URI() != "") {
			bad = append(bad, fmt.Sprintf("%s on %s: %s", cmd, coll, filter))
		}
		filters++
	}
	monitor := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if !watching.Load() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		coll, _ := e.Command.Lookup(e.CommandName).StringValueOK()
		switch e.CommandName {
		case "find":
			check("find", coll, e.Command.Lookup("filter").Document())
		case "findAndModify":
			check("findAndModify", coll, e.Command.Lookup("query").Document())
		case "update", "delete":
			list := "updates"
			if e.CommandName == "delete" {
				list = "deletes"
			}
			values, _ := e.Command.Lookup(list).Array().Values()
			for _, v := range values {
				check(e.CommandName, coll, v.Document().Lookup("q").Document())
			}
		case "insert", "ping", "endSessions", "hello", "isMaster", "getMore", "killCursors":
		default:
			bad = append(bad, e.CommandName+" on "+coll)
		}
	}}
	dir := t.TempDir()
	srv, _ := serve(t, dir, server.Config{Store: store.Config{
		URI: storetest.URI(), DataDir: filepath.Join(dir, "data"), Database: "exactid", Monitor: monitor,
	}}, slog.New(slog.DiscardHandler))
	conn := dial(t, srv)
	op := grpcCaller{conn, readToken(t, filepath.Join(dir, "operator.token"))}
	token := createPrincipal(t, op, "tester", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, allPurposes)

	watching.Store(true)
	for _, c := range []caller{grpcCaller{conn, token}, restCaller{"http://" + srv.HTTPAddr(), token}} {
		n := 370
		if c.name() == "rest" {
			n = 371
		}
		sub := create(t, c, n)
		id := sub.GetSubjectId()
		call(t, c, "FindSubject", &pdv1.FindSubjectRequest{Key: &pdv1.FindSubjectRequest_Email{Email: sub.GetPerson().GetEmail()}}, &pdv1.FindSubjectResponse{})
		call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{})
		call(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: id, Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{})
		rect := call(t, c, "RectifySubject", rectifyReq(sub, "exact-rect", &pdv1.Person{Email: fmt.Sprintf("ny%d@example.test", n)}, "email"), &pdv1.RectifySubjectResponse{})
		call(t, c, "AddHistoryEntry", historyReq(rect.GetSubject(), "exact-hist", n), &pdv1.AddHistoryEntryResponse{})
		call(t, c, "ListHistoryEntries", &pdv1.ListHistoryEntriesRequest{SubjectId: id}, &pdv1.ListHistoryEntriesResponse{})
	}
	watching.Store(false)
	mu.Lock()
	defer mu.Unlock()
	if filters == 0 {
		t.Fatal("no filter seen; the test checks nothing")
	}
	for _, b := range bad {
		t.Errorf("not an exact-_id command on a hot path: %s", b)
	}
}

// exactID says whether filter names exactly one _id: {_id: "<id>"} alone,
// the one filter the embedded store pushes down; in the MongoDB mode an
// update may add guards on the same document ({_id, v}, {_id, seq: {$lt}}),
// which MongoDB answers through the _id index.
func exactID(filter bson.Raw, guards bool) bool {
	elems, err := filter.Elements()
	if err != nil || len(elems) == 0 || elems[0].Key() != "_id" {
		return false
	}
	if _, isString := elems[0].Value().StringValueOK(); !isString && !(guards && idsIn(elems[0].Value())) {
		return false
	}
	for _, e := range elems[1:] {
		if !guards || e.Key() == "_id" {
			return false
		}
	}
	return true
}

// idsIn says whether v is {$in: [<string>, ...]}: in the MongoDB mode a
// few exact _ids read in one find (a subject's op records, store/ops.go),
// which MongoDB answers through the _id index; the embedded store reads
// them one by one.
func idsIn(v bson.RawValue) bool {
	doc, ok := v.DocumentOK()
	if !ok {
		return false
	}
	elems, err := doc.Elements()
	if err != nil || len(elems) != 1 || elems[0].Key() != "$in" {
		return false
	}
	values, err := elems[0].Value().Array().Values()
	if err != nil || len(values) == 0 {
		return false
	}
	for _, x := range values {
		if _, ok := x.StringValueOK(); !ok {
			return false
		}
	}
	return true
}
