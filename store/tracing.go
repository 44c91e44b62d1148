package store

import (
	"context"
	"sync"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracingMonitor makes a client span of every command the driver sends, as
// a child of the calling request's span: its name is the command, its
// attributes the database and collection. Never the command itself, which
// holds blind indexes and sealed values. (The OpenTelemetry contrib monitor
// for driver v2 is not served by the module proxy here; this is the part of
// it the service needs.) next, when set, sees every event too.
func tracingMonitor(tp trace.TracerProvider, next *event.CommandMonitor) *event.CommandMonitor {
	tracer := tp.Tracer("github.com/example/personaldata/store")
	var spans sync.Map // request id -> trace.Span
	end := func(requestID int64, err error) {
		if s, ok := spans.LoadAndDelete(requestID); ok {
			span := s.(trace.Span)
			if err != nil {
				span.SetStatus(codes.Error, "command failed")
			}
			span.End()
		}
	}
	return &event.CommandMonitor{
		Started: func(ctx context.Context, e *event.CommandStartedEvent) {
			attrs := []attribute.KeyValue{
				attribute.String("db.system.name", "mongodb"),
				attribute.String("db.namespace", e.DatabaseName),
				attribute.String("db.operation.name", e.CommandName),
			}
			// The collection is the value of the command's first element.
			if el, err := e.Command.IndexErr(0); err == nil {
				if c, ok := el.Value().StringValueOK(); ok {
					attrs = append(attrs, attribute.String("db.collection.name", c))
				}
			}
			_, span := tracer.Start(ctx, e.CommandName, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
			spans.Store(e.RequestID, span)
			if next != nil && next.Started != nil {
				next.Started(ctx, e)
			}
		},
		Succeeded: func(ctx context.Context, e *event.CommandSucceededEvent) {
			end(e.RequestID, nil)
			if next != nil && next.Succeeded != nil {
				next.Succeeded(ctx, e)
			}
		},
		Failed: func(ctx context.Context, e *event.CommandFailedEvent) {
			end(e.RequestID, e.Failure)
			if next != nil && next.Failed != nil {
				next.Failed(ctx, e)
			}
		},
	}
}
