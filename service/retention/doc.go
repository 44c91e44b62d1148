// Package retention keeps data as long as the law requires and no longer:
// legal holds placed on and released from a subject's categories of data
// (RetentionService), and the sweeper that ends holds and idempotency
// records past their time and finishes the erasures they delayed.
//
// The bases of holds and the laws behind them are data in package rules;
// what an erasure keeps for a hold is decided by package subjects, which
// this package calls to finish an erasure once nothing holds it.
package retention

import (
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/subjects"
)

// Service is what RetentionService and the sweeper stand on.
type Service struct {
	*core.Service
	subjects *subjects.Service
}

// New returns the retention service on c, finishing erasures through subj.
func New(c *core.Service, subj *subjects.Service) *Service {
	return &Service{Service: c, subjects: subj}
}
