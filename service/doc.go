// Package service wires the API's services (PersonalDataService and the others of
// proto/personaldata/v1) over one store: New builds each concern's package on the shared core and
// hands it the services below it that it calls. The handlers themselves live in those packages,
// which validate requests, apply the privacy rules and map between API messages and stored records.
//
// # Packages, from the top down
//
// Each imports only packages below it in this list (layers_test.go holds it to that); none reaches
// into another's unexported state, and an API service calls another only through its exported
// functions and methods.
//
//	requests        rights requests, fulfilment, the reply letter, due dates, the requester outbox
//	accountability  audit trail reads and proofs, policy versions, the register, breaches
//	agreements      processor agreements, a customer's bulk export and erasure
//	retention       legal holds and the sweeper
//	disclosure      consents, disclosures, recipients' notifications
//	backup          backups, and the erasure replay after a restore
//	principals      callers and their tokens
//	keys            master key rotation
//	signin          data subjects' sign-in to their own page
//	subjects        the record and the rights on it (PersonalDataService)
//	core            store, clock, audit notes, caller and tenant rule, reading and settling a
//	                subject, idempotency, lookup keys, erasure ledger, one-time codes, messages
//	jobs            calls that go through many subjects, as recorded, resumable jobs
//	vault           sealing and opening personal data under per-subject data keys
//	validate        request checks that name every bad field
//	fault           failures mapped to gRPC statuses and their details
//	rules           privacy rules as data: fields, purposes, bases, categories, holds
//	audit           the audit trail, its Merkle tree and checkpoints (audit/checkpoint below it)
//	auth            authentication, and what each kind of principal may call
//	personnummer, contact   identity-number and contact rules
//
// requests imports accountability (a policy notice acknowledged by the mailer), disclosure (a
// consent withdrawn on request) and subjects (every right fulfilled through its handler);
// accountability imports agreements, principals and subjects to read what they keep; the retention
// sweeper, a bulk erasure and a restore's replay end erasures through subjects.
//
// This comment is the reference for the rules the service keeps; the API itself, RPC by RPC and
// field by field, is in the protos' comments, and running the server in
// cmd/personaldatad/README.md. The README's tour (../README.md) shows most of what follows, in
// calls that CI runs.
//
// # Over REST
//
// On REST, `update_mask` is a comma-separated string of lowerCamelCase paths (e.g.
// "email,givenName"). `:access` (AccessSubject) answers in pages of at most about 1 MiB: pass
// `next_page_token` as `page_token` for the next. `:streamAccess` (StreamSubjectAccess) is the
// whole document in one download to save and send, a JSON line {"result": {"page": {...}}} per page
// (the lists of all pages, appended). `GET /v1/caller` (PrincipalService.GetCaller) shows the
// calling principal with the grants in force.
//
// # The rules it keeps
//
//   - Errors: bad input is `INVALID_ARGUMENT` (HTTP 400) with a `google.rpc.BadRequest` that names
//     every bad field, and nothing is written; unknown subject `NOT_FOUND`; erased subject `NOT_FOUND`
//     with `ErrorInfo{reason: SUBJECT_ERASED, erase_time, ground}`; restricted `FAILED_PRECONDITION`
//     with `PreconditionFailure{type: PROCESSING_RESTRICTED}`; duplicate identity number or e-mail
//     within a controller `ALREADY_EXISTS` (`ErrorInfo{reason: SUBJECT_EXISTS, field}` and
//     `ResourceInfo`, never the holder); stale `expected_version` `ABORTED` with
//     `ErrorInfo{reason: STALE_VERSION, current_version}` to read again and retry (a lost race with
//     `CONCURRENT_CHANGE` and `RetryInfo`); a refused tenant, purpose or RPC `PERMISSION_DENIED` with
//     `ErrorInfo{reason: TENANT_NOT_PERMITTED | PURPOSE_NOT_PERMITTED | RPC_NOT_PERMITTED | …}`; store
//     or audit trail down `UNAVAILABLE` with `RetryInfo` (`STORE_UNAVAILABLE`, or `AUDIT_UNAVAILABLE`
//     when the trail refused the call's event): every failure of the store to do what was asked (a full
//     disk, an I/O error, a command the server refused, a timeout, the network) is that, on every RPC;
//     only a programming error (a document that cannot be decoded) is `INTERNAL`. Error texts never quote a value: a REST body
//     or query the gateway cannot parse (a number for the identity number, an unknown enum name,
//     `page_size=abc`) is 400 with a `BadRequest` naming the field (`person.identity_number`, or `body`),
//     in the same JSON shape as every other error (`{code, message, details}`), and it is logged and
//     counted under its RPC like any call. A path or query parameter that is not UTF-8 is 400 naming
//     the parameter; a query parameter that names no field of the request is 400; a method a route does not take is 405 with `Allow`; a body over 1 MiB is 413; a
//     body must be one JSON object, with nothing after it. No `Grpc-Metadata-*` header reaches a REST
//     client.
//   - Idempotency: every mutating RPC requires `idempotency_key`. A retry with the same key and
//     request returns the first result without writing; the same key with another request is
//     `INVALID_ARGUMENT`. A key is honoured for 24 hours after its change, however many other
//     changes come between. The keys of changes to a subject are records of their own in
//     `subject_ops`, keyed by (subject, hashed key), with a keyed fingerprint of the request and its
//     result, so a change costs the same however many came before it; the retention sweeper removes
//     them once their day is over. Neither store writes two documents in one step, so the subject
//     keeps its last change's key in its own document, written atomically with the change, and the
//     record follows it; the next keyed change makes sure that record is there before it overwrites
//     the key, so a crash between the two writes loses nothing (`store/ops.go`). This costs a keyed
//     change two round trips more (the read of its key's record, the write of it, batched with those
//     of concurrent changes). 10,000 `AddHistoryEntry` calls to one subject (by hand:
//     `PD_MEASURE_CHANGES=10000 go test -run TestMeasureManyChangesToOneSubject -v
//     ./cmd/personaldatad/server/`, on this shared and loaded machine) took 3.0 minutes, the first
//     hundred 20.7 ms each and the last hundred 14.3 ms; with the keys in the document they took 26.5
//     minutes, 8.4 ms and 176 ms. A rectification still slows down as the subject's own record of
//     changes grows (about 240–420 ms a call past 1,000 rectifications of one subject, 320–570 ms
//     before). A create's key
//     stays in its subject, whose id follows from it; an erasure forgets the keys its document holds,
//     and those in `subject_ops` go with their day. Principals, agreements, rights requests and
//     policy versions, changed far less often, still keep up to 1,000 keys of a day in their own
//     document. A create retried while the first attempt still runs answers what the first answers.
//     A retried rights-request step, `SendVerificationCode` included, answers the request as it is,
//     also once the request was answered.
//   - Purposes (data minimisation, `service/rules`): INVOICING gets name, e-mail, postal address;
//     SERVICE_DELIVERY and ACCOUNT_COMMUNICATION name, e-mail, phone; SUPPORT adds the identity number;
//     DOMAIN_REGISTRATION gets all of identification and contact.
//   - Principals and their limits (`service/auth/rules.go`; every kind × RPC and purpose in
//     auth/grants.md, generated from the rules and checked against
//     them by a test): each kind of principal has a ceiling of RPCs, which is also its default, and a
//     grant can only narrow it. In short: a billing system reads the purpose view, finds subjects and
//     places holds; the domain-registration integration reads the purpose view of the subjects it is
//     given (it does not find subjects), discloses and reads recipients' notifications; support staff
//     the rights RPCs on subjects, consents, holds and the rights requests (neither disclosures nor
//     agreements); customers' controllers the rights RPCs on their own subjects, their agreements,
//     their export and erasure, and their audit trail; operators administer principals, agreements,
//     keys and the retention sweep, read the audit trail and recipients' notifications, erase a
//     customer's data only at the end of its agreements, never export it, and never call the RPCs on
//     subjects. Purposes are bounded too: a billing system INVOICING only, the domain-registration
//     integration DOMAIN_REGISTRATION only, operators none. A grant beyond the ceiling is refused
//     (`INVALID_ARGUMENT`), and one found in the store is ignored (and not shown by `GetCaller`). Every principal created, every change
//     of grants and every token issued is in the `principals` chain and in the chain of each of the
//     principal's tenants, naming who did it. Principal ids may not be identity numbers.
//   - Contact data (`service/contact`): a phone number must be valid in its country's numbering
//     plan (`github.com/nyaruka/phonenumbers`, libphonenumber's metadata), written the Swedish way with
//     a leading 0 or internationally with `+` or `00`; it is stored and returned in E.164
//     (`070-123 45 67` becomes `+46701234567`). An e-mail domain may be internationalised
//     (`räksmörgås.se`); it is checked with IDNA (`golang.org/x/net/idna`, lookup profile) and stored
//     and returned in its ASCII form, lower case (`xn--rksmrgs-5wao1o.se`), so `FindSubject` and the
//     one-subject-per-e-mail rule match whichever form a caller sends. To show it to people, convert
//     it back (`idna.Display.ToUnicode`).
//   - Limits: 1 MiB per request (gRPC and REST); names 100 characters, address lines 100 (at most 3),
//     references 200, history titles 200 and bodies 64 KiB, idempotency keys 128. A response message is
//     at most 4 MiB (what gRPC clients accept by default): what grows without bound (history, changes,
//     consents, disclosures, holds) comes in pages of about 1 MiB, in `AccessSubject`,
//     `ListHistoryEntries` and the customers' export alike.
//
// # Customers' data: processor agreements
//
// Data a customer keeps with the company (controller id = the customer's id) is processed only under
// a processor agreement in force that covers the purpose and the data categories; otherwise
// `FAILED_PRECONDITION` (`PreconditionFailure{type: NO_PROCESSOR_AGREEMENT}`) says what is missing.
// Operators record agreements (`ProcessorAgreementService`: create, get, list, amend with versions
// kept, terminate, check); a `customer-controller` principal acts only for its own customer, and
// exports (`.../subjects:export`, streamed, each subject as the pages of its access document,
// resumable) or erases
// (`.../subjects:erase`, a recorded job that resumes with the same idempotency key) all its subjects:
// the data is the customer's. Operators never export a customer's data (it goes to the customer, not
// to an operator's screen): at the end of an agreement an operator creates the customer's
// `customer-controller` principal, which shows in the customer's audit chain, and hands its token
// over. An operator erases a customer's subjects only when no agreement with the customer is in force
// or pending, or names the one in force in `terminate_agreement_id` to terminate it in the same
// audited call; otherwise `PERMISSION_DENIED` (`ErrorInfo{reason: AGREEMENT_IN_FORCE}`) says which.
// For such data, `AccessSubject` lists only the purposes an agreement in force covers, on the
// processor basis, and the retention that agreement gives (`retention.agreement_id` names it).
//
//	OP="Authorization: Bearer $(cat data/operator.token)"
//	curl -s -H "$OP" -X POST http://127.0.0.1:8080/v1/processorAgreements -d '{"idempotency_key": "readme-pa-1",
//	  "customer_id": "customer-42", "terms": {"sign_time": "2026-01-10T00:00:00Z", "in_force_from": "2026-02-01T00:00:00Z",
//	  "purposes": ["PURPOSE_SERVICE_DELIVERY", "PURPOSE_DOMAIN_REGISTRATION"],
//	  "categories": ["DATA_CATEGORY_IDENTIFICATION", "DATA_CATEGORY_CONTACT"],
//	  "sub_processors": ["iis.se"], "document_reference": "dpa/customer-42/2026"}}'
//	curl -s -H "$OP" -X POST http://127.0.0.1:8080/v1/processorAgreements:check -d '{"controller_id": "customer-42",
//	  "purpose": "PURPOSE_INVOICING", "category": "DATA_CATEGORY_CONTACT"}'
//	CUST=$(go run ./cmd/pdctl principal create -id customer-42-admin -kind customer-controller -tenant customer-42 | tail -1)
//	curl -s -H "Authorization: Bearer $CUST" -X POST http://127.0.0.1:8080/v1/customers/customer-42/subjects:export -d '{}'
//	# The operator may not export (403); it erases at the end, here ending the agreement in the same step.
//	curl -s -H "$OP" -X POST http://127.0.0.1:8080/v1/customers/customer-42/subjects:export -d '{}'
//	curl -s -H "$OP" -X POST http://127.0.0.1:8080/v1/customers/customer-42/subjects:erase -d '{"idempotency_key": "readme-end-42",
//	  "ground": "ERASURE_GROUND_NO_LEGAL_BASIS", "reference": "dpa/customer-42/2026", "terminate_agreement_id": "customer-42.1"}'
//
// # Consent, disclosure to third parties, and legal retention
//
// The domain-registration integration hands registrant data to registries through `Disclose`: only
// the categories asked for, and only when the basis holds (the subject's consent to that recipient
// on record; the contract, i.e. the ordered domain; breach of terms; legal proceedings; an
// authority's request under Swedish law; each with its reference). Refused while restricted, without
// a live consent, or for a customer's data when the recipient is not an approved sub-processor in the
// agreement. Every disclosure is recorded and shown by AccessSubject. When a subject whose data went
// to a recipient is rectified, restricted or erased, a notification per recipient is queued (Art.
// 19); the integration lists or streams and acknowledges them: none is lost while it is away, none
// is sent again once acknowledged. Legal retention holds (bookkeeping: until seven years after the
// end of the calendar year of the transaction; legal claims; an agreement in force) make an erasure
// keep what they cover, storage only, and say so; the retention sweeper in the server purges it when
// the hold ends (`-retention-sweep-interval`, default 1h; a lease lets one replica sweep at a time).
//
//	S2=$(curl -s -H "$AUTH" -X POST http://127.0.0.1:8080/v1/subjects -d '{"idempotency_key": "readme-create-2", "controller_id": "company",
//	  "person": {"identity_number": "19800101-0027", "given_name": "Testa", "family_name": "Testsson",
//	  "email": "testa@example.test", "postal_address": {"lines": ["Provgatan 1"], "postal_code": "12345", "locality": "Provstad"}}}' \
//	  | sed -E 's/.*"subject_id": *"([a-z0-9]+)".*/\1/')
//	DOMREG=$(go run ./cmd/pdctl principal create -id domreg -kind domain-registration -tenant company | tail -1)
//	curl -s -H "Authorization: Bearer $DOMREG" -X POST http://127.0.0.1:8080/v1/subjects/$S2:disclose -d '{
//	  "idempotency_key": "readme-disclose-1", "recipient": "iis.se", "purpose": "PURPOSE_DOMAIN_REGISTRATION",
//	  "categories": ["DATA_CATEGORY_IDENTIFICATION", "DATA_CATEGORY_CONTACT"],
//	  "basis": "DISCLOSURE_BASIS_CONTRACT", "reference": "order-2001"}'
//	curl -s -H "$AUTH" -X POST http://127.0.0.1:8080/v1/subjects/$S2:restrict -d '{"idempotency_key": "readme-restrict-2",
//	  "ground": "RESTRICTION_GROUND_ACCURACY_CONTESTED", "channel": "CHANNEL_PHONE", "reference": "ticket-5001", "performed_by": "agent-7"}'
//	curl -s -H "Authorization: Bearer $DOMREG" http://127.0.0.1:8080/v1/recipients/iis.se/notifications
//	curl -s -H "Authorization: Bearer $DOMREG" -X POST http://127.0.0.1:8080/v1/recipients/iis.se/notifications/1:acknowledge -d '{}'
//	curl -s -H "$AUTH" -X POST http://127.0.0.1:8080/v1/subjects/$S2/holds -d '{"idempotency_key": "readme-hold-1",
//	  "basis": "HOLD_BASIS_BOOKKEEPING", "categories": ["DATA_CATEGORY_CONTACT"],
//	  "transaction_time": "2026-03-10T00:00:00Z", "reference": "invoice-77"}'
//	curl -s -H "$AUTH" -X POST http://127.0.0.1:8080/v1/subjects/$S2:erase -d '{"idempotency_key": "readme-erase-2",
//	  "ground": "ERASURE_GROUND_NO_LEGITIMATE_REASON", "channel": "CHANNEL_EMAIL", "reference": "ticket-5002", "performed_by": "agent-7"}'
//	curl -s -H "$OP" -X POST http://127.0.0.1:8080/v1/retention:sweep -d '{}'
//
// # Rights requests
//
// A request by e-mail, phone, letter or the portal is a record of its own (`RightsRequestService`,
// `/v1/rightsRequests`), carried from arrival to answer by support staff:
//
//   - Open it with its kind (access, portability, rectification, restriction, erasure, objection to
//     direct marketing, withdrawal of consent), channel, time of receipt, the requester's claimed
//     identity (identity number or e-mail, in the body) and their words. The server matches the subject
//     by the claimed identity (none is an answer too: "nothing is held") and sets the due date: one
//     calendar month after receipt, in Swedish time (31 January → 28 or 29 February).
//   - Verify the requester before anything is carried out: `:sendVerificationCode` sends an 8-digit
//     code, valid 30 minutes and for 5 tries, to the e-mail (or phone) on file, never to an address
//     the request gives; `:confirmVerificationCode` takes it back. The store keeps no code: it is a keyed
//     hash of the request, the send count and a random nonce, made again to send or check it. Or
//     `:attestIdentity` records a stronger check done elsewhere (BankID, identity document, call back)
//     with its reference. Verification records method, time and principal. A grant or a fulfilment of an
//     unverified request is `FAILED_PRECONDITION` (`IDENTITY_NOT_VERIFIED`).
//   - Decide case by case (`:decide`): grant, grant in part or refuse, with a reason from the list
//     (manifestly unfounded or excessive, Art. 12(5); identity not established, Art. 12(6); kept under
//     law or for legal claims, Art. 17(3)) and an explanation. A refusal needs no verified identity and
//     tells the requester of the right to complain to IMY and to a court.
//   - Extend once (`:extend`), by one or two months, only before the first month ends, with a
//     reason the requester is told.
//   - Forward (`:forward`) a request about a customer's data to that customer, whose processor the
//     company is: it appears in the customer's queue (`GET /v1/rightsRequests?controller_id=customer-…`).
//   - Fulfil (`:fulfil`) with the action the kind asks for; it runs through the same handlers as the
//     direct RPCs (restriction, erasure and agreement rules, change records with the request's channel
//     and reference, audit), with idempotency keys derived from the request. An access or portability
//     request then has its reply: `GET /v1/rightsRequests/{id}/reply` (the Art. 15 information and all
//     of the data, machine-readable) and `GET /v1/rightsRequests/{id}/letter[?language=en]` (an HTML
//     letter, Swedish by default), both built from the purpose, retention and disclosure records the
//     service enforces.
//   - List a queue by due date, filtered by state, kind or `overdue_only`, or one subject's
//     requests, answered ones too (`subject_id`; `pdctl requests list --subject ID`), to see whether a
//     new one repeats earlier ones (Art. 12(5)); `personaldata_rights_requests_open` and `personaldata_rights_requests_overdue` on `/metrics`.
//     Every step is an audit event on the subject's chain (the tenant's when no subject matched).
//   - A data subject signed in to their own page asks for restriction, objection (Art. 21(1),
//     `RIGHTS_REQUEST_KIND_OBJECTION`, fulfilled as a restriction on ground `OBJECTION_PENDING`) or
//     erasure themselves (`OpenOwnRightsRequest`, `POST /v1/subjects/{id}:openRightsRequest`): the
//     request opens in the company's queue already `VERIFIED`, by the sign-in's method (`CODE` or
//     `OIDC`, by the person), with the same due date, receipt and audit; one open request per kind.
//     Naming a customer that holds data about the same person (`ListOwnControllers`: a live record
//     under the same personnummer or e-mail in that customer's data) forwards it to that customer
//     at once, as `:forward` does. `ListOwnRightsRequests` shows the person their requests (kind,
//     state, due date, no staff names); `GetOwnAccessLetter` is the Art. 15 letter about what is
//     held now. Only the person on their own page may call these four; staff carry the requests on
//     as any other.
//
// The personal values of a request (claimed identity, words, reply address, explanations, the contact
// it answers to) are sealed under a data key of the request's own. Three years after a request was
// answered (fulfilled, refused or forwarded), the retention sweep removes them and destroys that key:
// the record of how the request was handled (kind, dates, decision and reason, steps, by whom) stays,
// to show it was handled (Art. 5(2)), with no personal value. The service sends no e-mail:
// messages to requesters (code, receipt, extension, decision, done or reply ready, forwarded) wait in
// an outbox that the company's mailer, a principal of kind `mailer`, lists or streams and
// acknowledges (`/v1/outbox/messages`); an acknowledged message is deleted. Only the mailer reads the
// messages: they hold the requesters' addresses and live verification codes, and whoever reads a code
// can verify a request as someone else. Operators (and the mailer) see how many wait, by kind, and how
// long the oldest has waited, nothing of any message (`GET /v1/outbox/summary`, `pdctl outbox`).
// Each is queued once, under an id made of the request and its step (`<request_id>.<step>`; a policy
// notice's is `policy.<version>.<subject_id>`), and the request counts the steps whose messages are
// queued. An acknowledged message leaves a mark, its id and the time (`outbox_sent`), so that no later
// settle of the request queues it again (one that read the request before the message was counted, or
// after a crash between queueing and counting it); the marks go when the request's personal values do.
// Acknowledging a message again answers OK (by its mark, or for a policy notice by its subject recorded
// informed); an id of another form is 400 naming `message_id`, and one never queued (or no longer known)
// 404. For development, `pdctl --token-file <a mailer's token> outbox --messages` (or `--ack`) prints
// them.
//
// The README's tour carries an access request from arrival to letter, in calls that CI runs.
//
// # Accountability: policy versions and the register of processing
//
//   - Policy versions (`PolicyService`, `/v1/policyVersions`): operators publish a version (its
//     id, effective date, language, the SHA-256 of its text and where it is published, what changed,
//     and whether the change is material); the one in force is the last to have taken effect. Support
//     staff record that a subject was informed of or accepted a version (when, channel, reference);
//     AccessSubject and the access reply show it. `POST /v1/policyVersions/{version}:notify` (operators,
//     streamed progress) queues one message per subject in the requesters' outbox for a material change:
//     never for an erased or restricted subject or one without an e-mail on file, on the trail under the
//     account-communication purpose. A call with the same idempotency key resumes where it stopped; a
//     subject gets one message (its id is the version and the subject), and when the mailer acknowledges
//     it the subject is recorded informed, so later runs skip it. A waiting notice whose subject is
//     erased is dropped. `GET /v1/policyVersions:uninformedSubjects` lists, by id, the live subjects not
//     yet informed of the version in force (or of one named).
//   - The register of processing activities (Art. 30; `GET /v1/processingRegister`, operators;
//     `go run ./cmd/pdctl register`): generated from what the service runs, not written beside it. For
//     the company as controller: the purposes with their legal basis, fields and categories (the
//     purpose table the purpose views enforce), the categories of data and of subjects, the recipients
//     (third parties from the recorded disclosures, with purposes, bases, categories and first and last
//     time; internal systems from the integrations' principals), the retention rules (the policy, each
//     hold basis with its law, and how the sweeper runs), the security measures in force (encryption,
//     the master key versions and how many data keys are still on older ones, blind indexes, the audit
//     trail, access control). For each customer as controller (Art. 30(2)): each agreement with its
//     state and terms in force, its purposes, categories and sub-processors. Beside the security
//     measures, the register of breaches (below).
//   - Breaches, from the assessment to the notices the law requires (`BreachRecordService`,
//     `/v1/breachRecords`; operators and the DPO, a principal kind of its own that acts for every
//     controller and reads no subject's data):
//   - The record (`POST /v1/breachRecords`): when the company became aware, what happened (no
//     personal data in the texts: one holding an identity number or an e-mail address is refused,
//     naming the field), the category (confidentiality, integrity, availability), the risk
//     (unlikely, a risk, high) with its reason, and the assessment it rests on: the service runs
//     AssessBreachImpact on the scope given and keeps the subjects whose data was read, changed or
//     (under a master key version) exposed, with the categories of each; refused attempts do not
//     count. The record keeps counts by category and by controller, one "record" a subject and
//     category; the list of subjects (id, controller, categories) is kept beside it, in documents of
//     `breach_subjects` of 2,000 subjects each (about 250 KB), each sealed under the record's data
//     key (`br_<id>`) and bound to its chunk, and written durably before the record, which names the
//     list and its number of chunks: a compromised master key touches everyone, and one document of
//     16 MB would hold fewer than 130,000 subjects (some 125 bytes each sealed, with two categories).
//     The record's size does not grow with the number of subjects (under 2 KB when opened; over
//     16,000 subjects of one master key version, 8 chunks, the open took 32 s and the DPO's read of
//     every id 0.1 s: `PD_MEASURE_BREACH=16000 go test -run TestMeasureBreachRecordSubjects -v
//     ./cmd/personaldatad/server/`).
//     The notices, the customers' notices and the reads of ids go through the list a chunk at a
//     time, by exact `_id`. An erasure leaves the lists as they are: they hold an id, a controller
//     and category names, no value, the same id the subject's tombstone and audit chain keep; the
//     register must document the breach and its effects (Art. 33(5)), and once the subject's key is
//     destroyed the id leads to nothing of the person. The notices count such a subject as erased
//     and tell it nothing. A customer's ids are its own controller's to keep. The deadline
//     is awareness + 72 hours (Art. 33(1)); the record shows the time left (negative once past) and
//     is overdue while it is open, its risk calls for a report and none was sent. Every decision
//     (opened, risk assessed, consequences, measures, contact, reported, people and customers told,
//     closed; `POST …:update` with a reason) is kept with who and when.
//   - The report to IMY (`POST /v1/breachRecords/{id}:report`, phases initial, supplementary,
//     final; Art. 33(3) and (4)): the questions of IMY's notification form answered in Swedish from
//     the record (who reports, contact person, when it happened and when the company learned of it,
//     what happened, kind of breach, categories and approximate numbers of people and records,
//     likely consequences, measures taken and planned, whether the people were told), also as a
//     plain text document; each kept as sent with its time. A first report after the deadline is
//     refused with `INVALID_ARGUMENT` naming `delay_reasons` unless it gives them, and is kept as
//     late. It holds counts and categories, never a subject or a value.
//   - The people affected (Art. 34; `POST …:notifySubjects`, streamed, resumable as the other jobs
//     with the same idempotency key): only when the record's risk is high; one notice per affected
//     subject of the company's own data, to the e-mail (else the phone) on file, in plain Swedish
//     (what happened, which of their data, likely consequences, what the company did and will do,
//     what the person can do, whom to contact, the right to complain). Its outbox id names the
//     breach and the subject, and the mailer's acknowledgement marks it sent, so no one is told
//     twice, whatever the key. Subjects erased since are counted and not told (nothing of them is
//     left); restricted ones are told all the same, since the notice is owed to the person and uses
//     only the contact details (Art. 18(2)); those without contact details are counted for a public
//     communication (Art. 34(3)(c)); customers' subjects are left to their controllers. The record
//     keeps the counts, which the next report states.
//   - Customers (Art. 33(2); `POST …:notifyControllers` with each affected customer's contact): one
//     notice per customer with the counts and ids of its own subjects only, once per breach; the
//     customer's controller principal reads its part of the record (`GET /v1/breachRecords/{id}`:
//     what happened, risk, measures and its own subjects) and nothing else of it; another customer
//     gets `NOT_FOUND`. Its own audit chain records the breach and the notice.
//   - The register of breaches (Art. 33(5); `GET /v1/breachRecords`, oldest awareness first, as
//     JSON for export): every record, notified or not, with its reports, notices and decisions; the
//     processing register lists it beside the security measures. `/metrics` has
//     `personaldata_breaches_open` and `personaldata_breaches_overdue`.
//
// # Protection of the data
//
//   - At rest: every personal value (identity number, names, e-mail, phone, address, history texts)
//     is encrypted field by field with AES-256-GCM under a data key of its own subject, bound to the
//     subject and the field. Data keys are wrapped by a master key version and kept in their own
//     collection, apart from the data. Lookups go through blind indexes (HMAC with a key of its own).
//   - Caches, each per process and bounded; none can make a replica serve what another has taken away:
//   - *principals* (an LRU of 10,000; an entry at most a minute old). A cached principal counts only while
//     this replica's reading of the principals' *generation* in the store is younger than 250 ms; that
//     reading is renewed in the background (one exact `_id` read every 125 ms under load, shared by all
//     calls). Every change of a principal (revocation, a grant or tenant taken away, a token issued or
//     revoked) writes a new random generation and then waits 250 ms before it answers, so once the
//     change has been answered no replica authenticates with the principal as it was: a revocation
//     holds from the next call on, on every replica. A token the cached principal does not hold is
//     looked up in the store before it is refused, so a new token works at once.
//   - *unwrapped data keys* (an LRU of 100,000, no expiry). A cached key is only used after the subject's
//     own document, read in the same call, shows it is not erased, and an erasure removes that data for
//     every replica at once, so a key erased elsewhere decrypts nothing here.
//   - *the ends of the audit chains* (an LRU of 200,000). A stale end only costs a collision on insert,
//     after which the append finds the true end.
//     Tests run two service instances, each with its own caches, over one store and show revocation,
//     erasure, auditing and acknowledged writes hold on both (../cmd/personaldatad/server/replicas_test.go,
//     `cmd/personaldatad/replica_kill_test.go`).
//   - Erasure destroys the data key too (crypto-shredding): a copy of the subject's documents taken
//     before, in a backup, can no longer be decrypted. Back the `data_keys` collection up on a shorter
//     retention than the rest, and the key file apart from both.
//   - Key rotation, while serving: `go run ./cmd/pdctl keys add-version -key-file data/keyring.json`,
//     then `go run ./cmd/pdctl keys rotate` (progress; `-resume-after` continues an interrupted run),
//     then `pdctl keys remove-version -key-file … -version 1`. Servers re-read the key file.
//   - Audit trail: every read and change of personal data, including refused attempts, appends an
//     event (principal, tenant, purpose, RPC, subject, field names, outcome, time; never a value) to a
//     hash chain per subject (`subjects/<id>`), per tenant for what concerns no one subject, and for
//     principals. Chains are appended by `_id` reservation, so replicas writing at once stay in order.
//     If the event cannot be written the request fails with `UNAVAILABLE` and returns no data. The
//     outcome is what the caller got: a response too large to send is refused as `RESOURCE_EXHAUSTED`
//     before it leaves, and recorded so; a stream's event is written before its data leaves, and a
//     stream that then breaks off adds an event with the code it ended with. A refusal
//     (`PERMISSION_DENIED` by the RPC, tenant or purpose rule, `FAILED_PRECONDITION` by a restriction
//     or a missing agreement) is recorded with its reason (`refused:<reason>`) in the chain of the
//     subject the request names, else of the caller's tenant, and counted in
//     `personaldata_refusals_total{method,reason}`. From a request only an id of the form the service
//     issues is recorded: rejected input, which may be anything, is not.
//     Operators and controllers read it with `AuditService` (`GET /v1/auditEvents?subject_id=…` or
//     `?tenant_id=…`; operators also `?chain=principals`, `?chain=unauthenticated` or `?chain=restores`, the
//     restores of backups) and check it with
//     `POST /v1/auditChains:verify`, which names the first broken link. Every event is also a leaf of
//     one global Merkle tree over the trail (RFC 6962), whose signed checkpoints are pushed outside
//     the database; `auditChains:verify` proves each event against the tree and the tree against
//     the newest checkpoint, and names the leaf and checkpoint when one does not hold. Operators get
//     the checkpoints (`GET /v1/auditCheckpoints/latest`, `POST /v1/auditCheckpoints`), consistency
//     proofs and the leaves; inclusion proofs go to whoever may read the chain. See
//     ../cmd/personaldatad/README.md, "The audit trail's checkpoints", for why one global log.
//   - A data subject on their own page (cmd/personaldatad/selfservice) is the principal of their
//     events, which carry `channel:SELF_SERVICE` and how they signed in, `sign_in:code` (a code sent
//     to the contact on file) or `sign_in:oidc` (BankID or Freja eID through an OpenID Connect
//     provider); the sign-in itself is an event `self-service sign-in` on their chain, written before
//     the page gives a session (signin.Service.RecordSelfServiceSignIn).
//   - Refused authentications (a call without valid credentials over gRPC or REST, a failed
//     console sign-in) are in the chain `unauthenticated`, of no tenant and no principal: fields
//     `reason:` (`missing`, `malformed`, `unknown_principal`, `bad_token`, `revoked`; for the console
//     also `other_principal`, `sign_in_limited`), `source:` (the client's IP address), `attempts:`,
//     `rpc:` (the RPC, or `console sign-in`) and `principal:` (an existing principal the credentials
//     named; never an unknown id, which is the caller's text, and never the token). So that a flood
//     does not become a flood of writes and syncs, attempts are gathered for a second and written as
//     one event per source and reason, at most 64 sources a second (the rest under `source:other`),
//     at most 8 RPCs and principals an event, all in one group commit; a refused call waits for no
//     write, and a crash loses at most the last second (still counted in
//     `personaldata_auth_failures_total`). Behind a load balancer the source is the balancer's address.
//   - Breach impact (Art. 33 and 34): when a token or a master key is suspected compromised, an
//     operator asks `BreachService.AssessBreachImpact` (`POST /v1/breachImpact:assess`) with a
//     `principal_id`, a `master_key_version` or a time window (`start_time`, `end_time`; with either
//     of the others or alone). The answer comes from the audit trail, streamed: first a summary with
//     every count (events, subjects, subjects read and changed, refusals, by RPC and by outcome, the
//     fields and categories read and changed, chains listed and broken, and the refused
//     authentications by reason and source address: a token-guessing run; for a principal, those whose
//     credentials named it), then one message per chain
//     touched (a subject's, a tenant's, the principals'), in chain order, with the fields read,
//     changed and asked for in vain, the RPCs with their counts, and the check of the chain's events
//     in scope: each proved a leaf of the Merkle tree, the tree proved against the newest signed
//     checkpoint (one prover per report, sharing the nodes read, so the work grows with the events in
//     scope, not with the chains' history), or the first that is not, with its leaf; a chain with
//     events from before the tree began is verified whole. A time window (without a master key
//     version) is read from the tree's leaves, not by searching the events (`audit.Prover.Window`):
//     the window's leaves are one contiguous range, found by binary search over the leaves' times
//     and bounded by the proved times of the events just outside it, recomputed as one range into
//     the root proved against the checkpoint, and each leaf's event read by its id; so an event
//     deleted or rewritten inside the window is reported at the chain its leaf names ("event
//     missing", "changed", with leaf and checkpoint) instead of being silently left out, and a
//     deleted or rewritten leaf, or a tree that does not extend the checkpoint, in an entry `~tree`
//     (`accountability.TreeChain`), the report then searching the events as before. For a master key version the subjects are
//     those whose data keys it wraps, with the categories each holds (seen from which fields are
//     sealed, never opened) and their events in the window. A read is a successful call of an RPC
//     that does not change data (`changingRPCs` in `service/accountability/breach.go` lists those that do); a
//     refusal is a `PERMISSION_DENIED` or `FAILED_PRECONDITION`; another tenant's subject answers
//     `NOT_FOUND` and shows as such. It holds ids, field names and counts, never a value: follow up
//     through the rights RPCs. The trail is read twice (counts first), four chains at a time, so
//     memory does not grow with the answer (a window read from the leaves is read once and held); on this machine a one-day window over 100,000 subjects
//     takes 60 s read from the leaves (`pdbench -breach-window 24h`, 101,500 events, each proved;
//     116 to 148 s when the events were searched, then proved; main before the tree, verifying every
//     touched chain whole: 826 s; all measured beside other work on 2 cores). On MongoDB the index
//     `{principal: 1, _id: 1}` serves a principal's events; a principal without a window, on either
//     store, and a window that cannot be read from the leaves, on the embedded store, scan the trail.
package service
