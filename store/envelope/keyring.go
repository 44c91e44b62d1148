package envelope

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/example/personaldata/store/durablefile"
)

// Keyring holds the master key versions (32-byte AES-256 keys), which
// version wraps new data keys, and the blind-index key (32 bytes for
// HMAC-SHA256). Make one with [Load], [Parse] or [LoadOrCreate]; it is
// immutable afterwards and safe for concurrent use. [AddVersion] and
// [RemoveVersion] change the file, not a loaded Keyring: load it again to
// see the change.
//
// A Keyring formats as "Keyring(current=N, versions=[...])" with every fmt
// verb, and keeps its keys inside a closure, so no key is ever printed, not
// even when a Keyring is an unexported field of a struct being printed.
type Keyring struct {
	current  uint32
	versions []uint32 // ascending
	// secrets returns the keys. A func, because fmt and reflect cannot
	// look inside one (see DataKey.aead).
	secrets func() *keyringSecrets
}

// keyringSecrets is the key material of a Keyring.
type keyringSecrets struct {
	masters  map[uint32]cipher.AEAD // version -> AES-256-GCM, random nonces
	indexKey [keySize]byte
}

// keyringFile is the JSON form of a keyring:
//
//	{"current": 2, "master_keys": {"1": "<base64>", "2": "<base64>"}, "index_key": "<base64>"}
//
// Keys are standard base64 (with padding) of 32 bytes.
type keyringFile struct {
	Current    uint32            `json:"current"`
	MasterKeys map[string]string `json:"master_keys"`
	IndexKey   string            `json:"index_key"`
}

// keyringData is a validated, decoded keyringFile.
type keyringData struct {
	current  uint32
	masters  map[uint32][]byte
	indexKey []byte
}

// maxKeyringFile bounds how much of a keyring file is read; a real one is a
// few hundred bytes per version.
const maxKeyringFile = 1 << 20

// fileMu serialises this process's changes to keyring files (LoadOrCreate's
// creation, AddVersion, RemoveVersion). Other processes are not excluded:
// run rotation from one place at a time.
var fileMu sync.Mutex

// invalid returns an ErrInvalidKeyring with a reason. Reasons are fixed
// texts plus version numbers and lengths, never key bytes.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidKeyring, fmt.Sprintf(format, args...))
}

// Load reads a keyring file. File format: JSON
//
//	{"current": <uint32>, "master_keys": {"<version>": "<base64 32 bytes>", ...}, "index_key": "<base64 32 bytes>"}
//
// Versions are decimal numbers from 1; current must be one of them; unknown
// fields are refused. A file whose permissions allow group or other access
// (mode & 0o077 != 0) is refused with [ErrInsecurePermissions]; so is
// anything but a regular file. (On Windows, where Go reports no meaningful
// Unix mode, the permission check is skipped.) A missing file gives an error
// that matches [fs.ErrNotExist].
func Load(path string) (*Keyring, error) {
	d, err := readKeyringFile(path)
	if err != nil {
		return nil, err
	}
	return d.keyring()
}

// Parse parses keyring JSON, in the same format as the file read by [Load],
// from bytes: for a keyring passed in an environment variable or a secret
// store. data is not modified or kept.
func Parse(data []byte) (*Keyring, error) {
	d, err := decodeKeyring(data)
	if err != nil {
		return nil, err
	}
	return d.keyring()
}

// LoadOrCreate loads the keyring file at path or, if it does not exist,
// creates it with master key version 1 and a fresh index key, both from
// crypto/rand, and reports whether it created it. A created file has mode
// 0600; missing parent directories are created with mode 0700 (existing ones
// are left as they are). The file is written atomically (temporary file in
// the same directory, fsync, then a hard link or rename into place, then
// fsync of the directory), and never replaces a file that appeared in the
// meantime: if another process created it first, that one is loaded and
// created is false. A file that exists but cannot be loaded (bad
// permissions, malformed) is an error, never silently replaced.
func LoadOrCreate(path string) (k *Keyring, created bool, err error) {
	return WrappedFile{Path: path}.LoadOrCreate(context.Background())
}

