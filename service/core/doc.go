// Package core is what every API service of personaldata stands on, and
// the rules they must all apply the same way: the store, the clock and the
// logger; the vault; the audit trail (what a request touched, noted for the
// interceptor that writes it); who is calling and the tenant rule; reading
// a subject for a request (erased, invisible and pending work answered
// alike everywhere); what follows from any change of a subject (recipients'
// notifications, consents withdrawn by an objection); idempotency keys;
// the lookup keys that keep identity numbers and e-mail addresses unique;
// the erasure ledger; one-time codes; and the outbox's messages. Jobs run
// through package jobs, reached as Service.Jobs.
//
// It decides no right and serves no RPC: the packages of the API services
// (subjects, disclosure, retention, agreements, requests, accountability,
// principals, keys, backup, signin) embed a *Service and call what they
// need, and they call each other only through exported functions. core
// imports none of them.
package core
