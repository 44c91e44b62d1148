// Package fault is the one mapping from what went wrong to a gRPC status
// with its details (google.rpc.ErrorInfo reasons, PreconditionFailure,
// ResourceInfo, RetryInfo): the reasons callers can test are constants
// here, and no error text carries personal data.
package fault
