package requests

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// backlogGauges are the service's queues as the store holds them, shared by
// every replica: rights requests open and overdue, messages waiting for the
// mailer, recipients' notifications not acknowledged. They are read from
// the store when scraped, at most every gaugeTTL, so frequent scrapes cost
// nothing; a failed read keeps the last values.
type backlogGauges struct {
	s                            *Service
	open, late, outbox, notices  *prometheus.Desc
	mu                           sync.Mutex
	at                           time.Time
	nOpen, nLate, nOut, nNotices int64
	ok                           bool
}

const gaugeTTL = 15 * time.Second

// BacklogMetrics is the collector of the service's backlog gauges.
func (s *Service) BacklogMetrics() prometheus.Collector {
	return &backlogGauges{
		s:       s,
		open:    prometheus.NewDesc("personaldata_rights_requests_open", "Rights requests received and not answered yet.", nil, nil),
		late:    prometheus.NewDesc("personaldata_rights_requests_overdue", "Rights requests not answered by their due date (Art. 12(3)).", nil, nil),
		outbox:  prometheus.NewDesc("personaldata_outbox_messages", "Messages to requesters waiting for the mailer to acknowledge them.", nil, nil),
		notices: prometheus.NewDesc("personaldata_recipient_notifications_pending", "Recipients' notifications (Art. 19) not acknowledged yet.", nil, nil),
	}
}

func (g *backlogGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.open
	ch <- g.late
	ch <- g.outbox
	ch <- g.notices
}

func (g *backlogGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := time.Now(); !g.ok || now.Sub(g.at) > gaugeTTL {
		if err := g.read(); err == nil {
			g.at, g.ok = now, true
		} else if !g.ok {
			return // nothing true to say yet
		}
	}
	for _, m := range []struct {
		d *prometheus.Desc
		v int64
	}{{g.open, g.nOpen}, {g.late, g.nLate}, {g.outbox, g.nOut}, {g.notices, g.nNotices}} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.GaugeValue, float64(m.v))
	}
}

// read counts the backlogs; the caller holds g.mu.
func (g *backlogGauges) read() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	open, late, err := g.s.Store.CountRightsRequests(ctx, openStates, g.s.Now().UnixNano())
	if err != nil {
		return err
	}
	out, err := g.s.Store.CountOutbox(ctx)
	if err != nil {
		return err
	}
	notices, err := g.s.Store.CountUnackedNotifications(ctx)
	if err != nil {
		return err
	}
	g.nOpen, g.nLate, g.nOut, g.nNotices = open, late, out, notices
	return nil
}