// AddVersion adds a fresh random master key to the keyring file at path and
// makes it current, replacing the file atomically (mode 0600); it returns
// the new version, one more than the highest version in the file. Data keys
// wrapped with older versions stay readable; rotate them with
// [Keyring.Rewrap] after reloading the keyring. The file must pass the same
// checks as in [Load].
//
// Concurrent AddVersion/RemoveVersion calls are serialised within a process
// only; do not run them from several processes at once.
func AddVersion(path string) (uint32, error) {
	return WrappedFile{Path: path}.AddVersion(context.Background())
}

// RemoveVersion drops master key version v from the keyring file at path,
// replacing the file atomically (mode 0600). It refuses the current version
// ([ErrCurrentVersion]) and a version not in the file ([ErrUnknownVersion]).
//
// The keyring cannot know what is still wrapped with v: call it only once
// every stored wrapped key has been rewrapped (see [Keyring.Rewrap]). Data
// keys still wrapped with v are lost for good afterwards, and so is every
// field sealed under them (unless the file was backed up).
func RemoveVersion(path string, v uint32) error {
	return WrappedFile{Path: path}.RemoveVersion(context.Background(), v)
}

// Current returns the master key version that wraps new data keys (0 for a
// Keyring not made by Load, Parse or LoadOrCreate).
func (k *Keyring) Current() uint32 {
	if !k.valid() {
		return 0
	}
	return k.current
}

// Versions returns the master key versions in the keyring, ascending.
func (k *Keyring) Versions() []uint32 {
	if !k.valid() {
		return nil
	}
	return slices.Clone(k.versions)
}

// NewDataKey returns a fresh random data key (from crypto/rand) and its
// wrapped form under the current master key version. Store the wrapped key
// with the subject; use the DataKey to seal the subject's fields.
func (k *Keyring) NewDataKey() (DataKey, WrappedKey, error) {
	if !k.valid() {
		return DataKey{}, WrappedKey{}, invalid("keyring not loaded")
	}
	raw := randomKey()
	defer clear(raw)
	dk, err := newDataKey(raw)
	if err != nil {
		return DataKey{}, WrappedKey{}, err
	}
	w := k.wrap(k.current, raw)
	return dk, w, nil
}

// Unwrap decrypts a wrapped data key. A version that is not in the keyring
// gives [ErrUnknownVersion]; a ciphertext that does not authenticate under
// that version (tampered, truncated, or relabelled from another version)
// gives [ErrDecrypt].
func (k *Keyring) Unwrap(w WrappedKey) (DataKey, error) {
	raw, err := k.unwrapRaw(w)
	if err != nil {
		return DataKey{}, err
	}
	defer clear(raw)
	return newDataKey(raw)
}

// Rewrap returns w's data key wrapped under the current master key version,
// for rotation, and whether it changed anything. A key already wrapped with
// the current version is returned unchanged (and not decrypted). The data
// key itself stays the same, so fields sealed under it need no change; the
// caller stores the returned WrappedKey in place of w.
func (k *Keyring) Rewrap(w WrappedKey) (WrappedKey, bool, error) {
	if !k.valid() {
		return WrappedKey{}, false, invalid("keyring not loaded")
	}
	if w.Version == k.current {
		return w, false, nil
	}
	raw, err := k.unwrapRaw(w)
	if err != nil {
		return WrappedKey{}, false, err
	}
	defer clear(raw)
	return k.wrap(k.current, raw), true, nil
}

// Index returns the blind index of value for a lookup of kind (e.g.
// "identity_number", "email") within controller: "kind." followed by the
// lower-case hex of HMAC-SHA256(index key, kind \x00 controller \x00 value).
// It is deterministic, so equal values find each other, but cannot be
// reversed or recomputed without the index key, and the same value gives
// unrelated indexes for another kind or controller.
//
// The caller normalises value first (canonical identity number, trimmed and
// lower-cased e-mail, ...), since only exact equality matches. kind and
// controller are identifiers, not personal data, and must not contain NUL
// bytes; value may contain anything. Index panics on a Keyring not made by
// Load, Parse or LoadOrCreate.
func (k *Keyring) Index(kind, controller, value string) string {
	if !k.valid() {
		panic("envelope: Index on a Keyring not made by Load, Parse or LoadOrCreate")
	}
	mac := hmac.New(sha256.New, k.secrets().indexKey[:])
	_, _ = io.WriteString(mac, kind)
	_, _ = mac.Write([]byte{0})
	_, _ = io.WriteString(mac, controller)
	_, _ = mac.Write([]byte{0})
	_, _ = io.WriteString(mac, value)
	var sum [sha256.Size]byte
	out := make([]byte, 0, len(kind)+1+2*sha256.Size)
	out = append(out, kind...)
	out = append(out, '.')
	return string(hex.AppendEncode(out, mac.Sum(sum[:0])))
}

