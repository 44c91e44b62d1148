package service

import (
	"github.com/example/personaldata/service/accountability"
	"github.com/example/personaldata/service/agreements"
	"github.com/example/personaldata/service/backup"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/disclosure"
	"github.com/example/personaldata/service/keys"
	"github.com/example/personaldata/service/principals"
	"github.com/example/personaldata/service/requests"
	"github.com/example/personaldata/service/retention"
	"github.com/example/personaldata/service/signin"
	"github.com/example/personaldata/service/subjects"
	"github.com/example/personaldata/service/vault"
	"github.com/example/personaldata/store"
)

// Services are personaldata's API services over one store, each built on
// the shared core and given the services below it that it calls.
type Services struct {
	// Core is what they share: the store, the clock, the vault, the audit
	// trail and the principals as authentication finds them.
	Core *core.Service
	// Subjects is PersonalDataService.
	Subjects *subjects.Service
	// Disclosure is ConsentService and DisclosureService.
	Disclosure *disclosure.Service
	// Agreements is ProcessorAgreementService.
	Agreements *agreements.Service
	// Retention is RetentionService and its sweeper (retention.NewRetention).
	Retention *retention.Service
	// Accountability is AuditService, PolicyService,
	// ProcessingRegisterService, BreachService and BreachRecordService.
	Accountability *accountability.Service
	// Requests is RightsRequestService and RequesterOutboxService.
	Requests *requests.Service
	// Principals is PrincipalService and the first operator.
	Principals *principals.Service
	// Keys is KeyService.
	Keys *keys.Service
	// Backup is BackupService and the erasure replay after a restore.
	Backup *backup.Service
	// SignIn signs data subjects in to their own page.
	SignIn *signin.Service
}

// New builds the services on st, sealing personal data with k, in the
// order of their dependencies (see the package comment).
func New(st *store.Store, k *vault.Keys, opts core.Options) *Services {
	c := core.New(st, k, opts)
	subj := subjects.New(c)
	disc := disclosure.New(c)
	acc := accountability.New(c, opts.BreachSubjectsPerChunk)
	return &Services{
		Core:           c,
		Subjects:       subj,
		Disclosure:     disc,
		Agreements:     agreements.New(c, subj),
		Retention:      retention.New(c, subj),
		Accountability: acc,
		Requests:       requests.New(c, subj, disc.Consents(), acc),
		Principals:     principals.New(c),
		Keys:           keys.New(c),
		Backup:         backup.New(c, subj),
		SignIn:         signin.New(c),
	}
}
