package service

import (
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/personnummer"
	"github.com/example/personaldata/store"
)

func subjectToProto(sub *store.Subject) *pdv1.Subject {
	out := &pdv1.Subject{
		SubjectId:       sub.ID,
		ControllerId:    sub.Controller,
		Version:         sub.Version,
		State:           pdv1.SubjectState_SUBJECT_STATE_ACTIVE,
		ServiceDelivery: pdv1.ServiceDelivery_SERVICE_DELIVERY_ACTIVE,
		CreateTime:      ts(sub.CreatedAt),
		UpdateTime:      ts(sub.UpdatedAt),
		HistoryCount:    sub.HistoryCount,
	}
	if sub.Person != nil {
		out.Person = personToProto(sub.Person, personFields)
	}
	if r := sub.Restriction; r != nil {
		out.State = pdv1.SubjectState_SUBJECT_STATE_RESTRICTED
		out.ServiceDelivery = pdv1.ServiceDelivery_SERVICE_DELIVERY_SUSPENDED
		out.Restriction = &pdv1.Restriction{
			Ground:       enumValue[pdv1.RestrictionGround](pdv1.RestrictionGround_value, r.Ground),
			RestrictTime: ts(r.At),
			Channel:      enumValue[pdv1.Channel](pdv1.Channel_value, r.Channel),
			Reference:    r.Reference,
			PerformedBy:  r.PerformedBy,
		}
	}
	if e := sub.Erasure; e != nil {
		out.State = pdv1.SubjectState_SUBJECT_STATE_ERASED
		out.ServiceDelivery = pdv1.ServiceDelivery_SERVICE_DELIVERY_ENDED
		out.Erasure = &pdv1.Erasure{
			Ground:      enumValue[pdv1.ErasureGround](pdv1.ErasureGround_value, e.Ground),
			EraseTime:   ts(e.At),
			Channel:     enumValue[pdv1.Channel](pdv1.Channel_value, e.Channel),
			Reference:   e.Reference,
			PerformedBy: e.PerformedBy,
		}
	}
	return out
}

// personToProto returns the named fields of p and leaves the others unset.
func personToProto(p *store.Person, fields []string) *pdv1.Person {
	out := &pdv1.Person{}
	for _, f := range fields {
		switch f {
		case fieldIdentityNumber:
			out.IdentityNumber = p.IdentityNumber
			out.IdentityNumberKind = identityNumberKind(p.IdentityNumber)
		case fieldGivenName:
			out.GivenName = p.GivenName
		case fieldFamilyName:
			out.FamilyName = p.FamilyName
		case fieldEmail:
			out.Email = p.Email
		case fieldPhone:
			out.Phone = p.Phone
		case fieldPostalAddress:
			if a := p.Address; len(a.Lines) > 0 {
				out.PostalAddress = &pdv1.PostalAddress{
					Lines:       a.Lines,
					PostalCode:  a.PostalCode,
					Locality:    a.Locality,
					CountryCode: a.CountryCode,
				}
			}
		}
	}
	return out
}

func identityNumberKind(canonical string) pdv1.IdentityNumberKind {
	switch personnummer.Number(canonical).Kind() {
	case personnummer.Samordningsnummer:
		return pdv1.IdentityNumberKind_IDENTITY_NUMBER_KIND_SAMORDNINGSNUMMER
	case personnummer.Personnummer:
		return pdv1.IdentityNumberKind_IDENTITY_NUMBER_KIND_PERSONNUMMER
	}
	return pdv1.IdentityNumberKind_IDENTITY_NUMBER_KIND_UNSPECIFIED
}

func changeToProto(c store.Change) *pdv1.ChangeRecord {
	return &pdv1.ChangeRecord{
		Kind:              enumValue[pdv1.ChangeKind](pdv1.ChangeKind_value, c.Kind),
		Fields:            c.Fields,
		ChangeTime:        ts(c.At),
		Channel:           enumValue[pdv1.Channel](pdv1.Channel_value, c.Channel),
		Reference:         c.Reference,
		PerformedBy:       c.PerformedBy,
		Version:           c.Version,
		RestrictionGround: enumValue[pdv1.RestrictionGround](pdv1.RestrictionGround_value, c.RestrictionGround),
		LiftResolution:    enumValue[pdv1.LiftResolution](pdv1.LiftResolution_value, c.LiftResolution),
		ErasureGround:     enumValue[pdv1.ErasureGround](pdv1.ErasureGround_value, c.ErasureGround),
	}
}

func historyToProto(e *store.HistoryEntry) *pdv1.HistoryEntry {
	return &pdv1.HistoryEntry{
		EntryId:    e.ID,
		Kind:       enumValue[pdv1.HistoryKind](pdv1.HistoryKind_value, e.Kind),
		Title:      e.Title,
		Body:       e.Body,
		OccurTime:  ts(e.OccurAt),
		Reference:  e.Reference,
		CreateTime: ts(e.CreatedAt),
	}
}

func consentToProto(c *store.Consent) *pdv1.Consent {
	return &pdv1.Consent{
		ConsentId:         c.ID,
		Purpose:           enumValue[pdv1.ConsentPurpose](pdv1.ConsentPurpose_value, c.Purpose),
		Recipient:         c.Recipient,
		GiveTime:          ts(c.GivenAt),
		Channel:           enumValue[pdv1.Channel](pdv1.Channel_value, c.Channel),
		WordingReference:  c.WordingReference,
		WithdrawTime:      ts(c.WithdrawnAt),
		WithdrawChannel:   enumValue[pdv1.Channel](pdv1.Channel_value, c.WithdrawChannel),
		WithdrawReference: c.WithdrawReference,
	}
}

func disclosureToProto(d *store.Disclosure) *pdv1.Disclosure {
	out := &pdv1.Disclosure{
		DisclosureId: d.ID,
		Recipient:    d.Recipient,
		Purpose:      enumValue[pdv1.Purpose](pdv1.Purpose_value, d.Purpose),
		Basis:        enumValue[pdv1.DisclosureBasis](pdv1.DisclosureBasis_value, d.Basis),
		Reference:    d.Reference,
		DiscloseTime: ts(d.At),
		PrincipalId:  d.Principal,
	}
	for _, c := range d.Categories {
		out.Categories = append(out.Categories, enumValue[pdv1.DataCategory](pdv1.DataCategory_value, c))
	}
	return out
}

func policyAckToProto(a *store.PolicyAck) *pdv1.PolicyAcknowledgement {
	return &pdv1.PolicyAcknowledgement{
		Version: a.Version, Kind: enumValue[pdv1.PolicyAcknowledgementKind](pdv1.PolicyAcknowledgementKind_value, a.Kind),
		AcknowledgeTime: ts(a.At), Channel: enumValue[pdv1.Channel](pdv1.Channel_value, a.Channel), Reference: a.Reference, RecordedBy: a.RecordedBy,
	}
}