// String describes the keyring without any key: its current version and
// versions.
func (k *Keyring) String() string {
	if !k.valid() {
		return "Keyring(empty)"
	}
	return fmt.Sprintf("Keyring(current=%d, versions=%v)", k.current, k.Versions())
}

// GoString is String, so %#v prints no key either.
func (k *Keyring) GoString() string { return k.String() }

// Format writes String for every verb and flag.
func (k *Keyring) Format(f fmt.State, verb rune) {
	_, _ = io.WriteString(f, k.String())
}

// valid reports whether k was made by Load, Parse or LoadOrCreate.
func (k *Keyring) valid() bool {
	return k != nil && k.secrets != nil
}

// wrapAAD is the additional data of a data key wrapped with version v; it
// stops a wrapped key from being relabelled to another version.
func wrapAAD(v uint32) []byte {
	return strconv.AppendUint([]byte("personaldata data key v"), uint64(v), 10)
}

// wrap encrypts raw under master key version v, which must exist.
func (k *Keyring) wrap(v uint32, raw []byte) WrappedKey {
	return WrappedKey{Version: v, Ciphertext: k.secrets().masters[v].Seal(nil, nil, raw, wrapAAD(v))}
}

// unwrapRaw returns the raw data key inside w; the caller clears it.
func (k *Keyring) unwrapRaw(w WrappedKey) ([]byte, error) {
	if !k.valid() {
		return nil, invalid("keyring not loaded")
	}
	master, ok := k.secrets().masters[w.Version]
	if !ok {
		return nil, fmt.Errorf("%w: version %d", ErrUnknownVersion, w.Version)
	}
	if len(w.Ciphertext) != wrappedSize {
		return nil, ErrDecrypt
	}
	raw, err := master.Open(nil, nil, w.Ciphertext, wrapAAD(w.Version))
	if err != nil || len(raw) != keySize {
		return nil, ErrDecrypt
	}
	return raw, nil
}

// checkpointKeyInfo names what the checkpoint key is derived for, and
// its version.
const checkpointKeyInfo = "personaldata audit checkpoint signing key v1"

// CheckpointKey returns the Ed25519 key that signs the audit trail's
// checkpoints. It is derived (HKDF-SHA256) from the index key, so it is
// kept as the master keys are, in this keyring and wrapped by the key
// service when there is one: no key file of its own to lose or to guard,
// and the same key after every restart and on every replica.
func (k *Keyring) CheckpointKey() ed25519.PrivateKey {
	seed, err := hkdf.Key(sha256.New, k.secrets().indexKey[:], nil, checkpointKeyInfo, ed25519.SeedSize)
	if err != nil {
		panic(err) // only for a length HKDF-SHA256 cannot give
	}
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed)
}

// randomKey returns 32 bytes from crypto/rand, which never fails (it
// crashes the program rather than return predictable bytes).
func randomKey() []byte {
	b := make([]byte, keySize)
	_, _ = rand.Read(b)
	return b
}

// readKeyringFile opens path, checks it is a regular file that only its
// owner can access, and decodes it.
func readKeyringFile(path string) (*keyringData, error) {
	return readKeyringFileWith(context.Background(), path, nil)
}

// readKeyringFileWith reads the keyring file at path, unwrapping it with w
// when w is not nil.
func readKeyringFileWith(ctx context.Context, path string, w Wrapper) (*keyringData, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("envelope: open keyring: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the check and the read are
	// about the same file.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("envelope: stat keyring: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, invalid("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%w: %s has mode %04o, want 0600 (chmod 600 it)", ErrInsecurePermissions, path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyringFile+1))
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("envelope: read keyring: %w", err)
	}
	if len(data) > maxKeyringFile {
		return nil, invalid("%s is larger than %d bytes", path, maxKeyringFile)
	}
	if w != nil {
		plain, err := w.Decrypt(ctx, data)
		if err != nil {
			return nil, fmt.Errorf("envelope: unwrap keyring %s with its key service: %w", path, err)
		}
		defer clear(plain)
		data = plain
	}
	d, err := decodeKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return d, nil
}

