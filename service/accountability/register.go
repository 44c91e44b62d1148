package accountability

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/agreements"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/store"
)

// Register implements ProcessingRegisterService: the register of
// processing activities (Art. 30), generated from what the service
// enforces rather than written beside it: the purpose table, the recorded
// disclosures and the integrations' principals, the hold rules and the
// sweeper, the keyring and the processor agreements.
type Register struct {
	pdv1.UnimplementedProcessingRegisterServiceServer
	*Service
	// SweepInterval is how often the retention sweeper runs (0: never).
	SweepInterval time.Duration
}

// Register returns the ProcessingRegisterService on the same store.
func (s *Service) Register(sweepInterval time.Duration) *Register {
	return &Register{Service: s, SweepInterval: sweepInterval}
}

// companySubjects are the categories of data subjects of the company's
// own processing.
var companySubjects = []string{"customers (natural persons)", "contact persons of customers"}

// internalRecipientKinds are the principals that receive data inside the
// company, each for its purposes.
var internalRecipientKinds = []string{
	pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM.String(),
	pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION.String(),
}

// GetProcessingRegister returns the register as the service runs now.
func (s *Register) GetProcessingRegister(ctx context.Context, _ *pdv1.GetProcessingRegisterRequest) (*pdv1.GetProcessingRegisterResponse, error) {
	if _, err := s.Caller(ctx); err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{Tenant: rules.CompanyController, Fields: []string{"processing_register"}})
	now := s.Now()
	security, err := s.securityMeasures(ctx)
	if err != nil {
		return nil, s.Internal(ctx, "register", err)
	}
	third, err := s.thirdPartyRecipients(ctx)
	if err != nil {
		return nil, s.Internal(ctx, "register", err)
	}
	internal, err := s.internalRecipients(ctx)
	if err != nil {
		return nil, s.Internal(ctx, "register", err)
	}
	// The register of breaches (Art. 33(5)) beside the measures: the
	// controller's; the processor records keep the measures alone.
	ownSecurity := proto.CloneOf(security)
	if ownSecurity.Breaches, err = s.breachRecordViews(ctx, now); err != nil {
		return nil, s.Internal(ctx, "register", err)
	}
	out := &pdv1.GetProcessingRegisterResponse{
		GenerateTime: timestamppb.New(now),
		Controller: &pdv1.ControllerRegister{
			Controller:     "The company, as controller of its own customers' data (contact: its support by e-mail, phone or the contact form)",
			Purposes:       registerPurposes(),
			DataCategories: rules.DataCategories,
			Recipients:     append(third, internal...),
			Retention:      s.retentionRules(),
			Security:       ownSecurity,
			Transfers:      "No transfer to a third country or international organisation is recorded: disclosures go to the recipients listed.",
		},
	}
	processors, err := s.processorRegisters(ctx, now.UnixNano(), security)
	if err != nil {
		return nil, s.Internal(ctx, "register", err)
	}
	out.Processors = processors
	return out, nil
}

// registerPurposes is the purpose table, each purpose with its basis, the
// fields it may use and their categories.
func registerPurposes() []*pdv1.RegisterPurpose {
	var out []*pdv1.RegisterPurpose
	for _, p := range rules.ProcessingPurposes(rules.CompanyController, nil, 0) {
		out = append(out, &pdv1.RegisterPurpose{
			Purpose: p.GetPurpose(), Description: p.GetDescription(), LegalBasis: p.GetLegalBasis(),
			Fields: p.GetFields(), Categories: rules.CategoriesOf(p.GetFields()), SubjectCategories: companySubjects,
		})
	}
	return out
}

