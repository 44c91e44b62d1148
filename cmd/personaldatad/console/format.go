package console

import (
	"errors"
	"html/template"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // Swedish time on a host without a zone database

	"golang.org/x/net/idna"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// stockholm is the time zone the staff read times in.
var stockholm = func() *time.Location {
	if loc, err := time.LoadLocation("Europe/Stockholm"); err == nil {
		return loc
	}
	return time.UTC
}()

// formatTime is a time as the staff read it: "2026-11-27 11:00".
func formatTime(t time.Time) string {
	return t.In(stockholm).Format("2006-01-02 15:04")
}

func formatTimestamp(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return formatTime(ts.AsTime())
}

func formatDate(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().In(stockholm).Format("2006-01-02")
}

// option is a choice in a form's select.
type option struct{ Value, Label string }

// The Swedish names of the API's values, in the order the forms offer them.
var (
	channels = []option{
		{"CHANNEL_EMAIL", "E-post"},
		{"CHANNEL_PHONE", "Telefon"},
		{"CHANNEL_LETTER", "Brev"},
		{"CHANNEL_PORTAL", "Kundportalen"},
	}
	restrictionGrounds = []option{
		{"RESTRICTION_GROUND_ACCURACY_CONTESTED", "Den registrerade bestrider att uppgifterna är korrekta"},
		{"RESTRICTION_GROUND_UNLAWFUL_PROCESSING", "Behandlingen är olaglig och den registrerade vill ha begränsning i stället för radering"},
		{"RESTRICTION_GROUND_LEGAL_CLAIMS", "Den registrerade behöver uppgifterna för rättsliga anspråk"},
		{"RESTRICTION_GROUND_OBJECTION_PENDING", "Den registrerade har invänt och prövningen pågår"},
	}
	liftResolutions = []option{
		{"LIFT_RESOLUTION_CORRECTED", "Uppgifterna har rättats"},
		{"LIFT_RESOLUTION_CONFIRMED_CORRECT", "Uppgifterna är kontrollerade och korrekta"},
	}
	erasureGrounds = []option{
		{"ERASURE_GROUND_NO_LEGITIMATE_REASON", "Det finns inget berättigat skäl att fortsätta behandla uppgifterna"},
		{"ERASURE_GROUND_NO_LEGAL_BASIS", "Det finns ingen rättslig grund för behandlingen"},
		{"ERASURE_GROUND_UNLAWFUL_PROCESSING", "Behandlingen är olaglig"},
		{"ERASURE_GROUND_DIRECT_MARKETING_OBJECTION", "Den registrerade invänder mot direktmarknadsföring"},
		{"ERASURE_GROUND_CONSENT_WITHDRAWN", "Den registrerade har återkallat sitt samtycke"},
	}
	historyKinds = []option{
		{"HISTORY_KIND_EMAIL_CONVERSATION", "E-postkonversation"},
		{"HISTORY_KIND_ERROR_REPORT", "Felrapport"},
	}
)

// label is the Swedish name of value among options, or value itself.
func label(options []option, value string) string {
	for _, o := range options {
		if o.Value == value {
			return o.Label
		}
	}
	return value
}

func erasureGroundLabel(g string) string { return label(erasureGrounds, g) }

var (
	stateLabels = map[pdv1.SubjectState]string{
		pdv1.SubjectState_SUBJECT_STATE_ACTIVE:     "Aktiv",
		pdv1.SubjectState_SUBJECT_STATE_RESTRICTED: "Begränsad: endast lagring",
		pdv1.SubjectState_SUBJECT_STATE_ERASED:     "Raderad",
	}
	deliveryLabels = map[pdv1.ServiceDelivery]string{
		pdv1.ServiceDelivery_SERVICE_DELIVERY_ACTIVE:    "Levereras",
		pdv1.ServiceDelivery_SERVICE_DELIVERY_SUSPENDED: "Vilar medan behandlingen är begränsad",
		pdv1.ServiceDelivery_SERVICE_DELIVERY_ENDED:     "Avslutad",
	}
	changeLabels = map[pdv1.ChangeKind]string{
		pdv1.ChangeKind_CHANGE_KIND_CREATED:            "Registrerad",
		pdv1.ChangeKind_CHANGE_KIND_RECTIFIED:          "Rättad",
		pdv1.ChangeKind_CHANGE_KIND_RESTRICTED:         "Behandlingen begränsad",
		pdv1.ChangeKind_CHANGE_KIND_RESTRICTION_LIFTED: "Begränsningen hävd",
		pdv1.ChangeKind_CHANGE_KIND_ERASED:             "Raderad",
	}
	purposeLabels = map[pdv1.Purpose]string{
		pdv1.Purpose_PURPOSE_INVOICING:             "Fakturering",
		pdv1.Purpose_PURPOSE_SERVICE_DELIVERY:      "Leverans av tjänsterna",
		pdv1.Purpose_PURPOSE_ACCOUNT_COMMUNICATION: "Kommunikation om kontot",
		pdv1.Purpose_PURPOSE_SUPPORT:               "Support och hantering av begäranden",
		pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION:   "Domänregistrering",
		pdv1.Purpose_PURPOSE_DIRECT_MARKETING:      "Direktmarknadsföring",
	}
	categoryLabels = map[pdv1.DataCategory]string{
		pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION: "identifiering",
		pdv1.DataCategory_DATA_CATEGORY_CONTACT:        "kontaktuppgifter",
		pdv1.DataCategory_DATA_CATEGORY_HISTORY:        "historik",
	}
	disclosureBasisLabels = map[pdv1.DisclosureBasis]string{
		pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONSENT:           "Samtycke",
		pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT:          "Avtalet (beställd tjänst)",
		pdv1.DisclosureBasis_DISCLOSURE_BASIS_BREACH_OF_TERMS:   "Brott mot avtalsvillkoren",
		pdv1.DisclosureBasis_DISCLOSURE_BASIS_LEGAL_PROCEEDINGS: "Rättsligt förfarande",
		pdv1.DisclosureBasis_DISCLOSURE_BASIS_AUTHORITY_REQUEST: "Myndighets begäran enligt lag",
	}
	holdBasisLabels = map[pdv1.HoldBasis]string{
		pdv1.HoldBasis_HOLD_BASIS_BOOKKEEPING:        "Bokföring (bokföringslagen)",
		pdv1.HoldBasis_HOLD_BASIS_LEGAL_CLAIMS:       "Rättsliga anspråk",
		pdv1.HoldBasis_HOLD_BASIS_AGREEMENT_IN_FORCE: "Avtal som gäller",
	}
	identityKindLabels = map[pdv1.IdentityNumberKind]string{
		pdv1.IdentityNumberKind_IDENTITY_NUMBER_KIND_PERSONNUMMER:      "personnummer",
		pdv1.IdentityNumberKind_IDENTITY_NUMBER_KIND_SAMORDNINGSNUMMER: "samordningsnummer",
	}
	// fieldLabels name the Person fields as change records and purposes do.
	fieldLabels = map[string]string{
		"identity_number":             "Personnummer",
		"given_name":                  "Förnamn",
		"family_name":                 "Efternamn",
		"email":                       "E-post",
		"phone":                       "Telefon",
		"postal_address":              "Postadress",
		"postal_address.lines":        "Adressrader",
		"postal_address.postal_code":  "Postnummer",
		"postal_address.locality":     "Ort",
		"postal_address.country_code": "Land",
		"channel":                     "Kanal",
		"reference":                   "Referens",
		"performed_by":                "Utförd av",
		"ground":                      "Grund",
		"resolution":                  "Hur begränsningen upphör",
		"controller_id":               "Personuppgiftsansvarig",
		"entry.kind":                  "Slag",
		"entry.title":                 "Rubrik",
		"entry.body":                  "Text",
		"entry.occur_time":            "Datum",
		"entry.reference":             "Referens",
	}
)

// fieldLabel is the Swedish name of an API field path.
func fieldLabel(path string) string {
	path = strings.TrimPrefix(path, "person.")
	if l, ok := fieldLabels[path]; ok {
		return l
	}
	if m := lineField.FindStringSubmatch(path); m != nil {
		n, _ := strconv.Atoi(m[1])
		return "Adressrad " + strconv.Itoa(n+1)
	}
	return path
}

func fieldLabelList(fields []string) string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = strings.ToLower(fieldLabel(f))
	}
	return strings.Join(out, ", ")
}

