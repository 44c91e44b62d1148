package envelope

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// mustLoad loads the keyring file at path or fails the test.
func mustLoad(t *testing.T, path string) *Keyring {
	t.Helper()
	k, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return k
}

// mustAddVersion adds a master key version to path and checks its number.
func mustAddVersion(t *testing.T, path string, want uint32) {
	t.Helper()
	v, err := AddVersion(path)
	if err != nil {
		t.Fatalf("AddVersion: %v", err)
	}
	if v != want {
		t.Fatalf("AddVersion = %d, want %d", v, want)
	}
}

// assertMode checks the permission bits of path (not on Windows).
func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("mode of %s = %04o, want %04o", path, got, want)
	}
}

// assertOnlyFile checks that dir holds exactly the file name: no temporary
// files were left behind.
func assertOnlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{name}) {
		t.Errorf("%s holds %q, want only %q", dir, names, name)
	}
}

// testKeyJSON builds keyring JSON from fixed keys made of a repeated byte.
func testKeyJSON(current uint32, versions map[string]byte, index byte) []byte {
	var parts []string
	for name, b := range versions {
		parts = append(parts, fmt.Sprintf("%q: %q", name, b64Key(b)))
	}
	return fmt.Appendf(nil, `{"current": %d, "master_keys": {%s}, "index_key": %q}`,
		current, strings.Join(parts, ", "), b64Key(index))
}

// b64Key is the base64 of a 32-byte key made of b repeated.
func b64Key(b byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, keySize))
}

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "keys")
	path := filepath.Join(dir, "keyring.json")

	k1, created, err := LoadOrCreate(path)
	if err != nil {
		t.Fatalf("first LoadOrCreate: %v", err)
	}
	if !created {
		t.Errorf("first LoadOrCreate: created = false, want true")
	}
	assertMode(t, path, 0o600)
	assertMode(t, dir, 0o700)
	assertOnlyFile(t, dir, "keyring.json")
	if got := k1.Current(); got != 1 {
		t.Errorf("Current() = %d, want 1", got)
	}
	if got := k1.Versions(); !slices.Equal(got, []uint32{1}) {
		t.Errorf("Versions() = %v, want [1]", got)
	}
	dk, w := newTestDataKey(t, k1)
	ct := mustSeal(t, dk, []byte("Tolvan"), AAD("s1", "given_name"))

	k2, created, err := LoadOrCreate(path)
	if err != nil {
		t.Fatalf("second LoadOrCreate: %v", err)
	}
	if created {
		t.Errorf("second LoadOrCreate: created = true, want false")
	}
	// Same master key: the wrapped key unwraps and opens the field.
	dk2, err := k2.Unwrap(w)
	if err != nil {
		t.Fatalf("Unwrap with the reloaded keyring: %v", err)
	}
	if got, err := dk2.OpenString(ct, AAD("s1", "given_name")); err != nil || got != "Tolvan" {
		t.Errorf("OpenString = %q, %v; want Tolvan", got, err)
	}
	// Same index key.
	if a, b := k1.Index("email", "c", "a@b.test"), k2.Index("email", "c", "a@b.test"); a != b {
		t.Errorf("Index differs after reload: %s vs %s", a, b)
	}
	// Plain Load agrees, and the file is what the doc says.
	mustLoad(t, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(data); err != nil {
		t.Errorf("Parse of the created file: %v", err)
	}
}

func TestLoadOrCreateConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	const n = 8
	rings := make([]*Keyring, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, c, err := LoadOrCreate(path)
			if err != nil {
				t.Error(err)
				return
			}
			rings[i], created[i] = k, c
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if got := len(slices.DeleteFunc(slices.Clone(created), func(c bool) bool { return !c })); got != 1 {
		t.Errorf("%d calls created the file, want 1", got)
	}
	want := rings[0].Index("email", "c", "v")
	for i, k := range rings {
		if got := k.Index("email", "c", "v"); got != want {
			t.Errorf("keyring %d has another index key", i)
		}
	}
}

func TestCreateNeverReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := os.WriteFile(path, []byte("original"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(path, []byte("new"), false); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("writeFileAtomic without replace over an existing file: %v, want fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "original" {
		t.Errorf("file now holds %q, want it untouched", got)
	}
	assertOnlyFile(t, filepath.Dir(path), "keyring.json")

	// LoadOrCreate never replaces a file it cannot load.
	if _, _, err := LoadOrCreate(path); !errors.Is(err, ErrInvalidKeyring) {
		t.Errorf("LoadOrCreate of a malformed file: %v, want ErrInvalidKeyring", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "original" {
		t.Errorf("file now holds %q, want it untouched", got)
	}
}

func TestLoadRefusesInsecurePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits on Windows")
	}
	_, path := newTestKeyring(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeKeyring(data)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		mode fs.FileMode
		ok   bool
	}{
		{mode: 0o600, ok: true},
		{mode: 0o400, ok: true},
		{mode: 0o700, ok: true},
		{mode: 0o644},
		{mode: 0o640},
		{mode: 0o604},
		{mode: 0o660},
		{mode: 0o606},
		{mode: 0o610},
		{mode: 0o601},
		{mode: 0o666},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%04o", tt.mode), func(t *testing.T) {
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(path, 0o600)
			_, err := Load(path)
			if tt.ok {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInsecurePermissions) {
				t.Fatalf("Load: %v, want ErrInsecurePermissions", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%04o", tt.mode)) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file and its mode", err)
			}
			assertNoKey(t, "error", err.Error(), d.masters[1])
			assertNoKey(t, "error", err.Error(), d.indexKey)
			// The rotation functions refuse it as well, and change nothing.
			if _, err := AddVersion(path); !errors.Is(err, ErrInsecurePermissions) {
				t.Errorf("AddVersion: %v, want ErrInsecurePermissions", err)
			}
			if _, _, err := LoadOrCreate(path); !errors.Is(err, ErrInsecurePermissions) {
				t.Errorf("LoadOrCreate: %v, want ErrInsecurePermissions", err)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); !errors.Is(err, ErrInvalidKeyring) {
			t.Errorf("Load of a directory: %v, want ErrInvalidKeyring", err)
		}
	}
}

func TestParse(t *testing.T) {
	k, err := Parse(testKeyJSON(2, map[string]byte{"1": 1, "2": 2, "10": 10}, 0xAA))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := k.Current(); got != 2 {
		t.Errorf("Current() = %d, want 2", got)
	}
	if got := k.Versions(); !slices.Equal(got, []uint32{1, 2, 10}) {
		t.Errorf("Versions() = %v, want [1 2 10]", got)
	}
	// Known answer for the blind index with index key 0xAA x 32, computed
	// from the documented definition.
	mac := hmac.New(sha256.New, bytes.Repeat([]byte{0xAA}, keySize))
	mac.Write([]byte("email\x00company\x00tolvan@example.test"))
	want := "email." + hex.EncodeToString(mac.Sum(nil))
	if got := k.Index("email", "company", "tolvan@example.test"); got != want {
		t.Errorf("Index = %s, want %s", got, want)
	}
}

func TestParseInvalid(t *testing.T) {
	good := b64Key(7)
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 16))
	tests := []struct {
		name string
		json string
	}{
		{name: "empty", json: ``},
		{name: "not JSON", json: `current=1`},
		{name: "array", json: `[]`},
		{name: "truncated", json: `{"current": 1, "master_keys": {"1": "` + good + `"`},
		{name: "trailing data", json: `{"current": 1, "master_keys": {"1": "` + good + `"}, "index_key": "` + good + `"} {}`},
		{name: "unknown field", json: `{"current": 1, "master_keys": {"1": "` + good + `"}, "index_key": "` + good + `", "indexkey": "x"}`},
		{name: "no current", json: `{"master_keys": {"1": "` + good + `"}, "index_key": "` + good + `"}`},
		{name: "current 0", json: `{"current": 0, "master_keys": {"1": "` + good + `"}, "index_key": "` + good + `"}`},
		{name: "negative current", json: `{"current": -1, "master_keys": {"1": "` + good + `"}, "index_key": "` + good + `"}`},
		{name: "current as string", json: `{"current": "1", "master_keys": {"1": "` + good + `"}, "index_key": "` + good + `"}`},
		{name: "current not a version", json: `{"current": 2, "master_keys": {"1": "` + good + `"}, "index_key": "` + good + `"}`},
		{name: "no master keys", json: `{"current": 1, "master_keys": {}, "index_key": "` + good + `"}`},
		{name: "version 0", json: `{"current": 1, "master_keys": {"0": "` + good + `", "1": "` + good + `"}, "index_key": "` + good + `"}`},
		{name: "version with leading zero", json: `{"current": 1, "master_keys": {"01": "` + good + `", "1": "` + good + `"}, "index_key": "` + good + `"}`},
		{name: "version not a number", json: `{"current": 1, "master_keys": {"one": "` + good + `", "1": "` + good + `"}, "index_key": "` + good + `"}`},
		{name: "version too large", json: `{"current": 1, "master_keys": {"4294967296": "` + good + `", "1": "` + good + `"}, "index_key": "` + good + `"}`},
		{name: "master key short", json: `{"current": 1, "master_keys": {"1": "` + short + `"}, "index_key": "` + good + `"}`},
		{name: "master key not base64", json: `{"current": 1, "master_keys": {"1": "` + good[:40] + `!"}, "index_key": "` + good + `"}`},
		{name: "master key not a string", json: `{"current": 1, "master_keys": {"1": 5}, "index_key": "` + good + `"}`},
		{name: "master key unpadded", json: `{"current": 1, "master_keys": {"1": "` + strings.TrimRight(good, "=") + `"}, "index_key": "` + good + `"}`},
		{name: "no index key", json: `{"current": 1, "master_keys": {"1": "` + good + `"}}`},
		{name: "index key short", json: `{"current": 1, "master_keys": {"1": "` + good + `"}, "index_key": "` + short + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := Parse([]byte(tt.json))
			if !errors.Is(err, ErrInvalidKeyring) || k != nil {
				t.Fatalf("Parse = %v, %v; want nil, ErrInvalidKeyring", k, err)
			}
			assertNoKey(t, "error", err.Error(), bytes.Repeat([]byte{7}, keySize))
			assertNoKey(t, "error", err.Error(), bytes.Repeat([]byte{7}, 16))
			if strings.Contains(err.Error(), good[:16]) {
				t.Errorf("error %q quotes the key", err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	k1, path := newTestKeyring(t)
	dk, w1 := newTestDataKey(t, k1)
	aad := AAD("s1", "email")
	ct := mustSeal(t, dk, []byte("tolvan@example.test"), aad)
	if w1.Version != 1 {
		t.Fatalf("wrapped with version %d, want 1", w1.Version)
	}

	mustAddVersion(t, path, 2)
	assertMode(t, path, 0o600)
	assertOnlyFile(t, filepath.Dir(path), "keyring.json")
	k2 := mustLoad(t, path)
	if got := k2.Current(); got != 2 {
		t.Errorf("Current() after AddVersion = %d, want 2", got)
	}
	if got := k2.Versions(); !slices.Equal(got, []uint32{1, 2}) {
		t.Errorf("Versions() = %v, want [1 2]", got)
	}
	if a, b := k1.Index("email", "c", "v"), k2.Index("email", "c", "v"); a != b {
		t.Errorf("AddVersion changed the index key")
	}

	// Keys wrapped with version 1 still unwrap.
	old, err := k2.Unwrap(w1)
	if err != nil {
		t.Fatalf("Unwrap of a version 1 key after AddVersion: %v", err)
	}
	if got, err := old.OpenString(ct, aad); err != nil || got != "tolvan@example.test" {
		t.Fatalf("OpenString = %q, %v", got, err)
	}
	// New keys are wrapped with version 2.
	if _, w := newTestDataKey(t, k2); w.Version != 2 {
		t.Errorf("NewDataKey wrapped with version %d, want 2", w.Version)
	}

	// Rewrap moves the key to version 2 and keeps the data key.
	w2, changed, err := k2.Rewrap(w1)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if !changed || w2.Version != 2 {
		t.Fatalf("Rewrap = version %d, changed %v; want 2, true", w2.Version, changed)
	}
	if bytes.Equal(w2.Ciphertext, w1.Ciphertext) {
		t.Errorf("Rewrap left the ciphertext as it was")
	}
	raw1, err := k2.unwrapRaw(w1)
	if err != nil {
		t.Fatal(err)
	}
	raw2, err := k2.unwrapRaw(w2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw1, raw2) {
		t.Errorf("Rewrap changed the data key")
	}
	rewrapped, err := k2.Unwrap(w2)
	if err != nil {
		t.Fatalf("Unwrap of the rewrapped key: %v", err)
	}
	if got, err := rewrapped.OpenString(ct, aad); err != nil || got != "tolvan@example.test" {
		t.Errorf("OpenString with the rewrapped key = %q, %v", got, err)
	}
	// Already current: unchanged.
	w2again, changed, err := k2.Rewrap(w2)
	if err != nil || changed || w2again.Version != 2 || !bytes.Equal(w2again.Ciphertext, w2.Ciphertext) {
		t.Errorf("Rewrap of a current key = %+v, %v, %v; want it unchanged", w2again, changed, err)
	}
	// The old keyring (loaded before AddVersion) cannot rewrap to or read
	// version 2.
	if _, err := k1.Unwrap(w2); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("Unwrap of a version 2 key with the old keyring: %v, want ErrUnknownVersion", err)
	}

	// Remove version 1: keys still wrapped with it are lost, others fine.
	if err := RemoveVersion(path, 2); !errors.Is(err, ErrCurrentVersion) {
		t.Errorf("RemoveVersion of the current version: %v, want ErrCurrentVersion", err)
	}
	if err := RemoveVersion(path, 7); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("RemoveVersion of a version not in the file: %v, want ErrUnknownVersion", err)
	}
	if err := RemoveVersion(path, 1); err != nil {
		t.Fatalf("RemoveVersion(1): %v", err)
	}
	assertMode(t, path, 0o600)
	assertOnlyFile(t, filepath.Dir(path), "keyring.json")
	k3 := mustLoad(t, path)
	if got := k3.Versions(); !slices.Equal(got, []uint32{2}) {
		t.Errorf("Versions() after RemoveVersion(1) = %v, want [2]", got)
	}
	if _, err := k3.Unwrap(w1); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("Unwrap of a version 1 key after RemoveVersion(1): %v, want ErrUnknownVersion", err)
	}
	if _, _, err := k3.Rewrap(w1); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("Rewrap of a version 1 key after RemoveVersion(1): %v, want ErrUnknownVersion", err)
	}
	if _, err := k3.Unwrap(w2); err != nil {
		t.Errorf("Unwrap of the rewrapped key after RemoveVersion(1): %v", err)
	}
	if err := RemoveVersion(path, 1); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("second RemoveVersion(1): %v, want ErrUnknownVersion", err)
	}

	// Versions keep counting up.
	mustAddVersion(t, path, 3)
	if got := mustLoad(t, path).Versions(); !slices.Equal(got, []uint32{2, 3}) {
		t.Errorf("Versions() = %v, want [2 3]", got)
	}
}

