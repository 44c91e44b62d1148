package main

import (
	"testing"
	"time"

	"github.com/example/personaldata/service/contact"
	"github.com/example/personaldata/service/personnummer"
)

func TestMadeUpPeopleAreValidAndDistinct(t *testing.T) {
	first := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC)
	if days := int(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Sub(first).Hours() / 24); days != birthDays {
		t.Fatalf("birthDays = %d, want %d", birthDays, days)
	}
	now := time.Now()
	seen := map[string]bool{}
	for _, i := range []int{0, 1, 59, 60, 18261, 18262, 18263, 40000, 123456, maxPeople - 1} {
		p := madeUpPerson(i)
		n, err := personnummer.Parse(p.IdentityNumber, now)
		if err != nil {
			t.Fatalf("person %d: identity number %s: %v", i, p.IdentityNumber, err)
		}
		if n.Kind() != personnummer.Personnummer || n.String() != p.IdentityNumber {
			t.Errorf("person %d: %s parsed as %s, kind %v", i, p.IdentityNumber, n, n.Kind())
		}
		if seen[p.IdentityNumber] {
			t.Errorf("person %d: identity number %s repeats", i, p.IdentityNumber)
		}
		seen[p.IdentityNumber] = true
		if _, err := contact.Email(p.Email); err != nil {
			t.Errorf("person %d: e-mail: %v", i, err)
		}
		if _, err := contact.Phone(p.Phone); err != nil {
			t.Errorf("person %d: phone: %v", i, err)
		}
	}
	all := map[string]bool{}
	for i := range 40000 {
		n := identityNumber(i)
		if _, err := personnummer.Parse(n, now); err != nil {
			t.Fatalf("person %d: %s: %v", i, n, err)
		}
		if all[n] {
			t.Fatalf("person %d: %s repeats", i, n)
		}
		all[n] = true
	}
}
