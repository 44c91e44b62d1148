package accountability

import "context"

// inOrder runs up to n jobs at once and hands their results to emit, from
// the caller's goroutine, in the order the jobs were started.
type inOrder[T any] struct {
	ctx     context.Context
	cancel  context.CancelFunc
	n       int
	emit    func(T) error
	pending []chan jobResult[T] // oldest first
}

type jobResult[T any] struct {
	v   T
	err error
}

func newInOrder[T any](ctx context.Context, n int, emit func(T) error) *inOrder[T] {
	ctx, cancel := context.WithCancel(ctx)
	return &inOrder[T]{ctx: ctx, cancel: cancel, n: n, emit: emit}
}

// start runs job, first emitting the oldest result when n are running.
func (o *inOrder[T]) start(job func(context.Context) (T, error)) error {
	if len(o.pending) == o.n {
		if err := o.emitOldest(); err != nil {
			return err
		}
	}
	done := make(chan jobResult[T], 1)
	go func() {
		v, err := job(o.ctx)
		done <- jobResult[T]{v, err}
	}()
	o.pending = append(o.pending, done)
	return nil
}

func (o *inOrder[T]) emitOldest() error {
	r := <-o.pending[0]
	o.pending = o.pending[1:]
	if r.err != nil {
		return r.err
	}
	return o.emit(r.v)
}

// wait emits the results still to come, in order.
func (o *inOrder[T]) wait() error {
	for len(o.pending) > 0 {
		if err := o.emitOldest(); err != nil {
			return err
		}
	}
	return nil
}

// stop cancels the jobs still running and waits for them, so that none
// outlives the call.
func (o *inOrder[T]) stop() {
	o.cancel()
	for _, p := range o.pending {
		<-p
	}
	o.pending = nil
}