// decodeKeyring parses and validates keyring JSON. Its errors carry only
// field names, versions, offsets and lengths: json's own messages can quote
// input, so they are not passed on.
func decodeKeyring(data []byte) (*keyringData, error) {
	var f keyringFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, invalid("malformed JSON at byte %d", syn.Offset)
		case errors.As(err, &typ):
			// Only the top-level field: below master_keys the path would
			// include a map key, which is not quoted (see below).
			field, _, _ := strings.Cut(typ.Field, ".")
			if field == "" {
				return nil, invalid("keyring JSON must be an object")
			}
			return nil, invalid("field %q has the wrong type", field)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil, invalid("empty or truncated JSON")
		default:
			return nil, invalid("malformed JSON or unknown field (allowed: current, master_keys, index_key)")
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid("trailing data after the JSON object")
	}

	d := &keyringData{current: f.Current, masters: make(map[uint32][]byte, len(f.MasterKeys))}
	if len(f.MasterKeys) == 0 {
		return nil, invalid("no master_keys")
	}
	for name, b64 := range f.MasterKeys {
		v, err := strconv.ParseUint(name, 10, 32)
		if err != nil || v == 0 || strconv.FormatUint(v, 10) != name {
			// The name is not quoted: a misplaced key could be in it.
			return nil, invalid("master_keys has a name that is not a version number from 1 to %d", uint32(math.MaxUint32))
		}
		key, err := decodeKey(b64)
		if err != nil {
			return nil, invalid("master key version %d: %v", v, err)
		}
		d.masters[uint32(v)] = key
	}
	if d.current == 0 {
		return nil, invalid("current is missing or 0")
	}
	if _, ok := d.masters[d.current]; !ok {
		return nil, invalid("current version %d is not in master_keys", d.current)
	}
	if f.IndexKey == "" {
		return nil, invalid("index_key is missing")
	}
	key, err := decodeKey(f.IndexKey)
	if err != nil {
		return nil, invalid("index_key: %v", err)
	}
	d.indexKey = key
	return d, nil
}

// decodeKey decodes a base64 key and checks its length; its errors never
// quote the input.
func decodeKey(b64 string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("not valid standard base64")
	}
	if len(key) != keySize {
		clear(key)
		return nil, fmt.Errorf("is %d bytes, want %d", len(key), keySize)
	}
	return key, nil
}

// keyring builds the in-memory Keyring.
func (d *keyringData) keyring() (*Keyring, error) {
	s := &keyringSecrets{masters: make(map[uint32]cipher.AEAD, len(d.masters))}
	for v, key := range d.masters {
		aead, err := newAEAD(key)
		if err != nil {
			return nil, invalid("master key version %d: %v", v, err)
		}
		s.masters[v] = aead
	}
	copy(s.indexKey[:], d.indexKey)
	return &Keyring{
		current:  d.current,
		versions: slices.Sorted(maps.Keys(d.masters)),
		secrets:  func() *keyringSecrets { return s },
	}, nil
}

// encode returns the file form of d.
func (d *keyringData) encode() ([]byte, error) {
	f := keyringFile{
		Current:    d.current,
		MasterKeys: make(map[string]string, len(d.masters)),
		IndexKey:   base64.StdEncoding.EncodeToString(d.indexKey),
	}
	for v, key := range d.masters {
		f.MasterKeys[strconv.FormatUint(uint64(v), 10)] = base64.StdEncoding.EncodeToString(key)
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, invalid("encode: %v", err)
	}
	return append(data, '\n'), nil
}

// writeFileAtomic writes the key file durably (package durablefile):
// losing a freshly created keyring would make everything sealed under it
// unreadable. With replace false it never overwrites an existing path and
// returns an error matching fs.ErrExist instead.
func writeFileAtomic(path string, data []byte, replace bool) error {
	if err := durablefile.Write(path, data, replace); err != nil {
		return fmt.Errorf("envelope: write keyring: %w", err)
	}
	return nil
}
