package backupfile

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/example/personaldata/store/envelope"
)

func keyring(t *testing.T, current uint32, versions ...uint32) *envelope.Keyring {
	t.Helper()
	key := func(seed byte) string {
		b := make([]byte, 32)
		for i := range b {
			b[i] = seed + byte(i)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	var ms []string
	for _, v := range versions {
		ms = append(ms, fmt.Sprintf("%q: %q", fmt.Sprint(v), key(byte(v))))
	}
	js := fmt.Sprintf(`{"current": %d, "master_keys": {%s}, "index_key": %q}`, current, strings.Join(ms, ","), key(99))
	k, err := envelope.Parse([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sealed(t *testing.T, ring *envelope.Keyring, h Header, payload []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := Write(&buf, ring, h, []Source{{Name: "db.sqlite", Size: int64(len(payload)), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(payload)), nil
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func read(ring *envelope.Keyring, file []byte) (Header, map[string][]byte, error) {
	got := map[string][]byte{}
	h, err := Open(bytes.NewReader(file), ring, "v1.0.0", func(_ Header, th *tar.Header, r io.Reader) error {
		b, err := io.ReadAll(r)
		got[th.Name] = b
		return err
	})
	return h, got, err
}

func TestRoundTripAndRefusals(t *testing.T) {
	ring := keyring(t, 2, 1, 2)
	payload := make([]byte, 300<<10)
	rand.Read(payload)
	h := Header{Created: time.Unix(1700000000, 0).UTC(), ServerVersion: "v1.0.0", Database: "pd", Counts: Counts{Subjects: 3}}
	file := sealed(t, ring, h, payload)

	got, files, err := read(ring, file)
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyVersion != 2 || got.Counts.Subjects != 3 || len(got.Files) != 1 || !bytes.Equal(files["db.sqlite"], payload) {
		t.Fatalf("header %+v, %d bytes", got, len(files["db.sqlite"]))
	}
	if bytes.Contains(file, payload[:64]) {
		t.Fatal("the payload is in clear")
	}

	flip := func(at int) []byte { b := bytes.Clone(file); b[at] ^= 1; return b }
	hdrEnd := bytes.IndexByte(file[len(Magic):], '\n') + len(Magic)
	for name, tc := range map[string]struct {
		file []byte
		ring *envelope.Keyring
		want error
	}{
		"a bit flipped in the data": {flip(len(file) - 100), ring, ErrCorrupt},
		"a bit flipped mid-file":    {flip(len(file) / 2), ring, ErrCorrupt},
		"truncated":                 {file[:len(file)-5000], ring, ErrCorrupt},
		"truncated at a chunk":      {file[:hdrEnd+200+64<<10], ring, ErrCorrupt},
		"header changed":            {bytes.Replace(file, []byte(`"subjects":3`), []byte(`"subjects":4`), 1), ring, ErrCorrupt},
		"not a backup":              {[]byte("hello\n"), ring, ErrNotBackup},
		"unknown key version":       {file, keyring(t, 1, 1), envelope.ErrUnknownVersion},
		"newer format":              {bytes.Replace(file, []byte(`"format":1`), []byte(`"format":2`), 1), ring, ErrNewer},
		"newer server":              {sealed(t, ring, Header{ServerVersion: "v9.0.0"}, payload), ring, ErrNewer},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := read(tc.ring, tc.file); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewer(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{{"v1.2.0", "v1.1.9", true}, {"v1.1.9", "v1.2.0", false}, {"v1.2.0", "v1.2.0", false}, {"devel", "v1.0.0", false}, {"v2.0.0", "devel-abc", false}} {
		if got := Newer(c.a, c.b); got != c.want {
			t.Errorf("Newer(%q, %q) = %v", c.a, c.b, got)
		}
	}
}
