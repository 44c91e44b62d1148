package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// newTestKeyring creates a keyring file in a fresh temporary directory and
// returns the keyring and the file's path.
func newTestKeyring(t testing.TB) (*Keyring, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys", "keyring.json")
	k, created, err := LoadOrCreate(path)
	if err != nil {
		t.Fatalf("LoadOrCreate: %v", err)
	}
	if !created {
		t.Fatalf("LoadOrCreate of a new path: created = false")
	}
	return k, path
}

// newTestDataKey returns a fresh data key of k and its wrapped form.
func newTestDataKey(t testing.TB, k *Keyring) (DataKey, WrappedKey) {
	t.Helper()
	dk, w, err := k.NewDataKey()
	if err != nil {
		t.Fatalf("NewDataKey: %v", err)
	}
	return dk, w
}

// mustSeal seals plaintext or fails the test.
func mustSeal(t testing.TB, dk DataKey, plaintext, aad []byte) []byte {
	t.Helper()
	ct, err := dk.Seal(plaintext, aad)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return ct
}

func TestSealOpenRoundTrip(t *testing.T) {
	k, _ := newTestKeyring(t)
	dk, _ := newTestDataKey(t, k)

	tests := []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{name: "empty plaintext", plaintext: []byte{}, aad: AAD("s1", "email")},
		{name: "nil plaintext nil aad", plaintext: nil, aad: nil},
		{name: "e-mail", plaintext: []byte("tolvan@example.test"), aad: AAD("s1", "email")},
		{name: "non-ascii", plaintext: []byte("Åsa Öberg, Storgatan 1, 123 45 Ärla"), aad: AAD("s1", "postal_address")},
		{name: "binary with NULs", plaintext: []byte{0, 1, 2, 0, 255}, aad: []byte{0}},
		{name: "100 bytes", plaintext: bytes.Repeat([]byte("x"), 100), aad: AAD("s1", "note")},
		{name: "1 MiB", plaintext: bytes.Repeat([]byte("0123456789abcdef"), 1<<16), aad: AAD("s1", "history")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := mustSeal(t, dk, tt.plaintext, tt.aad)
			if got, want := len(ct), len(tt.plaintext)+nonceSize+tagSize; got != want {
				t.Errorf("len(ciphertext) = %d, want %d", got, want)
			}
			if len(tt.plaintext) >= 8 && bytes.Contains(ct, tt.plaintext[:8]) {
				t.Errorf("ciphertext contains the plaintext")
			}
			got, err := dk.Open(ct, tt.aad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Open = %q, want %q", got, tt.plaintext)
			}
			// A fresh nonce every time: sealing again gives another ciphertext.
			if ct2 := mustSeal(t, dk, tt.plaintext, tt.aad); bytes.Equal(ct, ct2) {
				t.Errorf("two Seals of the same plaintext gave the same ciphertext")
			}
		})
	}
}

func TestSealOpenString(t *testing.T) {
	k, _ := newTestKeyring(t)
	dk, _ := newTestDataKey(t, k)
	aad := AAD("s1", "given_name")
	ct, err := dk.SealString("Tolvan", aad)
	if err != nil {
		t.Fatalf("SealString: %v", err)
	}
	got, err := dk.OpenString(ct, aad)
	if err != nil || got != "Tolvan" {
		t.Fatalf("OpenString = %q, %v; want %q, nil", got, err, "Tolvan")
	}
	if got, err := dk.OpenString(ct, AAD("s1", "family_name")); !errors.Is(err, ErrDecrypt) || got != "" {
		t.Fatalf("OpenString with wrong aad = %q, %v; want \"\", ErrDecrypt", got, err)
	}
}

func TestOpenTamperedIsErrDecrypt(t *testing.T) {
	k, _ := newTestKeyring(t)
	dk, _ := newTestDataKey(t, k)
	aad := AAD("s1", "identity_number")
	ct := mustSeal(t, dk, []byte("191212121212"), aad)

	// Every bit of every byte: nonce, ciphertext and tag alike.
	for i := range ct {
		for bit := range 8 {
			bad := bytes.Clone(ct)
			bad[i] ^= 1 << bit
			got, err := dk.Open(bad, aad)
			if !errors.Is(err, ErrDecrypt) || got != nil {
				t.Fatalf("Open with byte %d bit %d flipped = %q, %v; want nil, ErrDecrypt", i, bit, got, err)
			}
		}
	}
	// Every truncation, and an extension.
	for n := range len(ct) {
		if got, err := dk.Open(ct[:n], aad); !errors.Is(err, ErrDecrypt) || got != nil {
			t.Fatalf("Open of the first %d bytes = %q, %v; want nil, ErrDecrypt", n, got, err)
		}
	}
	if _, err := dk.Open(append(bytes.Clone(ct), 0), aad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open with a byte appended: %v, want ErrDecrypt", err)
	}
	// The original still opens: nothing above modified it.
	if _, err := dk.Open(ct, aad); err != nil {
		t.Fatalf("Open of the original: %v", err)
	}
}

