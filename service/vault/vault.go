package vault

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/envelope"
)

// Keys holds the master keys: the keyring, and the file it came from so that
// a master key version added by a rotation elsewhere is picked up.
type Keys struct {
	mu         sync.RWMutex
	ring       *envelope.Keyring
	path       string // empty when the keyring came from the environment
	lastReload time.Time
	// wrapped, when set, is the file's key service: the file is read
	// through it.
	wrapped envelope.Wrapper
}

// NewKeys wraps a keyring loaded from path ("" if not from a file).
func NewKeys(ring *envelope.Keyring, path string) *Keys {
	return &Keys{ring: ring, path: path, lastReload: time.Now()}
}

// NewWrappedKeys wraps a keyring loaded from a file that a key service
// wraps (envelope.WrappedFile).
func NewWrappedKeys(ring *envelope.Keyring, f envelope.WrappedFile) *Keys {
	return &Keys{ring: ring, path: f.Path, wrapped: f.Wrapper, lastReload: time.Now()}
}

// Ring is the keyring in use.
func (k *Keys) Ring() *envelope.Keyring {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.ring
}

// reload reads the keyring file again, at most once a second; it reports
// whether it did.
func (k *Keys) reload() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if time.Since(k.lastReload) < time.Second {
		return false
	}
	return k.load()
}

// ReloadNow reads the keyring file again, as a rotation starts.
func (k *Keys) ReloadNow() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.load()
}

// fresh reloads the keyring file when it may have changed (checked every
// half minute), so that a replica wraps new data keys under a master key
// version added elsewhere, and a finished rotation leaves none behind.
func (k *Keys) fresh() {
	k.mu.RLock()
	stale := k.path != "" && time.Since(k.lastReload) > 30*time.Second
	k.mu.RUnlock()
	if stale {
		k.reload()
	}
}

// load replaces the keyring with the file's; the caller holds k.mu.
func (k *Keys) load() bool {
	if k.path == "" {
		return false
	}
	k.lastReload = time.Now()
	var ring *envelope.Keyring
	var err error
	if k.wrapped != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ring, err = envelope.WrappedFile{Path: k.path, Wrapper: k.wrapped}.Load(ctx)
	} else {
		ring, err = envelope.Load(k.path)
	}
	if err != nil {
		return false // keep serving with the keys we have
	}
	k.ring = ring
	return true
}

// unwrap unwraps a data key, reloading the keyring once if the key was
// wrapped by a master key version this process does not know yet.
func (k *Keys) unwrap(w envelope.WrappedKey) (envelope.DataKey, error) {
	dk, err := k.Ring().Unwrap(w)
	if errors.Is(err, envelope.ErrUnknownVersion) && k.reload() {
		dk, err = k.Ring().Unwrap(w)
	}
	return dk, err
}

// Vault is the service's way to subjects and history in the store: it seals
// personal data before every write and opens it after every read, each
// field under the subject's own data key, bound to the subject and field.
type Vault struct {
	store *store.Store
	// Keys are the master keys that wrap the data keys.
	Keys  *Keys
	cache *keyCache
}

// New returns the vault of st, wrapping data keys with keys.
func New(st *store.Store, keys *Keys) *Vault {
	return &Vault{store: st, Keys: keys, cache: newKeyCache()}
}

// ErrNoDataKey means a subject's data key is gone: it was erased.
var ErrNoDataKey = errors.New("no data key")

// KeyMode says what DataKey does when the subject's key is not cached.
type KeyMode int

const (
	// ExistingKey reads the key; ErrNoDataKey when there is none.
	ExistingKey KeyMode = iota
	// ReadOrCreateKey reads the key and creates it when there is none.
	ReadOrCreateKey
	// NewSubjectKey creates the key of a subject being created, without
	// looking first (it cannot have one, unless a retry of the same create
	// stored it: then that one is read).
	NewSubjectKey
)

