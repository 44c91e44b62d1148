// Package vault seals personal data on its way to the store and opens it on
// the way back: each subject's fields, history entries, rights requests and
// outbox messages under a data key of its own (crypto-shredded on erasure),
// the data keys wrapped by the master keyring (Keys), and a cache of
// unwrapped keys. Nothing above it touches a data key or a sealed field
// except through it; it decides no rule.
package vault
