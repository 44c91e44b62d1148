package requests

import (
	"bytes"
	"strings"
	"testing"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/store"
)

// TestLetterSender: the reply letter says who it is from, how to reach the
// company, and is signed; a Swedish address ends with its locality, a
// foreign one with its country in the letter's language.
func TestLetterSender(t *testing.T) {
	sender := core.LetterSender{Name: "Exempel AB", Address: "Box 1, 111 11 Stockholm", Email: "support@example.se", Phone: "08-123 456 00"}
	for _, tc := range []struct {
		lang, country string
		want, not     []string
	}{
		{"sv", "SE", []string{"Från", "Exempel AB", "Box 1", "support@example.se", "08-123 456 00", "Kontakta oss", "Med vänliga hälsningar", "Supporten", "123 45 Stockholm<"}, []string{", SE"}},
		{"sv", "NO", []string{"123 45 Stockholm, Norge"}, nil},
		{"en", "NO", []string{"From", "Contact us", "Kind regards", "123 45 Stockholm, Norway"}, nil},
	} {
		reply := &pdv1.GetRightsRequestReplyResponse{DataHeld: true, Data: &pdv1.AccessSubjectResponse{Subject: &pdv1.Subject{Person: &pdv1.Person{
			GivenName: "Tolvan", PostalAddress: &pdv1.PostalAddress{Lines: []string{"Gatan 1"}, PostalCode: "123 45", Locality: "Stockholm", CountryCode: tc.country}}}}}
		v := letterData(&store.RightsRequest{ID: "abcdefghijkl", Controller: rules.CompanyController}, reply, tc.lang)
		v.Sender = sender.View()
		var b bytes.Buffer
		if err := letterTemplate.Execute(&b, v); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s, %s: the letter lacks %q", tc.lang, tc.country, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(b.String(), n) {
				t.Errorf("%s, %s: the letter says %q", tc.lang, tc.country, n)
			}
		}
	}
	// Without a configured sender the letter still has the contact and
	// the signature, in the privacy policy's words.
	v := letterData(&store.RightsRequest{ID: "abcdefghijkl", Controller: rules.CompanyController}, &pdv1.GetRightsRequestReplyResponse{}, "sv")
	var b bytes.Buffer
	if err := letterTemplate.Execute(&b, v); err != nil {
		t.Fatal(err)
	}
	if s := b.String(); !strings.Contains(s, "via e-post, telefon eller vårt kontaktformulär") || !strings.Contains(s, "Supporten") || strings.Contains(s, `id="sender"`) {
		t.Errorf("the letter without a configured sender: %s", s)
	}
}
