package store

// Consent is a consent the subject gave, kept in the subject's own document
// (Subject.Consents), withdrawn or not. It holds no personal values: the
// purpose, the recipient it allows (a company such as "iis.se"), how it was
// given and a reference to the wording. Enumerated values are stored by name.
type Consent struct {
	// ID is the consent's number within the subject: "1", "2", ...
	ID      string `bson:"id"`
	Purpose string `bson:"purpose"`
	// Recipient is, for a consent to disclosure, the third party it allows.
	Recipient        string `bson:"recipient,omitempty"`
	GivenAt          int64  `bson:"given_at"` // Unix nanoseconds
	Channel          string `bson:"channel"`
	WordingReference string `bson:"wording_reference"`
	RecordedAt       int64  `bson:"recorded_at"`
	RecordedBy       string `bson:"recorded_by"`
	// Set once withdrawn.
	WithdrawnAt       int64  `bson:"withdrawn_at,omitempty"`
	WithdrawChannel   string `bson:"withdraw_channel,omitempty"`
	WithdrawReference string `bson:"withdraw_reference,omitempty"`
	WithdrawnBy       string `bson:"withdrawn_by,omitempty"`
}

// Live reports whether the consent is in effect: given and not withdrawn.
func (c *Consent) Live() bool { return c.WithdrawnAt == 0 }

// Disclosure records one hand-over of a subject's data to a third party, in
// the subject's own document (Subject.Disclosures). It names categories, the
// basis and its reference, never values.
type Disclosure struct {
	// ID is the disclosure's number within the subject: "1", "2", ...
	ID         string   `bson:"id"`
	Recipient  string   `bson:"recipient"`
	Purpose    string   `bson:"purpose"`
	Categories []string `bson:"categories"`
	Basis      string   `bson:"basis"`
	// Reference is the order, case or request the basis rests on.
	Reference string `bson:"reference,omitempty"`
	// ConsentID is, for the basis CONSENT, the consent it rested on.
	ConsentID string `bson:"consent_id,omitempty"`
	At        int64  `bson:"at"` // Unix nanoseconds
	Principal string `bson:"principal"`
	// Version is the subject's version once the disclosure was recorded: a
	// later change (a higher version) is news to the recipient (Art. 19).
	Version int64 `bson:"version"`
}
