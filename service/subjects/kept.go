package subjects

import (
	"fmt"
	"slices"
	"strings"
	"time"
	_ "time/tzdata"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/store"
)

// activeHold reports whether h keeps data at now: not released and not past
// its end. A hold past its end keeps nothing, whether or not the sweeper has
// recorded its end yet.
func activeHold(h *store.Hold, now int64) bool {
	return h.EndedAt == 0 && h.Until > now
}

// Covered reports whether an active hold of sub covers category c at now.
func Covered(sub *store.Subject, c pdv1.DataCategory, now int64) bool {
	for i := range sub.Holds {
		if activeHold(&sub.Holds[i], now) && slices.Contains(sub.Holds[i].Categories, c.String()) {
			return true
		}
	}
	return false
}

// hasData reports whether sub holds data of category c.
func hasData(sub *store.Subject, c pdv1.DataCategory) bool {
	if c == pdv1.DataCategory_DATA_CATEGORY_HISTORY {
		return sub.HistoryCount > 0
	}
	if sub.Person == nil {
		return false
	}
	for _, f := range rules.PersonFields {
		if rules.FieldCategories[f] == c && !FieldEmpty(sub.Person, f) {
			return true
		}
	}
	return false
}

// keepHeld is the rule of an erasure under legal holds: of sub's data it
// keeps the categories an active hold covers at now, storage only, and
// removes everything else from sub.Person. With no active hold it keeps
// nothing: a full erasure. Lookup keys go in every case (FinishErasure): kept
// data is for storage only, never to be found for processing.
func keepHeld(sub *store.Subject, now time.Time) {
	sub.Kept = nil
	for _, c := range rules.DataCategories {
		if Covered(sub, c, now.UnixNano()) && hasData(sub, c) {
			sub.Kept = append(sub.Kept, c.String())
		}
	}
	sub.Person = KeepFields(sub.Person, sub.Kept)
}

// KeepFields returns p with only the fields of the kept categories; nil when
// none is left.
func KeepFields(p *store.Person, kept []string) *store.Person {
	if p == nil {
		return nil
	}
	var drop []string
	for _, f := range rules.PersonFields {
		if !slices.Contains(kept, rules.FieldCategories[f].String()) {
			drop = append(drop, f)
		}
	}
	q := applyFields(*p, store.Person{}, drop)
	if len(presentFields(&q)) == 0 {
		return nil
	}
	return &q
}

// keepsHistory reports whether an erasure kept sub's history entries.
func keepsHistory(sub *store.Subject) bool {
	return slices.Contains(sub.Kept, pdv1.DataCategory_DATA_CATEGORY_HISTORY.String())
}

// erasureResponse answers an erasure: the tombstone (what holds kept is shown
// to the subject by AccessSubject, not here), the categories erased, and
// what was kept, why and until when, one entry per hold keeping something.
func erasureResponse(sub *store.Subject, now time.Time) *pdv1.EraseSubjectResponse {
	tomb := subjectToProto(sub)
	tomb.Person = nil
	out := &pdv1.EraseSubjectResponse{Subject: tomb, Kept: keptData(sub, now)}
	for _, c := range rules.DataCategories {
		if !slices.Contains(sub.Kept, c.String()) {
			out.ErasedCategories = append(out.ErasedCategories, c)
		}
	}
	return out
}

// keptData is what the active holds of an erased subject keep.
func keptData(sub *store.Subject, now time.Time) []*pdv1.KeptData {
	var out []*pdv1.KeptData
	for i := range sub.Holds {
		h := &sub.Holds[i]
		if !activeHold(h, now.UnixNano()) {
			continue
		}
		var cats []pdv1.DataCategory
		for _, c := range rules.DataCategories {
			if slices.Contains(h.Categories, c.String()) && slices.Contains(sub.Kept, c.String()) {
				cats = append(cats, c)
			}
		}
		if len(cats) > 0 {
			out = append(out, &pdv1.KeptData{
				Categories: cats,
				Basis:      core.EnumValue[pdv1.HoldBasis](pdv1.HoldBasis_value, h.Basis),
				Until:      core.Timestamp(h.Until),
				HoldId:     h.ID,
			})
		}
	}
	return out
}

