// Package envelope encrypts personal data at rest, field by field, with
// envelope encryption:
//
//   - every data subject has a data key of its own (a random 32-byte
//     AES-256 key, see [DataKey]); fields are sealed with AES-256-GCM under
//     it, with additional authenticated data that names the subject and the
//     field, so a ciphertext cannot be moved to another field or subject;
//   - the data key is stored only wrapped (encrypted with AES-256-GCM) under
//     a versioned master key held in a [Keyring]; see [WrappedKey];
//   - lookups by value (identity number, e-mail, ...) go through a keyed
//     blind index ([Keyring.Index]) with a key of its own, so equal values
//     find each other without the value being stored in clear.
//
// Erasing a subject's wrapped data key makes all of its sealed fields
// unreadable at once (crypto-shredding), including in backups made after the
// erasure has been propagated.
//
// Key rotation: [AddVersion] adds a master key version and makes it current;
// new data keys are wrapped with it, older versions stay readable, and a
// rotation job calls [Keyring.Rewrap] on every stored wrapped key and then
// [RemoveVersion] for the versions nothing is wrapped with any more. Only the
// wrapped data keys are rewritten; sealed fields are untouched.
//
// Only the standard library is used (crypto/aes, crypto/cipher, crypto/hmac,
// crypto/sha256, crypto/rand). Nothing in this package puts key material or
// plaintext into an error, a panic or a formatted value: [DataKey] and
// [Keyring] print as redacted placeholders with every fmt verb.
package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors returned by this package. They are fixed values for errors.Is;
// returned errors may wrap them with context (a version number, a file
// path) but never with key material or plaintext.
var (
	// ErrDecrypt means a ciphertext or wrapped key failed authentication:
	// it was tampered with or truncated, or the key or the additional data
	// is not the one it was sealed with. The causes are deliberately not
	// told apart.
	ErrDecrypt = errors.New("envelope: decryption failed")
	// ErrUnknownVersion means a master key version is not in the keyring
	// (never added, or already removed by RemoveVersion).
	ErrUnknownVersion = errors.New("envelope: unknown master key version")
	// ErrInsecurePermissions means a keyring file can be read or written by
	// its group or by others; Load refuses such a file.
	ErrInsecurePermissions = errors.New("envelope: keyring file permissions allow group or other access")
	// ErrInvalidKeyring means keyring data is malformed (bad JSON, a key
	// that is not 32 bytes of base64, a current version that is not among
	// the master keys, ...) or a Keyring was not made by Load, Parse or
	// LoadOrCreate.
	ErrInvalidKeyring = errors.New("envelope: invalid keyring")
	// ErrCurrentVersion means RemoveVersion was asked to remove the
	// current master key version.
	ErrCurrentVersion = errors.New("envelope: cannot remove the current master key version")
	// ErrNoDataKey means Seal or Open was called on the zero DataKey rather
	// than on one from Keyring.NewDataKey or Keyring.Unwrap.
	ErrNoDataKey = errors.New("envelope: zero DataKey")
	// ErrInvalidWrappedKey means WrappedKey.UnmarshalBinary was given bytes
	// that are not an encoded wrapped key.
	ErrInvalidWrappedKey = errors.New("envelope: malformed wrapped key")
)

const (
	// keySize is the size of every key in this package: AES-256 master and
	// data keys, and the HMAC-SHA256 index key.
	keySize = 32
	// nonceSize and tagSize are those of standard AES-GCM; sealed values
	// are nonce || ciphertext || tag.
	nonceSize = 12
	tagSize   = 16
	// wrappedSize is the length of WrappedKey.Ciphertext.
	wrappedSize = nonceSize + keySize + tagSize
)

// DataKey is a subject's 32-byte AES-256 data key, ready to seal and open
// that subject's fields. Get one from [Keyring.NewDataKey] or
// [Keyring.Unwrap]; the zero value has no key and its methods return
// [ErrNoDataKey]. A DataKey is safe for concurrent use.
//
// The raw key bytes are never exposed: only the wrapped form is meant to be
// stored. A DataKey formats as "DataKey(redacted)" with every fmt verb, and
// does not leak when printed as an unexported field of another struct
// either: the key lives only inside a closure, where neither fmt nor reflect
// can reach it.
type DataKey struct {
	// aead returns AES-256-GCM under the data key, with random 96-bit
	// nonces prepended. A func rather than the cipher.AEAD itself: fmt
	// prints a func as an address, but walks into an interface's pointer
	// (the AES key schedule starts with the key) for a mismatched verb.
	aead func() cipher.AEAD
}