func categoryList(cs []pdv1.DataCategory) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = categoryLabels[c]
	}
	return strings.Join(out, ", ")
}

func channelLabel(c pdv1.Channel) string {
	if c == pdv1.Channel_CHANNEL_UNSPECIFIED {
		return ""
	}
	if c == pdv1.Channel_CHANNEL_SELF_SERVICE {
		// Not a channel staff choose: the person's own page.
		return "Den registrerades egen sida"
	}
	return label(channels, c.String())
}

// legalBases puts the API's legal bases in Swedish, where it knows them.
var legalBases = []struct {
	pattern *regexp.Regexp
	swedish string
}{
	{regexp.MustCompile(`^contract with the customer`), "Avtalet med kunden (GDPR art. 6.1 b)"},
	{regexp.MustCompile(`^consent of the data subject`), "Den registrerades samtycke (GDPR art. 6.1 a); upphör när samtycket återkallas eller vid invändning"},
	{regexp.MustCompile(`^processing on the controller's instruction under processor agreement (\S+)`), "På den personuppgiftsansvariges instruktion enligt biträdesavtal $1 (GDPR art. 28)"},
}

func legalBasis(s string) string {
	for _, b := range legalBases {
		if m := b.pattern.FindStringSubmatchIndex(s); m != nil {
			return string(b.pattern.ExpandString(nil, b.swedish, s, m))
		}
	}
	return s
}

// displayEmail shows an internationalised domain as people write it.
func displayEmail(e string) string {
	local, domain, ok := strings.Cut(e, "@")
	if !ok {
		return e
	}
	if u, err := idna.Display.ToUnicode(domain); err == nil {
		return local + "@" + u
	}
	return e
}

// templateFuncs are the helpers the templates use.
var templateFuncs = template.FuncMap{
	"lower": strings.ToLower,
	// dict passes named values to a template: dict "Name" "email" "Label" "E-post".
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, errors.New("dict: odd number of arguments")
		}
		m := make(map[string]any, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, errors.New("dict: a key is not a string")
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
}
