package core

import "strings"

// LetterSender is who the reply letters come from: the company as the
// controller (GDPR Art. 13(1)(a) and 15: the data subject must know whom
// to turn to). Every field is optional; what is empty is left out, and a
// letter with none still names the support as the privacy policy does
// ("vår support via e-post, telefon eller vårt kontaktformulär").
type LetterSender struct {
	// Name is the company's name, as the letter is signed.
	Name string
	// Address is the postal address, its lines separated by ", " or
	// new lines.
	Address string
	// Email and Phone reach the support, which handles the requests.
	Email, Phone string
	// Web is the address of the privacy policy or the contact form.
	Web string
}

// SenderView is the sender as the letter shows it.
type SenderView struct {
	Name    string
	Address []string
	Email   string
	Phone   string
	Web     string
}

// View is the sender as a letter shows it: trimmed, the address in lines.
func (s LetterSender) View() SenderView {
	v := SenderView{Name: strings.TrimSpace(s.Name), Email: strings.TrimSpace(s.Email),
		Phone: strings.TrimSpace(s.Phone), Web: strings.TrimSpace(s.Web)}
	for _, l := range strings.FieldsFunc(s.Address, func(r rune) bool { return r == '\n' }) {
		for _, part := range strings.Split(l, ",") {
			if part = strings.TrimSpace(part); part != "" {
				v.Address = append(v.Address, part)
			}
		}
	}
	return v
}