// DataKey returns the subject's data key, from the cache or the store; mode
// says whether to create it.
func (v *Vault) DataKey(ctx context.Context, subjectID string, mode KeyMode) (envelope.DataKey, error) {
	if dk, ok := v.cache.get(subjectID); ok {
		return dk, nil
	}
	if mode == NewSubjectKey {
		created, err := v.newDataKey(ctx, subjectID)
		if !errors.Is(err, store.ErrExists) {
			return created, err
		}
	}
	stored, err := v.store.GetDataKey(ctx, subjectID)
	if errors.Is(err, store.ErrNotFound) && mode == ReadOrCreateKey {
		created, cerr := v.newDataKey(ctx, subjectID)
		if !errors.Is(cerr, store.ErrExists) {
			return created, cerr
		}
		// A concurrent create of the same subject (a retry racing its
		// original) stored its key first: use that one.
		stored, err = v.store.GetDataKey(ctx, subjectID)
		if err != nil {
			return envelope.DataKey{}, err
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return envelope.DataKey{}, ErrNoDataKey
	}
	if err != nil {
		return envelope.DataKey{}, err
	}
	dk, err := v.Keys.unwrap(envelope.WrappedKey{Version: stored.KeyVersion, Ciphertext: stored.Wrapped})
	if err != nil {
		return envelope.DataKey{}, fmt.Errorf("unwrap data key: %w", err)
	}
	v.cache.put(subjectID, dk)
	return dk, nil
}

// newDataKey makes and stores a data key for a new subject; ErrExists means
// another request stored one first.
func (v *Vault) newDataKey(ctx context.Context, subjectID string) (envelope.DataKey, error) {
	v.Keys.fresh()
	dk, wrapped, err := v.Keys.Ring().NewDataKey()
	if err != nil {
		return envelope.DataKey{}, err
	}
	if err := v.store.InsertDataKey(ctx, &store.DataKey{ID: subjectID, KeyVersion: wrapped.Version, Wrapped: wrapped.Ciphertext}); err != nil {
		return envelope.DataKey{}, err
	}
	v.cache.put(subjectID, dk)
	return dk, nil
}

// NewKey is the outcome of NewSubjectKey.
type NewKey struct {
	created bool // this call stored it
	Err     error
}

// NewSubjectKey stores the data key of a subject being created, and caches
// it for seal. One stored already by an earlier attempt of the same create
// is not an error: seal reads it.
func (v *Vault) NewSubjectKey(ctx context.Context, subjectID string) NewKey {
	_, err := v.newDataKey(ctx, subjectID)
	if errors.Is(err, store.ErrExists) {
		return NewKey{}
	}
	return NewKey{created: err == nil, Err: err}
}

// DropNewKey destroys the key NewSubjectKey stored for a create that was
// refused, best effort: it would encrypt nothing.
func (v *Vault) DropNewKey(ctx context.Context, subjectID string, k NewKey) {
	if k.created {
		_ = v.Shred(context.WithoutCancel(ctx), subjectID)
	}
}

// seal encrypts sub.Person into sub.Sealed; an erased subject has neither.
// mode is NewSubjectKey for a subject being created.
func (v *Vault) seal(ctx context.Context, sub *store.Subject, mode KeyMode) error {
	if sub.Person == nil {
		sub.Sealed = nil
		return nil
	}
	dk, err := v.DataKey(ctx, sub.ID, mode)
	if err != nil {
		return err
	}
	p := sub.Person
	address, err := json.Marshal(p.Address)
	if err != nil {
		return err
	}
	sealed := &store.SealedPerson{}
	for _, f := range []struct {
		field string
		value string
		out   *[]byte
	}{
		{rules.FieldIdentityNumber, p.IdentityNumber, &sealed.IdentityNumber},
		{rules.FieldGivenName, p.GivenName, &sealed.GivenName},
		{rules.FieldFamilyName, p.FamilyName, &sealed.FamilyName},
		{rules.FieldEmail, p.Email, &sealed.Email},
		{rules.FieldPhone, p.Phone, &sealed.Phone},
		{rules.FieldPostalAddress, string(address), &sealed.Address},
	} {
		if f.value == "" {
			continue
		}
		if *f.out, err = dk.SealString(f.value, envelope.AAD("subject", sub.ID, f.field)); err != nil {
			return err
		}
	}
	sub.Sealed = sealed
	return nil
}

// open decrypts sub.Sealed into sub.Person.
func (v *Vault) open(ctx context.Context, sub *store.Subject) error {
	if sub.Sealed == nil {
		sub.Person = nil
		if sub.Erasure != nil {
			v.cache.drop(sub.ID) // erased, perhaps on another replica
		}
		return nil
	}
	dk, err := v.DataKey(ctx, sub.ID, ExistingKey)
	if err != nil {
		return err
	}
	p := &store.Person{}
	var address string
	for _, f := range []struct {
		field string
		in    []byte
		out   *string
	}{
		{rules.FieldIdentityNumber, sub.Sealed.IdentityNumber, &p.IdentityNumber},
		{rules.FieldGivenName, sub.Sealed.GivenName, &p.GivenName},
		{rules.FieldFamilyName, sub.Sealed.FamilyName, &p.FamilyName},
		{rules.FieldEmail, sub.Sealed.Email, &p.Email},
		{rules.FieldPhone, sub.Sealed.Phone, &p.Phone},
		{rules.FieldPostalAddress, sub.Sealed.Address, &address},
	} {
		if f.in == nil {
			continue
		}
		if *f.out, err = dk.OpenString(f.in, envelope.AAD("subject", sub.ID, f.field)); err != nil {
			return fmt.Errorf("open %s: %w", f.field, err)
		}
	}
	if address != "" {
		if err := json.Unmarshal([]byte(address), &p.Address); err != nil {
			return err
		}
	}
	sub.Person = p
	return nil
}

// GetSubject reads and opens a subject. A read that races an erasure or a
// purge may find the data key already destroyed: the data it read is gone
// by then, so it reads again.
func (v *Vault) GetSubject(ctx context.Context, id string) (*store.Subject, error) {
	for attempt := 0; ; attempt++ {
		sub, err := v.store.GetSubject(ctx, id)
		if err != nil {
			return nil, err
		}
		err = v.open(ctx, sub)
		if errors.Is(err, ErrNoDataKey) && attempt == 0 {
			continue
		}
		return sub, err
	}
}

// InsertSubject seals and stores a new subject, creating its data key.
func (v *Vault) InsertSubject(ctx context.Context, sub *store.Subject) error {
	if err := v.seal(ctx, sub, NewSubjectKey); err != nil {
		return err
	}
	return v.store.InsertSubject(ctx, sub)
}

// UpdateSubject is store.UpdateSubject with change seeing the opened subject.
func (v *Vault) UpdateSubject(ctx context.Context, id string, change func(*store.Subject) error) (*store.Subject, error) {
	return v.store.UpdateSubject(ctx, id, func(sub *store.Subject) error {
		if err := v.open(ctx, sub); err != nil {
			return err
		}
		if err := change(sub); err != nil {
			return err
		}
		return v.seal(ctx, sub, ReadOrCreateKey)
	})
}

// SubjectsOfController lists and opens a controller's subjects.
func (v *Vault) SubjectsOfController(ctx context.Context, controller, after string, limit int) ([]*store.Subject, error) {
	subs, err := v.store.SubjectsOfController(ctx, controller, after, limit)
	if err != nil {
		return nil, err
	}
	for _, sub := range subs {
		if err := v.open(ctx, sub); err != nil {
			return nil, err
		}
	}
	return subs, nil
}

// PutHistoryEntry seals and stores a history entry.
func (v *Vault) PutHistoryEntry(ctx context.Context, e *store.HistoryEntry) error {
	dk, err := v.DataKey(ctx, e.SubjectID, ExistingKey)
	if err != nil {
		return err
	}
	id := store.HistoryEntryID(e.SubjectID, e.Seq)
	sealed := &store.SealedHistory{}
	for _, f := range []struct {
		field, value string
		out          *[]byte
	}{{"title", e.Title, &sealed.Title}, {"body", e.Body, &sealed.Body}, {"reference", e.Reference, &sealed.Reference}} {
		if f.value == "" {
			continue
		}
		if *f.out, err = dk.SealString(f.value, envelope.AAD("history", id, f.field)); err != nil {
			return err
		}
	}
	e.Sealed = sealed
	return v.store.PutHistoryEntry(ctx, e)
}

// GetHistoryEntry reads and opens a history entry.
func (v *Vault) GetHistoryEntry(ctx context.Context, subjectID string, seq int64) (*store.HistoryEntry, error) {
	e, err := v.store.GetHistoryEntry(ctx, subjectID, seq)
	if err != nil {
		return nil, err
	}
	if e.Sealed == nil {
		return e, nil
	}
	dk, err := v.DataKey(ctx, subjectID, ExistingKey)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		field string
		in    []byte
		out   *string
	}{{"title", e.Sealed.Title, &e.Title}, {"body", e.Sealed.Body, &e.Body}, {"reference", e.Sealed.Reference, &e.Reference}} {
		if f.in == nil {
			continue
		}
		if *f.out, err = dk.OpenString(f.in, envelope.AAD("history", e.ID, f.field)); err != nil {
			return nil, fmt.Errorf("open history %s: %w", f.field, err)
		}
	}
	return e, nil
}

