package subjects

import (
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/personnummer"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/store"
)

func subjectToProto(sub *store.Subject) *pdv1.Subject {
	out := &pdv1.Subject{
		SubjectId:       sub.ID,
		ControllerId:    sub.Controller,
		Version:         sub.Version,
		State:           pdv1.SubjectState_SUBJECT_STATE_ACTIVE,
		ServiceDelivery: pdv1.ServiceDelivery_SERVICE_DELIVERY_ACTIVE,
		CreateTime:      core.Timestamp(sub.CreatedAt),
		UpdateTime:      core.Timestamp(sub.UpdatedAt),
		HistoryCount:    sub.HistoryCount,
	}
	if sub.Person != nil {
		out.Person = PersonToProto(sub.Person, rules.PersonFields)
	}
	if r := sub.Restriction; r != nil {
		out.State = pdv1.SubjectState_SUBJECT_STATE_RESTRICTED
		out.ServiceDelivery = pdv1.ServiceDelivery_SERVICE_DELIVERY_SUSPENDED
		out.Restriction = &pdv1.Restriction{
			Ground:       core.EnumValue[pdv1.RestrictionGround](pdv1.RestrictionGround_value, r.Ground),
			RestrictTime: core.Timestamp(r.At),
			Channel:      core.EnumValue[pdv1.Channel](pdv1.Channel_value, r.Channel),
			Reference:    r.Reference,
			PerformedBy:  r.PerformedBy,
		}
	}
	if e := sub.Erasure; e != nil {
		out.State = pdv1.SubjectState_SUBJECT_STATE_ERASED
		out.ServiceDelivery = pdv1.ServiceDelivery_SERVICE_DELIVERY_ENDED
		out.Erasure = &pdv1.Erasure{
			Ground:      core.EnumValue[pdv1.ErasureGround](pdv1.ErasureGround_value, e.Ground),
			EraseTime:   core.Timestamp(e.At),
			Channel:     core.EnumValue[pdv1.Channel](pdv1.Channel_value, e.Channel),
			Reference:   e.Reference,
			PerformedBy: e.PerformedBy,
		}
	}
	return out
}

// PersonToProto returns the named fields of p and leaves the others unset.
func PersonToProto(p *store.Person, fields []string) *pdv1.Person {
	out := &pdv1.Person{}
	for _, f := range fields {
		switch f {
		case rules.FieldIdentityNumber:
			out.IdentityNumber = p.IdentityNumber
			out.IdentityNumberKind = identityNumberKind(p.IdentityNumber)
		case rules.FieldGivenName:
			out.GivenName = p.GivenName
		case rules.FieldFamilyName:
			out.FamilyName = p.FamilyName
		case rules.FieldEmail:
			out.Email = p.Email
		case rules.FieldPhone:
			out.Phone = p.Phone
		case rules.FieldPostalAddress:
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
		Kind:              core.EnumValue[pdv1.ChangeKind](pdv1.ChangeKind_value, c.Kind),
		Fields:            c.Fields,
		ChangeTime:        core.Timestamp(c.At),
		Channel:           core.EnumValue[pdv1.Channel](pdv1.Channel_value, c.Channel),
		Reference:         c.Reference,
		PerformedBy:       c.PerformedBy,
		Version:           c.Version,
		RestrictionGround: core.EnumValue[pdv1.RestrictionGround](pdv1.RestrictionGround_value, c.RestrictionGround),
		LiftResolution:    core.EnumValue[pdv1.LiftResolution](pdv1.LiftResolution_value, c.LiftResolution),
		ErasureGround:     core.EnumValue[pdv1.ErasureGround](pdv1.ErasureGround_value, c.ErasureGround),
	}
}

func historyToProto(e *store.HistoryEntry) *pdv1.HistoryEntry {
	return &pdv1.HistoryEntry{
		EntryId:    e.ID,
		Kind:       core.EnumValue[pdv1.HistoryKind](pdv1.HistoryKind_value, e.Kind),
		Title:      e.Title,
		Body:       e.Body,
		OccurTime:  core.Timestamp(e.OccurAt),
		Reference:  e.Reference,
		CreateTime: core.Timestamp(e.CreatedAt),
	}
}

// ConsentToProto is the API's view of a stored record.
func ConsentToProto(c *store.Consent) *pdv1.Consent {
	return &pdv1.Consent{
		ConsentId:         c.ID,
		Purpose:           core.EnumValue[pdv1.ConsentPurpose](pdv1.ConsentPurpose_value, c.Purpose),
		Recipient:         c.Recipient,
		GiveTime:          core.Timestamp(c.GivenAt),
		Channel:           core.EnumValue[pdv1.Channel](pdv1.Channel_value, c.Channel),
		WordingReference:  c.WordingReference,
		WithdrawTime:      core.Timestamp(c.WithdrawnAt),
		WithdrawChannel:   core.EnumValue[pdv1.Channel](pdv1.Channel_value, c.WithdrawChannel),
		WithdrawReference: c.WithdrawReference,
	}
}

// DisclosureToProto is the API's view of a stored record.
func DisclosureToProto(d *store.Disclosure) *pdv1.Disclosure {
	out := &pdv1.Disclosure{
		DisclosureId: d.ID,
		Recipient:    d.Recipient,
		Purpose:      core.EnumValue[pdv1.Purpose](pdv1.Purpose_value, d.Purpose),
		Basis:        core.EnumValue[pdv1.DisclosureBasis](pdv1.DisclosureBasis_value, d.Basis),
		Reference:    d.Reference,
		DiscloseTime: core.Timestamp(d.At),
		PrincipalId:  d.Principal,
	}
	for _, c := range d.Categories {
		out.Categories = append(out.Categories, core.EnumValue[pdv1.DataCategory](pdv1.DataCategory_value, c))
	}
	return out
}

// PolicyAckToProto is the API's view of a stored record.
func PolicyAckToProto(a *store.PolicyAck) *pdv1.PolicyAcknowledgement {
	return &pdv1.PolicyAcknowledgement{
		Version: a.Version, Kind: core.EnumValue[pdv1.PolicyAcknowledgementKind](pdv1.PolicyAcknowledgementKind_value, a.Kind),
		AcknowledgeTime: core.Timestamp(a.At), Channel: core.EnumValue[pdv1.Channel](pdv1.Channel_value, a.Channel), Reference: a.Reference, RecordedBy: a.RecordedBy,
	}
}