func TestUnwrapRejectsForgedKeys(t *testing.T) {
	_, path := newTestKeyring(t)
	mustAddVersion(t, path, 2)
	k := mustLoad(t, path)
	_, w := newTestDataKey(t, k) // version 2

	relabelled := WrappedKey{Version: 1, Ciphertext: w.Ciphertext}
	flipped := WrappedKey{Version: 2, Ciphertext: bytes.Clone(w.Ciphertext)}
	flipped.Ciphertext[nonceSize] ^= 1
	tests := []struct {
		name string
		w    WrappedKey
		want error
	}{
		{name: "relabelled to another version", w: relabelled, want: ErrDecrypt},
		{name: "flipped bit", w: flipped, want: ErrDecrypt},
		{name: "truncated", w: WrappedKey{Version: 2, Ciphertext: w.Ciphertext[:wrappedSize-1]}, want: ErrDecrypt},
		{name: "extended", w: WrappedKey{Version: 2, Ciphertext: append(bytes.Clone(w.Ciphertext), 0)}, want: ErrDecrypt},
		{name: "empty", w: WrappedKey{Version: 2}, want: ErrDecrypt},
		{name: "version 0", w: WrappedKey{Version: 0, Ciphertext: w.Ciphertext}, want: ErrUnknownVersion},
		{name: "unknown version", w: WrappedKey{Version: 3, Ciphertext: w.Ciphertext}, want: ErrUnknownVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := k.Unwrap(tt.w); !errors.Is(err, tt.want) {
				t.Errorf("Unwrap: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	k, _ := newTestKeyring(t)
	other, _ := newTestKeyring(t)

	base := k.Index("identity_number", "company", "191212121212")
	if again := k.Index("identity_number", "company", "191212121212"); again != base {
		t.Errorf("Index is not deterministic: %s vs %s", base, again)
	}
	if !strings.HasPrefix(base, "identity_number.") || len(base) != len("identity_number.")+64 {
		t.Errorf("Index = %q, want identity_number. and 64 hex digits", base)
	}
	if _, err := hex.DecodeString(strings.TrimPrefix(base, "identity_number.")); err != nil {
		t.Errorf("Index suffix is not hex: %v", err)
	}
	if strings.Contains(base, "191212121212") {
		t.Errorf("Index contains the value")
	}

	tests := []struct {
		name string
		got  string
	}{
		{name: "other kind", got: k.Index("email", "company", "191212121212")},
		{name: "other controller", got: k.Index("identity_number", "other-company", "191212121212")},
		{name: "other value", got: k.Index("identity_number", "company", "191212121213")},
		{name: "other index key", got: other.Index("identity_number", "company", "191212121212")},
		{name: "controller/value boundary", got: k.Index("identity_number", "company\x00", "91212121212")},
	}
	seen := map[string]string{base: "base"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if prev, dup := seen[tt.got]; dup {
				t.Errorf("Index equals that of %s: %s", prev, tt.got)
			}
			seen[tt.got] = tt.name
			// The hash itself differs too, not just the "kind." prefix.
			if tt.got[strings.IndexByte(tt.got, '.')+1:] == base[len("identity_number."):] {
				t.Errorf("same HMAC as the base case")
			}
		})
	}
}

func TestZeroKeyring(t *testing.T) {
	for name, k := range map[string]*Keyring{"nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			if got := k.Current(); got != 0 {
				t.Errorf("Current() = %d, want 0", got)
			}
			if got := k.Versions(); got != nil {
				t.Errorf("Versions() = %v, want nil", got)
			}
			if _, _, err := k.NewDataKey(); !errors.Is(err, ErrInvalidKeyring) {
				t.Errorf("NewDataKey: %v, want ErrInvalidKeyring", err)
			}
			if _, err := k.Unwrap(WrappedKey{Version: 1}); !errors.Is(err, ErrInvalidKeyring) {
				t.Errorf("Unwrap: %v, want ErrInvalidKeyring", err)
			}
			if _, _, err := k.Rewrap(WrappedKey{Version: 1}); !errors.Is(err, ErrInvalidKeyring) {
				t.Errorf("Rewrap: %v, want ErrInvalidKeyring", err)
			}
			if got := fmt.Sprint(k); got != "Keyring(empty)" {
				t.Errorf("formats as %q", got)
			}
			defer func() {
				if recover() == nil {
					t.Errorf("Index did not panic")
				}
			}()
			k.Index("email", "c", "v")
		})
	}
}