// thirdPartyRecipients aggregates the recorded disclosures of the
// company's data by recipient.
func (s *Register) thirdPartyRecipients(ctx context.Context) ([]*pdv1.RegisterRecipient, error) {
	byName := map[string]*pdv1.RegisterRecipient{}
	var names []string
	err := s.Store.EachDisclosures(ctx, func(d *store.DisclosureSummary) {
		if d.Controller != rules.CompanyController {
			return // in the customer's register, under its agreement
		}
		for _, dis := range d.Disclosures {
			r := byName[dis.Recipient]
			if r == nil {
				r = &pdv1.RegisterRecipient{Name: dis.Recipient, Kind: pdv1.RecipientKind_RECIPIENT_KIND_THIRD_PARTY, FirstTime: core.Timestamp(dis.At), LastTime: core.Timestamp(dis.At)}
				byName[dis.Recipient] = r
				names = append(names, dis.Recipient)
			}
			addOnce(&r.Purposes, core.EnumValue[pdv1.Purpose](pdv1.Purpose_value, dis.Purpose))
			addOnce(&r.Bases, core.EnumValue[pdv1.DisclosureBasis](pdv1.DisclosureBasis_value, dis.Basis))
			for _, c := range dis.Categories {
				addOnce(&r.Categories, core.EnumValue[pdv1.DataCategory](pdv1.DataCategory_value, c))
			}
			if dis.At < r.FirstTime.AsTime().UnixNano() {
				r.FirstTime = core.Timestamp(dis.At)
			}
			if dis.At > r.LastTime.AsTime().UnixNano() {
				r.LastTime = core.Timestamp(dis.At)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	out := make([]*pdv1.RegisterRecipient, 0, len(names))
	for _, n := range names {
		r := byName[n]
		slices.Sort(r.Purposes)
		slices.Sort(r.Bases)
		slices.Sort(r.Categories)
		out = append(out, r)
	}
	return out, nil
}

func addOnce[E comparable](list *[]E, e E) {
	if !slices.Contains(*list, e) {
		*list = append(*list, e)
	}
}

// internalRecipients are the live principals of the integrations that
// receive the company's data, with the purposes they hold.
func (s *Register) internalRecipients(ctx context.Context) ([]*pdv1.RegisterRecipient, error) {
	var out []*pdv1.RegisterRecipient
	for after := ""; ; {
		page, err := s.Store.ListPrincipals(ctx, after, 100)
		if err != nil {
			return nil, err
		}
		for _, p := range page {
			after = p.ID
			if p.Revoked || !slices.Contains(internalRecipientKinds, p.Kind) || !slices.ContainsFunc(p.TenantIDs, func(t string) bool { return t == rules.CompanyController || t == "*" }) {
				continue
			}
			r := &pdv1.RegisterRecipient{Name: p.ID + " (" + p.Kind + ")", Kind: pdv1.RecipientKind_RECIPIENT_KIND_INTERNAL_SYSTEM}
			for _, name := range p.Purposes {
				purpose := core.EnumValue[pdv1.Purpose](pdv1.Purpose_value, name)
				rule, ok := rules.PurposeRules[purpose]
				if !ok {
					continue
				}
				addOnce(&r.Purposes, purpose)
				for _, c := range rules.CategoriesOf(rule.Fields) {
					addOnce(&r.Categories, c)
				}
			}
			out = append(out, r)
		}
		if len(page) < 100 {
			return out, nil
		}
	}
}

// retentionRules are the rules that decide how long data is kept, and how
// each is carried out.
func (s *Register) retentionRules() []*pdv1.RetentionRule {
	sweeper := "the retention sweeper is off on this deployment: data past its hold is purged when a sweep is run (RunRetentionSweep)"
	if s.SweepInterval > 0 {
		sweeper = fmt.Sprintf("the retention sweeper purges data whose hold ended, every %s (one replica at a time, under a lease)", s.SweepInterval)
	}
	out := []*pdv1.RetentionRule{{
		Rule:        rules.RetentionPolicy,
		Basis:       rules.ContractBasis,
		Enforcement: "erasure on the subject's request (EraseSubject), destroying the subject's data key; " + sweeper,
	}}
	for _, basis := range []pdv1.HoldBasis{pdv1.HoldBasis_HOLD_BASIS_BOOKKEEPING, pdv1.HoldBasis_HOLD_BASIS_LEGAL_CLAIMS, pdv1.HoldBasis_HOLD_BASIS_AGREEMENT_IN_FORCE} {
		out = append(out, &pdv1.RetentionRule{
			Rule:        "a " + basis.String() + " hold keeps the categories it names past an erasure, for storage only, until it ends",
			Basis:       rules.HoldRules[basis].Law,
			Enforcement: sweeper,
		})
	}
	return out
}

// securityMeasures are the measures in force, read from the keyring and
// the store.
func (s *Register) securityMeasures(ctx context.Context) (*pdv1.SecurityMeasures, error) {
	ring := s.Vault.Keys.Ring()
	total, err := s.Store.CountDataKeys(ctx)
	if err != nil {
		return nil, err
	}
	older, err := s.Store.CountDataKeysNotAt(ctx, ring.Current())
	if err != nil {
		return nil, err
	}
	return &pdv1.SecurityMeasures{
		EncryptionAtRest: "every personal value encrypted field by field with AES-256-GCM under a data key of its own subject (or rights request), " +
			"bound to the subject and field; data keys wrapped by a master key version and kept apart from the data; erasure destroys the data key",
		CurrentMasterKeyVersion: ring.Current(),
		MasterKeyVersions:       ring.Versions(),
		DataKeys:                total,
		DataKeysOnOlderVersions: older,
		Lookups:                 "lookups by identity number or e-mail through keyed HMAC blind indexes; no plaintext index",
		Audit:                   "every read and change of personal data, refused attempts included, appended to a hash chain per subject; a request whose event cannot be written fails",
		AccessControl: "principals by bearer token or client certificate, each with its kind, tenants, purposes and RPCs; " +
			"purpose views hold only the fields a purpose needs; restriction and consent enforced on the server",
	}, nil
}

// processorRegisters are the records of Art. 30(2): one per agreement of
// each customer, with its terms in force (or the last ones).
func (s *Register) processorRegisters(ctx context.Context, now int64, security *pdv1.SecurityMeasures) ([]*pdv1.ProcessorRegister, error) {
	var out []*pdv1.ProcessorRegister
	for after := ""; ; {
		page, err := s.Store.AgreementsAfter(ctx, after, 100)
		if err != nil {
			return nil, err
		}
		for _, doc := range page {
			after = doc.ID
			for i := range doc.Agreements {
				a := &doc.Agreements[i]
				out = append(out, &pdv1.ProcessorRegister{
					CustomerId: doc.ID, AgreementId: rules.AgreementIDOf(doc.ID, a.Seq), State: rules.AgreementState(a, now),
					Terms: agreements.TermsToProto(a.Current()), Security: security,
				})
			}
		}
		if len(page) < 100 {
			return out, nil
		}
	}
}
