package envelope

import (
	"fmt"
	"slices"
	"strconv"
)

// fileKeyAAD is the additional data of a file key wrapped with version v
// for label: it keeps a wrapped file key from passing for a data key, for
// another file, or for another version.
func fileKeyAAD(v uint32, label string) []byte {
	b := strconv.AppendUint([]byte("personaldata file key v"), uint64(v), 10)
	return append(append(b, ' '), label...)
}

// WrapFileKey encrypts fileKey, the key of one file (such as a backup),
// under the current master key version, bound to label (what names the
// file: its header's digest). Unwrap it with UnwrapFileKey and the same
// label.
func (k *Keyring) WrapFileKey(fileKey []byte, label string) (WrappedKey, error) {
	if !k.valid() {
		return WrappedKey{}, invalid("keyring not loaded")
	}
	v := k.current
	return WrappedKey{Version: v, Ciphertext: k.secrets().masters[v].Seal(nil, nil, fileKey, fileKeyAAD(v, label))}, nil
}

// UnwrapFileKey returns the file key inside w for label. A version the
// keyring does not hold gives ErrUnknownVersion (naming it and those held);
// a ciphertext that does not authenticate, ErrDecrypt.
func (k *Keyring) UnwrapFileKey(w WrappedKey, label string) ([]byte, error) {
	if !k.valid() {
		return nil, invalid("keyring not loaded")
	}
	master, ok := k.secrets().masters[w.Version]
	if !ok {
		return nil, fmt.Errorf("%w: version %d (the keyring holds %v)", ErrUnknownVersion, w.Version, slices.Clone(k.versions))
	}
	key, err := master.Open(nil, nil, w.Ciphertext, fileKeyAAD(w.Version, label))
	if err != nil {
		return nil, ErrDecrypt
	}
	return key, nil
}