// Shred destroys a subject's data key: whatever of its data remains in any
// copy can no longer be decrypted.
func (v *Vault) Shred(ctx context.Context, subjectID string) error {
	v.cache.drop(subjectID)
	return v.store.DeleteDataKey(ctx, subjectID)
}

// keyCache keeps unwrapped data keys, so a read of a subject is one document
// read, not two. It is a bounded LRU with no expiry: a cached key is only
// ever used after the document it decrypts was read in the same call, and an
// erasure removes that data (or the subject's sealed fields) for every
// replica at once; so a key erased elsewhere that lives on here decrypts
// nothing. Erasing here drops it at once.
type keyCache struct {
	keys *lru.Cache[string, envelope.DataKey]
}

// keyCacheSize bounds the cache: 100,000 subjects' keys, a few hundred
// bytes each.
const keyCacheSize = 100_000

func newKeyCache() *keyCache {
	keys, err := lru.New[string, envelope.DataKey](keyCacheSize)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &keyCache{keys: keys}
}

func (c *keyCache) get(id string) (envelope.DataKey, bool) { return c.keys.Get(id) }

func (c *keyCache) put(id string, k envelope.DataKey) { c.keys.Add(id, k) }

func (c *keyCache) drop(id string) { c.keys.Remove(id) }

