// Package validate checks what callers send: Violations collects every bad
// field of a request, named by its path, and becomes one INVALID_ARGUMENT
// with a google.rpc.BadRequest. The checks of the API's common shapes (ids,
// keys, texts, people and addresses, history entries, times, page sizes and
// tokens, update masks) live here, so that one field is checked one way
// everywhere; the checks of one service's own messages (a hold, an
// agreement's terms, a breach's texts) are functions of that service's
// package, named validX, that take a *Violations.
package validate
