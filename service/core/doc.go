// Package core is what every API service of personaldata stands on, and
// the rules they must all apply the same way: who is calling and the tenant
// rule; reading a subject for a request (absent, invisible and erased
// answered alike everywhere); what follows from any change of a subject
// (recipients' notifications queued, consents withdrawn by an objection);
// the consent and agreement a purpose requires; idempotency keys and
// derived ids; the lookup keys that find a subject by identity number or
// e-mail address; the erasure ledger; one-time codes; the letter's sender;
// and the Swedish time and wording the outbox's messages share.
//
// Service holds the shared dependencies (store, clock, logger, audit trail,
// principals' cache, vault, jobs, ledger), set by New and EnableCheckpoints
// and only read after. It decides no right and serves no RPC: the packages
// of the API services (subjects, disclosure, retention, agreements,
// requests, accountability, principals, keys, backup, signin) embed a
// *Service, and call each other only through their exported functions and
// methods. core imports none of them.
package core
