// Package validate checks what callers send: Violations collects every bad
// field of a request, named by its path, and becomes one INVALID_ARGUMENT
// with a google.rpc.BadRequest; shared checks (ids, texts, people and
// addresses, times, page tokens, update masks) live here so that one field
// is checked one way everywhere. Checks that only one API service needs
// are functions of that service's package taking a *Violations.
package validate
