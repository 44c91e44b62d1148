package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/storetest"
)

// TestEnqueueNotificationOncePerKey: many writers enqueue the same keys at
// once, as replicas finishing the same pending notices would; each key is
// queued exactly once, at consecutive seqs, and the head follows.
func TestEnqueueNotificationOncePerKey(t *testing.T) {
	storetest.SkipUnlessAtomic(t)
	s := open(t)
	ctx := context.Background()
	const writers, keys = 6, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				key := fmt.Sprintf("s%d.%d", (k+w)%keys, 2)
				if _, err := s.EnqueueNotification(ctx, &store.Notification{Recipient: "iis.se", Key: key, SubjectID: key, Controller: "company", Kind: "NOTIFICATION_KIND_ERASED"}); err != nil {
					t.Errorf("enqueue %s: %v", key, err)
				}
			}
		}()
	}
	wg.Wait()
	got, err := s.NotificationsFrom(ctx, "iis.se", 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, n := range got {
		if n.Seq != int64(i+1) || seen[n.Key] {
			t.Errorf("seq %d key %s at %d (seen before: %v)", n.Seq, n.Key, i, seen[n.Key])
		}
		seen[n.Key] = true
	}
	if len(got) != keys {
		t.Errorf("%d notifications queued, want %d", len(got), keys)
	}
	head, err := s.GetNotificationHead(ctx, "iis.se")
	if err != nil || head.Next != keys+1 {
		t.Errorf("head %+v %v, want next %d", head, err, keys+1)
	}
	// Acknowledging out of order moves AckedUpto only over a run.
	if _, err := s.AckNotification(ctx, "iis.se", 2, 1, "t"); err != nil {
		t.Fatal(err)
	}
	if head, _ := s.GetNotificationHead(ctx, "iis.se"); head.AckedUpto != 0 {
		t.Errorf("acked_upto %d after acknowledging 2 only", head.AckedUpto)
	}
	if _, err := s.AckNotification(ctx, "iis.se", 1, 1, "t"); err != nil {
		t.Fatal(err)
	}
	if head, _ := s.GetNotificationHead(ctx, "iis.se"); head.AckedUpto != 2 {
		t.Errorf("acked_upto %d after acknowledging 1 and 2", head.AckedUpto)
	}
}