// OutboxContent is what a message holds, sealed at rest: what the mailer
// must send and no more.
type OutboxContent struct {
	Channel  string `json:"channel"`
	To       string `json:"to"`
	Language string `json:"language"`
	Subject  string `json:"subject"`
	Body     string `json:"body"`
}

// SealOutbox seals a message's content under its request's data key.
func (v *Vault) SealOutbox(ctx context.Context, r *store.RightsRequest, m *store.OutboxMessage, c OutboxContent) error {
	dk, err := v.DataKey(ctx, r.DataKeyID(), ExistingKey)
	if err != nil {
		return err
	}
	m.Sealed, err = SealContent(dk, m.ID, c)
	return err
}

// OpenOutbox opens a message's content: under its request's data key, or
// for a message that names its subject (a policy notice, a sign-in code)
// under the subject's. ErrNoDataKey means the key was
// destroyed (the subject erased): nothing is left to send.
func (v *Vault) OpenOutbox(ctx context.Context, m *store.OutboxMessage) (OutboxContent, error) {
	var c OutboxContent
	keyID := store.RequestDataKeyID(m.RequestID)
	switch {
	case m.SubjectID != "":
		keyID = m.SubjectID
	case m.Breach != "":
		keyID = store.BreachDataKeyID(m.Breach) // a customer's breach notice
	}
	dk, err := v.DataKey(ctx, keyID, ExistingKey)
	if err != nil {
		return c, err
	}
	b, err := dk.Open(m.Sealed, envelope.AAD("outbox", m.ID))
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(b, &c)
}

// SealContent seals a message's content under dk, bound to its id.
func SealContent(dk envelope.DataKey, id string, c OutboxContent) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return dk.Seal(b, envelope.AAD("outbox", id))
}

// SealedReplyName is the reply's name among a request's sealed values.
const SealedReplyName = "reply"

// requestSealed are the sealed fields of a request, by name.
func requestSealed(t *store.RequestText) map[string]*string {
	return map[string]*string{
		"identity_number": &t.IdentityNumber, "email": &t.Email, "words": &t.Words,
		"reply_email": &t.ReplyEmail, "explanation": &t.Explanation, "reason": &t.Reason,
		"contact_email": &t.ContactEmail, "contact_phone": &t.ContactPhone, "code_to": &t.CodeTo,
	}
}

// SealRequest seals r.Text under the request's own data key.
func (v *Vault) SealRequest(ctx context.Context, r *store.RightsRequest, mode KeyMode) error {
	dk, err := v.DataKey(ctx, r.DataKeyID(), mode)
	if err != nil {
		return err
	}
	reply, answered := r.Sealed[SealedReplyName] // sealed once, when answered
	r.Sealed = map[string][]byte{}
	if answered {
		r.Sealed[SealedReplyName] = reply
	}
	for name, value := range requestSealed(&r.Text) {
		if *value == "" {
			continue
		}
		if r.Sealed[name], err = dk.SealString(*value, envelope.AAD("rights_request", r.ID, name)); err != nil {
			return err
		}
	}
	return nil
}

// OpenRequest opens r.Sealed into r.Text.
func (v *Vault) OpenRequest(ctx context.Context, r *store.RightsRequest) error {
	r.Text = store.RequestText{}
	if len(r.Sealed) == 0 {
		return nil
	}
	dk, err := v.DataKey(ctx, r.DataKeyID(), ExistingKey)
	if err != nil {
		return err
	}
	for name, out := range requestSealed(&r.Text) {
		sealed, ok := r.Sealed[name]
		if !ok {
			continue
		}
		if *out, err = dk.OpenString(sealed, envelope.AAD("rights_request", r.ID, name)); err != nil {
			return fmt.Errorf("open rights request %s: %w", name, err)
		}
	}
	return nil
}
