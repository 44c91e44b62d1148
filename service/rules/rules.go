package rules

import (
	"fmt"
	"strconv"
	"strings"
	_ "time/tzdata"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

// Names of the Person fields, as used in update masks, change records and
// purpose views.
const (
	FieldIdentityNumber = "identity_number"
	FieldGivenName      = "given_name"
	FieldFamilyName     = "family_name"
	FieldEmail          = "email"
	FieldPhone          = "phone"
	FieldPostalAddress  = "postal_address"
)

// PersonFields lists every Person field in the order they are reported.
var PersonFields = []string{FieldIdentityNumber, FieldGivenName, FieldFamilyName, FieldEmail, FieldPhone, FieldPostalAddress}

// PurposeRule is what one purpose is for and which fields it may use.
type PurposeRule struct {
	description string
	Fields      []string
	// Basis, when set, is the purpose's own legal basis for the company's
	// data instead of the contract.
	Basis string
}

// ContractBasis is the company's basis for its own customers' data, as its
// policy states: the contract with the customer.
const ContractBasis = "contract with the customer (GDPR Art. 6(1)(b))"

// PurposeRules is the data minimisation table: a caller that asks for a
// purpose receives these fields and no others.
var PurposeRules = map[pdv1.Purpose]PurposeRule{
	pdv1.Purpose_PURPOSE_INVOICING: {
		description: "invoicing the services",
		Fields:      []string{FieldGivenName, FieldFamilyName, FieldEmail, FieldPostalAddress},
	},
	pdv1.Purpose_PURPOSE_SERVICE_DELIVERY: {
		description: "delivering the services",
		Fields:      []string{FieldGivenName, FieldFamilyName, FieldEmail, FieldPhone},
	},
	pdv1.Purpose_PURPOSE_ACCOUNT_COMMUNICATION: {
		description: "communicating about the account by e-mail or phone",
		Fields:      []string{FieldGivenName, FieldFamilyName, FieldEmail, FieldPhone},
	},
	pdv1.Purpose_PURPOSE_SUPPORT: {
		description: "support, including identifying the requester of a rights request",
		Fields:      []string{FieldIdentityNumber, FieldGivenName, FieldFamilyName, FieldEmail, FieldPhone},
	},
	pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION: {
		description: "registering domains ordered by the customer with the registry",
		Fields:      []string{FieldIdentityNumber, FieldGivenName, FieldFamilyName, FieldEmail, FieldPhone, FieldPostalAddress},
	},
	pdv1.Purpose_PURPOSE_DIRECT_MARKETING: {
		description: "direct marketing by e-mail, only while the subject's consent is on record",
		Fields:      []string{FieldGivenName, FieldFamilyName, FieldEmail},
		Basis:       "consent of the data subject (GDPR Art. 6(1)(a)); stops on withdrawal or objection (Art. 7(3), 21(3))",
	},
}

// processorBasis is the basis for data a customer keeps in the company's
// systems: the company processes it on the customer's instruction, under the
// agreement named by %s.
const processorBasis = "processing on the controller's instruction under processor agreement %s (GDPR Art. 28)"

// RetentionPolicy is the policy's promise on how long data is kept.
const RetentionPolicy = "Kept as long as needed to deliver the services and as long as the law requires: " +
	"accounting records for seven years after the end of the calendar year they concern (Swedish accounting law). " +
	"History is kept to check earlier changes and to help troubleshooting. Erasure removes the data and leaves a tombstone without personal data."

// ErasedCategories are the categories of personal data an erasure removes.
var ErasedCategories = []string{"identification", "contact", "history"}

// ProcessingPurposes describes the purposes for AccessSubject with their
// legal basis: for the company's own data every purpose; for a customer's
// data (agreements, read by AgreementsOf) only those for which an agreement
// in force at now covers the purpose and the data it uses, as the purpose
// view requires.
func ProcessingPurposes(controller string, agreements *store.Agreements, now int64) []*pdv1.ProcessingPurpose {
	var out []*pdv1.ProcessingPurpose
	for p := pdv1.Purpose(1); ; p++ {
		rule, ok := PurposeRules[p]
		if !ok {
			return out
		}
		legalBasis := ContractBasis
		switch {
		case controller != CompanyController:
			if agreements == nil {
				return nil
			}
			a, _ := AgreementCovering(agreements, now, p, CategoriesOf(rule.Fields))
			if a == nil {
				continue
			}
			legalBasis = fmt.Sprintf(processorBasis, AgreementIDOf(controller, a.Seq))
		case rule.Basis != "":
			legalBasis = rule.Basis
		}
		out = append(out, &pdv1.ProcessingPurpose{
			Purpose:     p,
			Description: rule.description,
			LegalBasis:  legalBasis,
			Fields:      rule.Fields,
		})
	}
}

// CompanyController is the controller id of the company's own data.
const CompanyController = "company"

// AgreementIDOf is the id of a customer's agreement number seq.
func AgreementIDOf(customer string, seq int) string {
	return customer + "." + strconv.Itoa(seq)
}

// HoldRule is one legal basis for keeping data past an erasure, and how its
// end is decided.
type HoldRule struct {
	// Law is the basis in words, for the subject's view of retention.
	Law string
	// FromTransaction: the end follows from the time of the transaction;
	// otherwise the caller gives it.
	FromTransaction bool
}

// HoldRules is the table of retention bases the policy names (GDPR Art.
// 17(3)(b) and (e), and the contract).
var HoldRules = map[pdv1.HoldBasis]HoldRule{
	pdv1.HoldBasis_HOLD_BASIS_BOOKKEEPING: {
		Law:             "Swedish accounting law: accounting records are kept until seven years after the end of the calendar year of the transaction",
		FromTransaction: true,
	},
	pdv1.HoldBasis_HOLD_BASIS_LEGAL_CLAIMS: {
		Law: "to establish, exercise or defend legal claims (GDPR Art. 17(3)(e))",
	},
	pdv1.HoldBasis_HOLD_BASIS_AGREEMENT_IN_FORCE: {
		Law: "to enforce an agreement with the subject that is still in force",
	},
}

// DataCategories are the categories a hold may keep, in the order they are
// reported.
var DataCategories = []pdv1.DataCategory{
	pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION,
	pdv1.DataCategory_DATA_CATEGORY_CONTACT,
	pdv1.DataCategory_DATA_CATEGORY_HISTORY,
}

// CategoryLabel is how erased categories are named: "contact".
func CategoryLabel(c pdv1.DataCategory) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "DATA_CATEGORY_"))
}
