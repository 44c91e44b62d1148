package service

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// requestGauges counts, across every replica's work, the rights requests
// not answered yet and those of them past their due date, from the store
// when scraped (at most every gaugeTTL, so frequent scrapes cost nothing).
type requestGauges struct {
	s           *Service
	open, late  *prometheus.Desc
	mu          sync.Mutex
	at          time.Time
	nOpen, nDue int64
	ok          bool
}

const gaugeTTL = 15 * time.Second

// RequestMetrics is the collector of the rights requests' gauges.
func (s *Service) RequestMetrics() prometheus.Collector {
	return &requestGauges{
		s:    s,
		open: prometheus.NewDesc("personaldata_rights_requests_open", "Rights requests received and not answered yet.", nil, nil),
		late: prometheus.NewDesc("personaldata_rights_requests_overdue", "Rights requests not answered by their due date (Art. 12(3)).", nil, nil),
	}
}

func (g *requestGauges) Describe(ch chan<- *prometheus.Desc) { ch <- g.open; ch <- g.late }

func (g *requestGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := time.Now(); !g.ok || now.Sub(g.at) > gaugeTTL {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		open, late, err := g.s.store.CountRightsRequests(ctx, openStates, g.s.now().UnixNano())
		cancel()
		if err != nil {
			if !g.ok {
				return // nothing true to say yet
			}
		} else {
			g.nOpen, g.nDue, g.at, g.ok = open, late, now, true
		}
	}
	ch <- prometheus.MustNewConstMetric(g.open, prometheus.GaugeValue, float64(g.nOpen))
	ch <- prometheus.MustNewConstMetric(g.late, prometheus.GaugeValue, float64(g.nDue))
}
