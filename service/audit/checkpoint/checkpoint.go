// Package checkpoint holds what a verifier outside the server needs of the
// audit trail's Merkle tree: the signed checkpoint (the signed-note format
// of the Go checksum database and transparency-dev witnesses) and the hash
// of the leaf that stands for an event. It imports no store, so pdctl and
// witnesses can use it.
package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	tlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Hasher is the tree's hashing: RFC 6962 with SHA-256, as Certificate
// Transparency and the Go checksum database use.
var Hasher = rfc6962.DefaultHasher

// LeafHash is the hash of the leaf that stands for an event whose hash is
// eventHash (hex): the RFC 6962 leaf hash of its 32 bytes. The event's hash
// covers all its fields, its chain and seq and the hash before it in its
// chain, so the leaf commits to all of that.
func LeafHash(eventHash string) ([]byte, error) {
	b, err := hex.DecodeString(eventHash)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("event hash %q is not hex SHA-256", eventHash)
	}
	return Hasher.HashLeaf(b), nil
}

// Checkpoint is a signed statement of the tree: its origin, size and root
// hash, and when it was taken.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	Time   time.Time
	// Note is the signed note: the body (origin, size, base64 root, then
	// "time <RFC 3339>"), a blank line, the signature line.
	Note []byte
}

// timeLinePrefix starts the body's extension line that says when the
// checkpoint was taken.
const timeLinePrefix = "time "

// Errors of Open, which name what is wrong with a checkpoint.
var (
	ErrMalformed = errors.New("checkpoint is malformed")
	ErrKey       = errors.New("checkpoint is not signed by this log's key")
	ErrOrigin    = errors.New("checkpoint is of another log (origin)")
)

// Signer signs checkpoints with an Ed25519 key held in memory; its name is
// the log's origin.
type Signer struct {
	origin   string
	key      ed25519.PrivateKey
	verifier note.Verifier
	vkey     string
}

// NewSigner returns the signer of origin's checkpoints with key.
func NewSigner(origin string, key ed25519.PrivateKey) (*Signer, error) {
	if origin == "" || strings.ContainsAny(origin, "\n+ ") {
		return nil, errors.New("checkpoint: the origin must be a non-empty name with no spaces, '+' or newlines")
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("checkpoint: no Ed25519 signing key")
	}
	vkey, err := note.NewEd25519VerifierKey(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return &Signer{origin: origin, key: key, verifier: v, vkey: vkey}, nil
}

// Name, KeyHash and Sign make a Signer a note.Signer.
func (s *Signer) Name() string                    { return s.origin }
func (s *Signer) KeyHash() uint32                 { return s.verifier.KeyHash() }
func (s *Signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// VerifierKey is the public key that checks the checkpoints, in the note
// verifier-key form (<origin>+<hash>+<key>) that pdctl and witnesses take.
func (s *Signer) VerifierKey() string { return s.vkey }

// Verifier checks the signer's notes.
func (s *Signer) Verifier() note.Verifier { return s.verifier }

// Make signs a checkpoint of the tree of size leaves with root hash root,
// taken at t.
func (s *Signer) Make(size uint64, root []byte, t time.Time) (*Checkpoint, error) {
	t = t.UTC()
	body := append(tlog.Checkpoint{Origin: s.origin, Size: size, Hash: root}.Marshal(),
		timeLinePrefix+t.Format(time.RFC3339Nano)+"\n"...)
	signed, err := note.Sign(&note.Note{Text: string(body)}, s)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return &Checkpoint{Origin: s.origin, Size: size, Root: root, Time: t, Note: signed}, nil
}

// Open checks a signed checkpoint against a verifier key (the note form)
// and an origin and returns what it says; its errors are ErrMalformed,
// ErrKey or ErrOrigin, with what is wrong.
func Open(signed []byte, origin, verifierKey string) (*Checkpoint, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: the verifier key: %w", err)
	}
	return OpenWith(signed, origin, v)
}

// OpenWith is Open with a verifier.
func OpenWith(signed []byte, origin string, v note.Verifier) (*Checkpoint, error) {
	// What it says first, so that a checkpoint of another log is named as
	// such rather than as badly signed.
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return nil, fmt.Errorf("%w: no signature lines after a blank line", ErrMalformed)
	}
	var cp tlog.Checkpoint
	rest, err := cp.Unmarshal(signed[:i+1])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if cp.Origin != origin {
		return nil, fmt.Errorf("%w: %q, this log's is %q", ErrOrigin, cp.Origin, origin)
	}
	if len(cp.Hash) != 32 {
		return nil, fmt.Errorf("%w: the root hash is %d bytes, not 32", ErrMalformed, len(cp.Hash))
	}
	out := &Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, Note: signed}
	line, _, _ := strings.Cut(string(rest), "\n")
	if t, ok := strings.CutPrefix(line, timeLinePrefix); ok {
		if out.Time, err = time.Parse(time.RFC3339Nano, t); err != nil {
			return nil, fmt.Errorf("%w: the time line is not RFC 3339", ErrMalformed)
		}
	}
	_, err = note.Open(signed, note.VerifierList(v))
	var unknown *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unknown), errors.As(err, &invalid):
		return nil, ErrKey
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return out, nil
}
