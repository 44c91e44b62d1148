// Package fault is the one mapping from what went wrong to a gRPC status
// with its details (google.rpc.ErrorInfo, PreconditionFailure, ResourceInfo,
// RetryInfo): the constructors every package answers with, the reasons
// shared by several (those of one rule stay beside it: rules'
// NO_PROCESSOR_AGREEMENT, core's consent reasons), and Internal, which maps
// an error from the store to a status and logs it. No error text carries
// personal data.
package fault
