// Package backup is BackupService, online backups sealed for the
// operators, and what a restore must do after: replay the erasure ledger
// so that no one erased since the backup comes back (through package
// subjects' erasure), and record the restore in the audit trail.
package backup

import (
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/subjects"
)

// Service is what backups and restores stand on.
type Service struct {
	*core.Service
	subjects *subjects.Service
}

// New returns the backup service on c, replaying erasures through subj.
func New(c *core.Service, subj *subjects.Service) *Service {
	return &Service{Service: c, subjects: subj}
}
