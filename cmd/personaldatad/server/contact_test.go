package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// TestCreateSubjectRefusesInvalidPhone: numbers that look like phone
// numbers but are not valid in their country's numbering plan are refused,
// naming the field and never quoting the number, and nothing is written.
func TestCreateSubjectRefusesInvalidPhone(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		for _, phone := range []string{"070-123 45 6", "+999 1234567", "+1 555 0100 12"} {
			req := createReq("bad-phone", 9)
			req.Person.Phone = phone
			err := callErr(t, c, "CreateSubject", req, &pdv1.CreateSubjectResponse{}, codes.InvalidArgument)
			if got := badFields(err); !slices.Equal(got, []string{"person.phone"}) {
				t.Errorf("%q: fields %v, want [person.phone]", phone, got)
			}
			// All the client gets: over gRPC the status with its details,
			// over REST the raw response body.
			body, merr := protojson.Marshal(status.Convert(err).Proto())
			if merr != nil {
				t.Fatal(merr)
			}
			if rc, ok := c.(restCaller); ok {
				body = rawPost(t, rc, "/v1/subjects", req, http.StatusBadRequest)
			}
			if !bytes.Contains(body, []byte("person.phone")) {
				t.Errorf("%q: error body does not name the field: %s", phone, body)
			}
			digits := strings.Map(func(r rune) rune {
				if r < '0' || r > '9' {
					return -1
				}
				return r
			}, phone)
			for _, v := range []string{phone, digits, "+" + digits} {
				if bytes.Contains(body, []byte(v)) {
					t.Errorf("error body quotes the number %q: %s", v, body)
				}
				if strings.Contains(e.logs.String(), v) {
					t.Errorf("logs quote the number %q", v)
				}
			}
		}
		if n := e.count(t, "subjects") + e.count(t, "keys"); n != 0 {
			t.Errorf("%d documents written by refused requests, want 0", n)
		}
	})
}

// TestInternationalisedEmail: an address whose domain has å, ä, ö is
// accepted and stored with the domain in its IDNA ASCII (xn--) form; the
// response returns it as stored, and a lookup finds the subject whichever
// form, and case, the caller sends.
func TestInternationalisedEmail(t *testing.T) {
	const (
		given     = "Tolvan.T@Räksmörgås.example"
		canonical = "Tolvan.T@xn--rksmrgs-5wao1o.example"
	)
	transports(t, func(t *testing.T, e *env, c caller) {
		req := createReq("idn-1", 12)
		req.Person.Email = given
		req.Person.Phone = "+46 (0)8-123 456 78"
		sub := call(t, c, "CreateSubject", req, &pdv1.CreateSubjectResponse{}).GetSubject()
		if got := sub.GetPerson().GetEmail(); got != canonical {
			t.Errorf("response e-mail %q, want %q", got, canonical)
		}
		if got := sub.GetPerson().GetPhone(); got != "+46812345678" {
			t.Errorf("response phone %q, want +46812345678", got)
		}
		stored := e.openStored(t, sub.GetSubjectId())
		if stored["email"] != canonical || stored["phone"] != "+46812345678" {
			t.Errorf("stored e-mail %q phone %q, want %q +46812345678", stored["email"], stored["phone"], canonical)
		}
		if dump := e.rawDump(t); strings.Contains(dump, "xn--rksmrgs") || strings.Contains(dump, "Tolvan.T@") {
			t.Errorf("the e-mail address is stored in the clear")
		}

		for _, email := range []string{
			given,
			"tolvan.t@RÄKSMÖRGÅS.EXAMPLE",
			canonical,
			"Tolvan.T@XN--RKSMRGS-5WAO1O.example",
		} {
			find := &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: email}}
			got := call(t, c, "FindSubject", find, &pdv1.FindSubjectResponse{}).GetSubject()
			if got.GetSubjectId() != sub.GetSubjectId() {
				t.Errorf("FindSubject(%q) found %q, want %q", email, got.GetSubjectId(), sub.GetSubjectId())
			}
		}

		// The other form of the same address is the same address.
		dup := createReq("idn-2", 13)
		dup.Person.Email = canonical
		callErr(t, c, "CreateSubject", dup, &pdv1.CreateSubjectResponse{}, codes.AlreadyExists)

		// A domain that is not valid IDNA is refused, naming the field.
		bad := createReq("idn-3", 14)
		bad.Person.Email = "tolvan@xn--zz.example"
		err := callErr(t, c, "CreateSubject", bad, &pdv1.CreateSubjectResponse{}, codes.InvalidArgument)
		if got := badFields(err); !slices.Equal(got, []string{"person.email"}) {
			t.Errorf("fields %v, want [person.email]", got)
		}
		if n := e.count(t, "subjects"); n != 1 {
			t.Errorf("%d subjects, want 1", n)
		}
	})
}

// rawPost posts req as JSON to path as rc's principal, checks the HTTP
// status and returns the response body as the client receives it.
func rawPost(t *testing.T, rc restCaller, path string, req proto.Message, wantStatus int) []byte {
	t.Helper()
	b, err := jsonOut.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hr, err := http.NewRequestWithContext(context.Background(), http.MethodPost, rc.base+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+rc.token)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != wantStatus {
		t.Fatalf("POST %s: HTTP %d, want %d: %s", path, res.StatusCode, wantStatus, body)
	}
	return body
}
