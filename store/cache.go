package store

import (
	"context"
	"errors"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// docCache keeps subject documents as stored (raw BSON), by _id, on the
// embedded store: there one process owns the data directory (package
// embedded locks it) and makes every write, so a document it read or wrote
// stays what the store holds until it writes it again. A read it holds
// costs no store command. It is filled and changed only under the
// document's lock (Store.lock), which every write of the document holds,
// so a read cannot put back a version that a write replaced. Bounded by
// bytes, the least recently used out first. Not on MongoDB, where other
// replicas write too.
type docCache struct {
	mu       sync.Mutex
	lru      *simplelru.LRU[string, bson.Raw]
	bytes    int
	maxBytes int
}

// subjectCacheBytes bounds the subject cache: some 30,000 subjects of about
// 2 KB, the documents' size with a dozen changes and idempotency records.
const subjectCacheBytes = 64 << 20

func newDocCache(maxBytes int) *docCache {
	c := &docCache{maxBytes: maxBytes}
	lru, err := simplelru.NewLRU[string, bson.Raw](maxBytes/64, func(_ string, raw bson.Raw) { c.bytes -= len(raw) })
	if err != nil {
		panic(err) // only for a size below 1
	}
	c.lru = lru
	return c
}

func (c *docCache) get(id string) (bson.Raw, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Get(id)
}

// put keeps raw as the document with this _id; the caller holds its lock.
func (c *docCache) put(id string, raw bson.Raw) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(raw) > c.maxBytes/16 {
		c.lru.Remove(id) // one document may not crowd out the rest
		return
	}
	c.lru.Remove(id)
	c.lru.Add(id, raw)
	c.bytes += len(raw)
	for c.bytes > c.maxBytes {
		c.lru.RemoveOldest()
	}
}

// drop forgets the document with this _id; the caller holds its lock.
func (c *docCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Remove(id)
}

// cacheFor is the cache of c's documents, nil when c has none.
func (s *Store) cacheFor(c *mongo.Collection) *docCache {
	if c == s.subjects {
		return s.subjectCache
	}
	return nil
}

// read reads the document with this _id into out, from the cache when c
// has one and it holds the document. locked says the caller holds the
// document's lock (Store.lock); otherwise read takes it to fill the cache.
func (s *Store) read(ctx context.Context, c *mongo.Collection, id string, out any, locked bool) error {
	cache := s.cacheFor(c)
	if cache == nil {
		return get(ctx, c, id, out)
	}
	if raw, ok := cache.get(id); ok {
		return bson.Unmarshal(raw, out)
	}
	if !locked {
		unlock := s.lock(c.Name(), id)
		defer unlock()
		if raw, ok := cache.get(id); ok { // filled while we waited
			return bson.Unmarshal(raw, out)
		}
	}
	raw, err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return ErrNotFound
	}
	if err != nil {
		return classify(err)
	}
	// The driver's buffer is the cursor's: keep a copy of our own.
	raw = append(bson.Raw(nil), raw...)
	cache.put(id, raw)
	return bson.Unmarshal(raw, out)
}

// wrote tells c's cache, under the document's lock, what a write of it left
// in the store: doc as written when ok, else (a write that failed or found
// another version) nothing known, so the next read goes to the store.
func (s *Store) wrote(c *mongo.Collection, id string, doc any, ok bool) {
	cache := s.cacheFor(c)
	if cache == nil {
		return
	}
	if ok {
		if raw, err := bson.Marshal(doc); err == nil {
			cache.put(id, raw)
			return
		}
	}
	cache.drop(id)
}
