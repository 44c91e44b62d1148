package envelope

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"

	"maps"
)

// Wrapper encrypts and decrypts a keyring file with a key it never gives
// out: a key management service or Vault. gocloud.dev/secrets' *Keeper is
// one (awskms, gcpkms, azurekeyvault, hashivault, localsecrets).
type Wrapper interface {
	Encrypt(ctx context.Context, plaintext []byte) ([]byte, error)
	Decrypt(ctx context.Context, ciphertext []byte) ([]byte, error)
}

// WrappedFile is a keyring file whose content is encrypted by a Wrapper: a
// copy of the file, with or without the data it protects, is useless
// without access to the key service. With no Wrapper it is a plain keyring
// file, which Load, LoadOrCreate, AddVersion and RemoveVersion change
// through it: the same checks and atomic writes either way.
type WrappedFile struct {
	Path    string
	Wrapper Wrapper
}

// Load reads and unwraps the keyring.
func (f WrappedFile) Load(ctx context.Context) (*Keyring, error) {
	d, err := readKeyringFileWith(ctx, f.Path, f.Wrapper)
	if err != nil {
		return nil, err
	}
	return d.keyring()
}

// LoadOrCreate loads the keyring or, if the file does not exist, creates
// one as LoadOrCreate does and writes it wrapped.
func (f WrappedFile) LoadOrCreate(ctx context.Context) (k *Keyring, created bool, err error) {
	fileMu.Lock()
	defer fileMu.Unlock()
	k, err = f.Load(ctx)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return nil, false, fmt.Errorf("envelope: create keyring directory: %w", err)
	}
	d := &keyringData{current: 1, masters: map[uint32][]byte{1: randomKey()}, indexKey: randomKey()}
	err = f.write(ctx, d, false)
	if errors.Is(err, fs.ErrExist) {
		k, err = f.Load(ctx)
		return k, false, err
	}
	if err != nil {
		return nil, false, err
	}
	k, err = d.keyring()
	return k, err == nil, err
}

// AddVersion adds a fresh master key version and makes it current.
func (f WrappedFile) AddVersion(ctx context.Context) (uint32, error) {
	fileMu.Lock()
	defer fileMu.Unlock()
	d, err := readKeyringFileWith(ctx, f.Path, f.Wrapper)
	if err != nil {
		return 0, err
	}
	highest := slices.Max(slices.Collect(maps.Keys(d.masters)))
	if highest == math.MaxUint32 {
		return 0, invalid("no master key version left after %d", highest)
	}
	v := highest + 1
	d.masters[v], d.current = randomKey(), v
	return v, f.write(ctx, d, true)
}

// RemoveVersion drops master key version v, as RemoveVersion does.
func (f WrappedFile) RemoveVersion(ctx context.Context, v uint32) error {
	fileMu.Lock()
	defer fileMu.Unlock()
	d, err := readKeyringFileWith(ctx, f.Path, f.Wrapper)
	if err != nil {
		return err
	}
	if v == d.current {
		return fmt.Errorf("%w (version %d)", ErrCurrentVersion, v)
	}
	if _, ok := d.masters[v]; !ok {
		return fmt.Errorf("%w: version %d", ErrUnknownVersion, v)
	}
	delete(d.masters, v)
	return f.write(ctx, d, true)
}

// write encodes, wraps and writes d atomically.
func (f WrappedFile) write(ctx context.Context, d *keyringData, replace bool) error {
	data, err := d.encode()
	if err != nil {
		return err
	}
	defer clear(data)
	if f.Wrapper != nil {
		if data, err = f.Wrapper.Encrypt(ctx, data); err != nil {
			return fmt.Errorf("envelope: wrap keyring with its key service: %w", err)
		}
	}
	return writeFileAtomic(f.Path, data, replace)
}