// retentionOf says how long sub's data is kept: for the company's own data
// its policy; for a customer's data what the processor agreement in force
// among agreements gives (none for a tombstone). Then what legal holds keep
// past an erasure.
func retentionOf(sub *store.Subject, agreements *store.Agreements, now time.Time) *pdv1.Retention {
	out := &pdv1.Retention{}
	var b strings.Builder
	if sub.Controller == rules.CompanyController {
		b.WriteString(rules.RetentionPolicy)
		b.WriteString(" Data under a legal retention hold (bookkeeping, legal claims, an agreement still in force) is kept past an erasure, for storage only, until the hold ends, and is then removed.")
	} else {
		var a *store.Agreement
		if agreements != nil && sub.Erasure == nil {
			a, _ = rules.AgreementCovering(agreements, now.UnixNano(), pdv1.Purpose_PURPOSE_UNSPECIFIED, HeldCategories(sub))
		}
		if a != nil {
			out.AgreementId = rules.AgreementIDOf(sub.Controller, a.Seq)
		}
		b.WriteString(processorRetention(sub, a))
	}
	for i := range sub.Holds {
		h := &sub.Holds[i]
		if !activeHold(h, now.UnixNano()) {
			continue
		}
		var labels []string
		for _, name := range h.Categories {
			labels = append(labels, rules.CategoryLabel(pdv1.DataCategory(pdv1.DataCategory_value[name])))
		}
		verb := "would be kept past an erasure"
		if sub.Erasure != nil {
			verb = "is kept, storage only,"
		}
		fmt.Fprintf(&b, " Hold %s: %s %s until %s (%s).", h.ID, strings.Join(labels, ", "), verb,
			time.Unix(0, h.Until).In(core.Stockholm).Format(time.RFC3339), rules.HoldRules[core.EnumValue[pdv1.HoldBasis](pdv1.HoldBasis_value, h.Basis)].Law)
	}
	out.Policy = b.String()
	return out
}

// processorRetention is how long a customer's data is kept: as long as the
// customer, its controller, instructs within the agreement in force (a; nil
// when none is, or the subject is erased), and at the agreement's end
// returned or erased as the customer decides (GDPR Art. 28(3)(g)).
func processorRetention(sub *store.Subject, a *store.Agreement) string {
	switch {
	case sub.Erasure != nil:
		return fmt.Sprintf("Kept for the controller %s under a processor agreement, as long as the controller instructs. "+
			"Erased on the controller's instruction: a tombstone without personal data remains.", sub.Controller)
	case a == nil:
		return fmt.Sprintf("Kept for the controller %s. No processor agreement covering it is in force: "+
			"it is only stored until the controller has it returned (export) or erased (GDPR Art. 28(3)(g)).", sub.Controller)
	}
	cur := a.Current()
	end := cur.InForceTo
	if a.TerminatedAt != 0 && (end == 0 || a.TerminatedAt < end) {
		end = a.TerminatedAt
	}
	until := "until terminated"
	if end != 0 {
		until = "until " + core.RFC3339(end)
	}
	return fmt.Sprintf("Kept for the controller %s, as long as it instructs, under processor agreement %s (%s), in force from %s %s. "+
		"When the agreement ends, the controller decides whether the data is returned to it (export) or erased (GDPR Art. 28(3)(g)). "+
		"Erasure removes the data and leaves a tombstone without personal data.",
		sub.Controller, rules.AgreementIDOf(sub.Controller, a.Seq), cur.DocumentRef, core.RFC3339(cur.InForceFrom), until)
}

// HoldToProto is the API's view of a stored hold.
func HoldToProto(h *store.Hold) *pdv1.RetentionHold {
	if h == nil {
		return nil
	}
	out := &pdv1.RetentionHold{
		HoldId:          h.ID,
		Basis:           core.EnumValue[pdv1.HoldBasis](pdv1.HoldBasis_value, h.Basis),
		TransactionTime: core.Timestamp(h.TransactionAt),
		Until:           core.Timestamp(h.Until),
		Reference:       h.Reference,
		PlaceTime:       core.Timestamp(h.PlacedAt),
		PlacedBy:        h.PlacedBy,
		EndTime:         core.Timestamp(h.EndedAt),
	}
	for _, name := range h.Categories {
		out.Categories = append(out.Categories, pdv1.DataCategory(pdv1.DataCategory_value[name]))
	}
	return out
}