// newDataKey builds a DataKey from raw key bytes, which it does not keep.
func newDataKey(raw []byte) (DataKey, error) {
	aead, err := newAEAD(raw)
	if err != nil {
		return DataKey{}, err
	}
	return DataKey{aead: func() cipher.AEAD { return aead }}, nil
}

// newAEAD returns AES-256-GCM under key that generates a random 96-bit nonce
// for every Seal and prepends it to the ciphertext.
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != keySize {
		// Only the length is reported, never the bytes.
		return nil, fmt.Errorf("envelope: key is %d bytes, want %d", len(key), keySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("envelope: AES: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("envelope: GCM: %w", err)
	}
	return aead, nil
}

// Seal encrypts plaintext with AES-256-GCM under d and returns
// nonce || ciphertext || tag, where the nonce is 96 random bits and the
// whole is 28 bytes longer than plaintext. aad is authenticated but not
// encrypted or stored: Open must be given the same aad, so binding the
// subject and field (see [AAD]) means a ciphertext copied to another field or
// subject no longer opens. Sealing the same plaintext twice gives different
// ciphertexts.
//
// Random nonces are safe for up to about 2^32 Seal calls per data key, far
// more than one subject's fields will ever see.
func (d DataKey) Seal(plaintext, aad []byte) ([]byte, error) {
	if d.aead == nil {
		return nil, ErrNoDataKey
	}
	return d.aead().Seal(nil, nil, plaintext, aad), nil
}

// Open authenticates and decrypts a ciphertext made by [DataKey.Seal] with
// the same aad. Any tampering, truncation, wrong data key or wrong aad gives
// [ErrDecrypt] and no plaintext.
func (d DataKey) Open(ciphertext, aad []byte) ([]byte, error) {
	if d.aead == nil {
		return nil, ErrNoDataKey
	}
	if len(ciphertext) < nonceSize+tagSize {
		return nil, ErrDecrypt
	}
	plaintext, err := d.aead().Open(nil, nil, ciphertext, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

// SealString is [DataKey.Seal] for a string plaintext.
func (d DataKey) SealString(plaintext string, aad []byte) ([]byte, error) {
	return d.Seal([]byte(plaintext), aad)
}

// OpenString is [DataKey.Open] returning the plaintext as a string.
func (d DataKey) OpenString(ciphertext, aad []byte) (string, error) {
	plaintext, err := d.Open(ciphertext, aad)
	if err != nil {
		return "", err
	}
	return string(plaintext), nil
}

// String returns "DataKey(redacted)"; the key is never printed.
func (d DataKey) String() string { return "DataKey(redacted)" }

// GoString returns "DataKey(redacted)", so %#v does not print the key either.
func (d DataKey) GoString() string { return "DataKey(redacted)" }

// Format writes "DataKey(redacted)" for every verb and flag, so that not
// even %d, %x or %+v of a DataKey can print the key.
func (d DataKey) Format(f fmt.State, verb rune) {
	_, _ = io.WriteString(f, "DataKey(redacted)")
}

// AAD encodes parts, typically a subject id and a field name, as additional
// authenticated data for [DataKey.Seal] and [DataKey.Open]. Each part is
// prefixed with its length, so distinct part lists always give distinct
// bytes (AAD("ab", "c") differs from AAD("a", "bc"), which plain
// concatenation would not guarantee).
func AAD(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = binary.AppendUvarint(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out
}

// WrappedKey is a data key encrypted under one master key version: this is
// the form that is stored next to the subject. Ciphertext is
// nonce || AES-256-GCM(data key) || tag (60 bytes), with additional data
// "personaldata data key v<Version>" so it cannot be relabelled to another
// version. It holds no secret in clear.
type WrappedKey struct {
	// Version is the master key version the data key is wrapped with.
	Version uint32
	// Ciphertext is the wrapped data key.
	Ciphertext []byte
}

// MarshalBinary encodes w as a 4-byte big-endian version followed by the
// ciphertext, for storing a wrapped key in a single column.
func (w WrappedKey) MarshalBinary() ([]byte, error) {
	out := make([]byte, 4, 4+len(w.Ciphertext))
	binary.BigEndian.PutUint32(out, w.Version)
	return append(out, w.Ciphertext...), nil
}

// UnmarshalBinary decodes what [WrappedKey.MarshalBinary] produced; data
// that is too short gives [ErrInvalidWrappedKey]. Whether the ciphertext is
// genuine is only known when it is unwrapped.
func (w *WrappedKey) UnmarshalBinary(data []byte) error {
	if len(data) < 4+1 {
		return ErrInvalidWrappedKey
	}
	w.Version = binary.BigEndian.Uint32(data)
	w.Ciphertext = append([]byte(nil), data[4:]...)
	return nil
}
