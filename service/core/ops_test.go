package core

import (
	"testing"
	"time"

	"github.com/example/personaldata/store"
)

func TestAppendOpKeepsADayOfKeys(t *testing.T) {
	start := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	var ops []store.Op
	for i := range 100 { // 100 changes within the first hour
		ops = AppendOp(ops, store.Op{Key: string(rune('a' + i%26)), Result: int64(i)}, start.Add(time.Duration(i)*time.Second))
	}
	if len(ops) != 100 {
		t.Fatalf("%d ops remembered after 100 changes in an hour, want 100", len(ops))
	}
	ops = AppendOp(ops, store.Op{Key: "late", Result: 100}, start.Add(IdempotencyWindow-time.Minute))
	if len(ops) != 101 {
		t.Errorf("%d ops a minute before the window ends, want 101", len(ops))
	}
	ops = AppendOp(ops, store.Op{Key: "next day", Result: 101}, start.Add(IdempotencyWindow+time.Hour))
	if len(ops) != 2 || ops[0].Key != "late" || ops[1].Key != "next day" {
		t.Errorf("after the window: %d ops %v, want only the two younger than a day", len(ops), ops)
	}
	legacy := AppendOp([]store.Op{{Key: "old, no time"}}, store.Op{Key: "new"}, start)
	if len(legacy) != 2 {
		t.Errorf("an op recorded before ops had a time was forgotten")
	}
	var many []store.Op
	for i := range maxOps + 5 {
		many = AppendOp(many, store.Op{Result: int64(i)}, start)
	}
	if len(many) != maxOps || many[0].Result != 5 {
		t.Errorf("%d ops, oldest %d; want %d, the oldest 5 forgotten", len(many), many[0].Result, maxOps)
	}
}