func TestOpenWrongAADIsErrDecrypt(t *testing.T) {
	k, _ := newTestKeyring(t)
	dk, _ := newTestDataKey(t, k)
	sealedWith := AAD("subject-1", "email")
	ct := mustSeal(t, dk, []byte("tolvan@example.test"), sealedWith)

	tests := []struct {
		name string
		aad  []byte
	}{
		{name: "other field", aad: AAD("subject-1", "phone")},
		{name: "other subject", aad: AAD("subject-2", "email")},
		{name: "shifted boundary", aad: AAD("subject-1e", "mail")},
		{name: "plain concatenation", aad: []byte("subject-1email")},
		{name: "extra part", aad: AAD("subject-1", "email", "")},
		{name: "no aad", aad: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := dk.Open(ct, tt.aad); !errors.Is(err, ErrDecrypt) || got != nil {
				t.Fatalf("Open = %q, %v; want nil, ErrDecrypt", got, err)
			}
		})
	}
}

func TestOpenWrongKeyIsErrDecrypt(t *testing.T) {
	k, _ := newTestKeyring(t)
	otherRing, _ := newTestKeyring(t)
	dk, _ := newTestDataKey(t, k)
	aad := AAD("s1", "email")
	ct := mustSeal(t, dk, []byte("tolvan@example.test"), aad)

	sameRing, _ := newTestDataKey(t, k)
	otherRingKey, _ := newTestDataKey(t, otherRing)
	for name, wrong := range map[string]DataKey{"same keyring": sameRing, "other keyring": otherRingKey} {
		t.Run(name, func(t *testing.T) {
			if got, err := wrong.Open(ct, aad); !errors.Is(err, ErrDecrypt) || got != nil {
				t.Fatalf("Open = %q, %v; want nil, ErrDecrypt", got, err)
			}
		})
	}
}

func TestZeroDataKey(t *testing.T) {
	var dk DataKey
	if _, err := dk.Seal([]byte("x"), nil); !errors.Is(err, ErrNoDataKey) {
		t.Errorf("Seal on zero DataKey: %v, want ErrNoDataKey", err)
	}
	if _, err := dk.Open(make([]byte, 64), nil); !errors.Is(err, ErrNoDataKey) {
		t.Errorf("Open on zero DataKey: %v, want ErrNoDataKey", err)
	}
	if _, err := dk.SealString("x", nil); !errors.Is(err, ErrNoDataKey) {
		t.Errorf("SealString on zero DataKey: %v, want ErrNoDataKey", err)
	}
}

func TestDataKeyConcurrentUse(t *testing.T) {
	k, _ := newTestKeyring(t)
	dk, _ := newTestDataKey(t, k)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			aad := AAD("s1", fmt.Sprint("field", i))
			for j := range 100 {
				pt := fmt.Appendf(nil, "value %d/%d", i, j)
				ct, err := dk.Seal(pt, aad)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := dk.Open(ct, aad)
				if err != nil || !bytes.Equal(got, pt) {
					t.Errorf("Open = %q, %v; want %q", got, err, pt)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestAAD(t *testing.T) {
	lists := [][]string{
		nil,
		{""},
		{"", ""},
		{"ab", "c"},
		{"a", "bc"},
		{"abc"},
		{"s1", "email"},
		{"s1", "email", ""},
		{"s1\x00", "email"},
		{"s1", "\x00email"},
	}
	seen := map[string][]string{}
	for _, parts := range lists {
		got := string(AAD(parts...))
		if prev, dup := seen[got]; dup {
			t.Errorf("AAD(%q) = AAD(%q)", parts, prev)
		}
		seen[got] = parts
		if again := string(AAD(parts...)); again != got {
			t.Errorf("AAD(%q) is not deterministic", parts)
		}
	}
}

func TestWrappedKeyBinary(t *testing.T) {
	k, _ := newTestKeyring(t)
	_, w := newTestDataKey(t, k)
	b, err := w.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	if len(b) != 4+wrappedSize {
		t.Errorf("len(MarshalBinary) = %d, want %d", len(b), 4+wrappedSize)
	}
	var got WrappedKey
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary: %v", err)
	}
	if got.Version != w.Version || !bytes.Equal(got.Ciphertext, w.Ciphertext) {
		t.Errorf("round trip = %+v, want %+v", got, w)
	}
	b[5] ^= 1 // the decoded copy must not alias the input
	if !bytes.Equal(got.Ciphertext, w.Ciphertext) {
		t.Errorf("UnmarshalBinary kept a reference to its input")
	}
	for _, short := range [][]byte{nil, {0, 0, 0, 1}} {
		if err := new(WrappedKey).UnmarshalBinary(short); !errors.Is(err, ErrInvalidWrappedKey) {
			t.Errorf("UnmarshalBinary(%x): %v, want ErrInvalidWrappedKey", short, err)
		}
	}
}

// encodings returns the forms in which key bytes could show up in text.
func encodings(key []byte) []string {
	return []string{
		string(key),
		hex.EncodeToString(key),
		strings.ToUpper(hex.EncodeToString(key)),
		hex.EncodeToString(key[:8]), // even a prefix is a leak
		base64.StdEncoding.EncodeToString(key),
		base64.RawStdEncoding.EncodeToString(key),
		base64.URLEncoding.EncodeToString(key),
		base64.RawURLEncoding.EncodeToString(key),
		strings.Trim(fmt.Sprint(key), "[]"), // decimal bytes: 12 34 56 ...
		strings.Trim(fmt.Sprint(key[:8]), "[]"),
		strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%#v", key), "[]byte{"), "}"), // 0xc, 0x22, ...
		// The AES key schedule starts with the key as 32-bit words.
		fmt.Sprint(binary.BigEndian.Uint32(key), binary.BigEndian.Uint32(key[4:])),
		fmt.Sprint(binary.LittleEndian.Uint32(key), binary.LittleEndian.Uint32(key[4:])),
		fmt.Sprintf("%x %x", binary.BigEndian.Uint32(key), binary.BigEndian.Uint32(key[4:])),
	}
}

// assertNoKey fails the test if s contains any encoding of key.
func assertNoKey(t *testing.T, what, s string, key []byte) {
	t.Helper()
	for _, enc := range encodings(key) {
		if strings.Contains(s, enc) {
			t.Errorf("%s contains key material (%q):\n%s", what, enc, s)
			return
		}
	}
}

func TestFormattingNeverPrintsKeys(t *testing.T) {
	k, path := newTestKeyring(t)
	dk, w := newTestDataKey(t, k)
	raw, err := k.unwrapRaw(w)
	if err != nil {
		t.Fatal(err)
	}
	d, err := readKeyringFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := [][]byte{raw, d.indexKey, d.masters[1]}

	type holder struct {
		Exported   DataKey
		unexported DataKey
		ring       Keyring
		ringPtr    *Keyring
	}
	values := map[string]any{
		"DataKey":                 dk,
		"*DataKey":                &dk,
		"*Keyring":                k,
		"Keyring":                 *k,
		"struct holding the keys": holder{Exported: dk, unexported: dk, ring: *k, ringPtr: k},
		"*struct":                 &holder{Exported: dk, unexported: dk, ring: *k, ringPtr: k},
		"slice":                   []DataKey{dk},
		"map":                     map[string]DataKey{"s1": dk},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%b", "%T %p", "% x", "%#x", "%100v"}
	for name, v := range values {
		for _, verb := range verbs {
			s := fmt.Sprintf(verb, v)
			for _, key := range keys {
				assertNoKey(t, fmt.Sprintf("Sprintf(%q, %s)", verb, name), s, key)
			}
		}
	}
	if got := fmt.Sprintf("%v %+v %#v %s", dk, dk, dk, dk); got != "DataKey(redacted) DataKey(redacted) DataKey(redacted) DataKey(redacted)" {
		t.Errorf("DataKey formats as %q", got)
	}
	if got, want := dk.String(), "DataKey(redacted)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := dk.GoString(), "DataKey(redacted)"; got != want {
		t.Errorf("GoString() = %q, want %q", got, want)
	}
	if got, want := fmt.Sprint(k), "Keyring(current=1, versions=[1])"; got != want {
		t.Errorf("Keyring formats as %q, want %q", got, want)
	}

	// Structured logging, both handlers.
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		slog.New(h).Info("keys", "dk", dk, "ring", k, "holder", holder{Exported: dk, unexported: dk})
	}
	for _, key := range keys {
		assertNoKey(t, "slog output", buf.String(), key)
	}
}

func BenchmarkSealOpen100(b *testing.B) {
	k, _ := newTestKeyring(b)
	dk, _ := newTestDataKey(b, k)
	plaintext := bytes.Repeat([]byte("p"), 100)
	aad := AAD("tjt2c3fkizqe4si7f4lrxn53vy", "postal_address")
	b.SetBytes(int64(len(plaintext)))
	b.ReportAllocs()
	for b.Loop() {
		ct, err := dk.Seal(plaintext, aad)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dk.Open(ct, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewDataKeyUnwrap(b *testing.B) {
	k, _ := newTestKeyring(b)
	b.ReportAllocs()
	for b.Loop() {
		_, w, err := k.NewDataKey()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := k.Unwrap(w); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIndex(b *testing.B) {
	k, _ := newTestKeyring(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = k.Index("identity_number", "company", "191212121212")
	}
}
