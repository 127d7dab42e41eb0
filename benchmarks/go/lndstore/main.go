// Command lndstore is the Go/bbolt baseline of mcstore's benchmarks (case 9): a mission control
// store shaped like lnd's (routing/missioncontrol_store.go), written from its published design.
//
// What it shares with lnd's store: results are queued by AddResult (a mutex and a list, then a
// condition variable's Signal); a flush (storeResults) takes the whole queue, drops the results
// whose 49-byte key is already stored or already in the batch, picks the oldest stored keys to
// prune beyond maxRecords (0: no cap), and writes the batch and the prune in one bbolt Update,
// in the bucket "missioncontrol-results" / "default". Keys and values are lnd's (the 49-byte
// key: reply time, attempt id, source pubkey; the value: a TLV stream, BigSize types and
// lengths, with the route and the failure as nested streams), as mcstore's codec writes them:
// the benchmarks check that the bytes stored here equal mcstore's, record for record. bbolt is
// opened with lnd's default options: a map freelist, the freelist not synced, and NoSync
// false, so that every commit is fdatasync'ed (twice: its pages, then its meta page).
//
// Where it differs from lnd: newly stored keys join the dedup map (lnd forgets them, a bug that
// mcstore does not copy either), the dedup loop visits the whole batch, and values are written
// into a byte buffer directly instead of through lnd's tlv package; none of it makes the
// baseline slower than lnd's store.
//
// Protocol: `lndstore -db PATH -max-records N`, then commands on stdin, one reply per command on
// stdout as one line of JSON ({"error": "..."} on failure):
//
//	hello                  -> {"go": version, "loaded": keys at open, bbolt options}
//	run BATCH COUNT        -> COUNT result lines follow (format below); they are parsed first,
//	                          then each run of BATCH results is built into structs, added with
//	                          AddResult and flushed with storeResults, timed from the first
//	                          build to the flush's return: {"flush_ns": [...], "stored": ...}
//	digest                 -> {"count": n, "sha256": hex} over the bucket in key order, of each
//	                          record's key, its value's length (u32 big-endian) and its value
//
// A result line: `id time_fwd_ns time_reply_ns source_hex total_msat HOPS` then HOPS times
// `channel_id pubkey_hex amount_msat`, then the outcome: `S` (success), `U` (failed, source
// unknown) or `F index message_hex` (message_hex `-` for none).
package main

import (
	"bufio"
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	resultsBucket   = []byte("missioncontrol-results")
	namespaceBucket = []byte("default")
	byteOrder       = binary.BigEndian
)

const keyLen = 8 + 8 + 33

// The model: what lnd's mission control keeps of a payment attempt.

type mcHop struct {
	channelID        uint64
	pubKey           [33]byte
	amtToFwd         uint64
	hasBlindingPoint bool
	hasCustomRecords bool
}

type mcRoute struct {
	sourcePubKey [33]byte
	totalAmount  uint64
	hops         []*mcHop
}

type paymentFailure struct {
	sourceIdx *uint8 // nil: the source is unknown
	message   []byte // the raw BOLT 4 failure message; nil: none
}

type paymentResult struct {
	id        uint64
	timeFwd   uint64
	timeReply uint64
	route     *mcRoute
	failure   *paymentFailure // nil: a success
}

// The plain values a result is built from, parsed before any timing starts (the Python side
// builds its results from tuples of plain values made beforehand, too).

type hopSpec struct {
	channelID uint64
	pubKey    [33]byte
	amount    uint64
}

type resultSpec struct {
	id, timeFwd, timeReply uint64
	source                 [33]byte
	total                  uint64
	hops                   []hopSpec
	outcome                byte // 'S', 'U' or 'F'
	sourceIdx              uint8
	message                []byte
}

// build makes the structs of one result, as a caller of lnd's store does for each attempt.
func build(s *resultSpec) *paymentResult {
	hops := make([]*mcHop, len(s.hops))
	for i := range s.hops {
		h := &s.hops[i]
		hops[i] = &mcHop{channelID: h.channelID, pubKey: h.pubKey, amtToFwd: h.amount}
	}
	r := &paymentResult{
		id:        s.id,
		timeFwd:   s.timeFwd,
		timeReply: s.timeReply,
		route:     &mcRoute{sourcePubKey: s.source, totalAmount: s.total, hops: hops},
	}
	switch s.outcome {
	case 'U':
		r.failure = &paymentFailure{}
	case 'F':
		idx := s.sourceIdx
		r.failure = &paymentFailure{sourceIdx: &idx, message: s.message}
	}
	return r
}

// The encoding: the 49-byte key and the TLV value.

func resultKey(r *paymentResult) []byte {
	var k [keyLen]byte
	byteOrder.PutUint64(k[0:], r.timeReply)
	byteOrder.PutUint64(k[8:], r.id)
	copy(k[16:], r.route.sourcePubKey[:])
	return k[:]
}

// putBigSize writes x as a BOLT 1 BigSize.
func putBigSize(b *bytes.Buffer, x uint64) {
	var buf [9]byte
	switch {
	case x < 0xfd:
		b.WriteByte(byte(x))
	case x <= 0xffff:
		buf[0] = 0xfd
		byteOrder.PutUint16(buf[1:], uint16(x))
		b.Write(buf[:3])
	case x <= 0xffffffff:
		buf[0] = 0xfe
		byteOrder.PutUint32(buf[1:], uint32(x))
		b.Write(buf[:5])
	default:
		buf[0] = 0xff
		byteOrder.PutUint64(buf[1:], x)
		b.Write(buf[:9])
	}
}

func bigSizeLen(x uint64) uint64 {
	switch {
	case x < 0xfd:
		return 1
	case x <= 0xffff:
		return 3
	case x <= 0xffffffff:
		return 5
	}
	return 9
}

func putRecord(b *bytes.Buffer, typ uint64, value []byte) {
	putBigSize(b, typ)
	putBigSize(b, uint64(len(value)))
	b.Write(value)
}

func putU64Record(b *bytes.Buffer, typ uint64, x uint64) {
	var buf [8]byte
	byteOrder.PutUint64(buf[:], x)
	putRecord(b, typ, buf[:])
}

func putBigSizeRecord(b *bytes.Buffer, typ uint64, x uint64) {
	putBigSize(b, typ)
	putBigSize(b, bigSizeLen(x))
	putBigSize(b, x)
}

func serializeHop(b *bytes.Buffer, h *mcHop) {
	putU64Record(b, 0, h.channelID)
	putRecord(b, 1, h.pubKey[:])
	putBigSizeRecord(b, 2, h.amtToFwd)
	if h.hasBlindingPoint {
		putRecord(b, 3, nil)
	}
	if h.hasCustomRecords {
		putRecord(b, 4, nil)
	}
}

func serializeRoute(b *bytes.Buffer, r *mcRoute) {
	putRecord(b, 0, r.sourcePubKey[:])
	putBigSizeRecord(b, 1, r.totalAmount)
	// The hops record: a count, then each hop's stream behind its length.
	var hops, one bytes.Buffer
	putBigSize(&hops, uint64(len(r.hops)))
	for _, h := range r.hops {
		one.Reset()
		serializeHop(&one, h)
		putBigSize(&hops, uint64(one.Len()))
		hops.Write(one.Bytes())
	}
	putRecord(b, 2, hops.Bytes())
}

func serializeFailure(b *bytes.Buffer, f *paymentFailure) {
	if f.sourceIdx != nil {
		putRecord(b, 0, []byte{*f.sourceIdx})
	}
	if f.message != nil {
		putRecord(b, 1, f.message)
	}
}

func serializeResult(r *paymentResult) (key, value []byte) {
	var b, nested bytes.Buffer
	putU64Record(&b, 0, r.timeFwd)
	putU64Record(&b, 1, r.timeReply)
	serializeRoute(&nested, r.route)
	putRecord(&b, 2, nested.Bytes())
	if r.failure != nil {
		nested.Reset()
		serializeFailure(&nested, r.failure)
		putRecord(&b, 3, nested.Bytes())
	}
	return resultKey(r), b.Bytes()
}

// The store.

type store struct {
	db         *bolt.DB
	maxRecords int

	queueCond *sync.Cond
	queue     *list.List // pending *paymentResult, guarded by queueCond.L

	keys    *list.List // stored keys (string), oldest first
	keysMap map[string]struct{}
}

// update runs f on the namespace's bucket in one read-write transaction, creating the buckets
// if needed, as lnd's namespaced store does on every update.
func (s *store) update(f func(b *bolt.Bucket) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists(resultsBucket)
		if err != nil {
			return err
		}
		b, err := top.CreateBucketIfNotExists(namespaceBucket)
		if err != nil {
			return err
		}
		return f(b)
	})
}

func openStore(path string, maxRecords int) (*store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        10 * time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, err
	}
	s := &store{
		db:         db,
		maxRecords: maxRecords,
		queueCond:  sync.NewCond(&sync.Mutex{}),
		queue:      list.New(),
		keys:       list.New(),
		keysMap:    make(map[string]struct{}),
	}
	// Load every stored key, so that a flush needs no cursor to dedup and prune.
	err = s.update(func(b *bolt.Bucket) error {
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			s.keys.PushBack(string(k))
			s.keysMap[string(k)] = struct{}{}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// AddResult queues a result for the next flush; it never touches the database.
func (s *store) AddResult(r *paymentResult) {
	s.queueCond.L.Lock()
	s.queue.PushBack(r)
	s.queueCond.L.Unlock()
	s.queueCond.Signal()
}

// storeResults makes every queued result durable in one transaction, pruning the oldest.
func (s *store) storeResults() (stored, pruned int, err error) {
	s.queueCond.L.Lock()
	batch := s.queue
	if batch.Len() == 0 {
		s.queueCond.L.Unlock()
		return 0, 0, nil
	}
	s.queue = list.New()
	s.queueCond.L.Unlock()

	newKeys := make(map[string]struct{}, batch.Len())
	for e := batch.Front(); e != nil; {
		next := e.Next()
		key := string(resultKey(e.Value.(*paymentResult)))
		_, isStored := s.keysMap[key]
		_, isNew := newKeys[key]
		if isStored || isNew {
			batch.Remove(e)
		} else {
			newKeys[key] = struct{}{}
		}
		e = next
	}

	// Beyond maxRecords, prune the oldest stored keys; if the batch alone is over the cap,
	// its first results are not written at all.
	var delKeys []string
	toDelete := s.keys.Len() + len(newKeys) - s.maxRecords
	if s.maxRecords > 0 && toDelete > 0 {
		delKeys = make([]string, 0, toDelete)
		for e := s.keys.Front(); e != nil && len(delKeys) < toDelete; e = e.Next() {
			delKeys = append(delKeys, e.Value.(string))
		}
		for extra := toDelete - len(delKeys); extra > 0 && batch.Front() != nil; extra-- {
			e := batch.Front()
			delete(newKeys, string(resultKey(e.Value.(*paymentResult))))
			batch.Remove(e)
		}
	}

	err = s.update(func(b *bolt.Bucket) error {
		for e := batch.Front(); e != nil; e = e.Next() {
			k, v := serializeResult(e.Value.(*paymentResult))
			if err := b.Put(k, v); err != nil {
				return err
			}
			stored++
		}
		for _, k := range delKeys {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
			pruned++
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}

	for _, k := range delKeys {
		delete(s.keysMap, k)
		s.keys.Remove(s.keys.Front())
	}
	for e := batch.Front(); e != nil; e = e.Next() {
		key := string(resultKey(e.Value.(*paymentResult)))
		s.keys.PushBack(key)
		s.keysMap[key] = struct{}{}
	}
	return stored, pruned, nil
}

// The commands.

func parseU64(field string) (uint64, error) {
	return strconv.ParseUint(field, 10, 64)
}

func parsePubKey(field string) (pk [33]byte, err error) {
	raw, err := hex.DecodeString(field)
	if err != nil {
		return pk, err
	}
	if len(raw) != 33 {
		return pk, fmt.Errorf("pubkey %q is not 33 bytes", field)
	}
	copy(pk[:], raw)
	return pk, nil
}

func parseSpec(line string) (*resultSpec, error) {
	f := strings.Fields(line)
	bad := func(err error) (*resultSpec, error) {
		return nil, fmt.Errorf("result line %q: %v", line, err)
	}
	if len(f) < 7 {
		return bad(errors.New("too few fields"))
	}
	var s resultSpec
	var err error
	for i, dst := range []*uint64{&s.id, &s.timeFwd, &s.timeReply} {
		if *dst, err = parseU64(f[i]); err != nil {
			return bad(err)
		}
	}
	if s.source, err = parsePubKey(f[3]); err != nil {
		return bad(err)
	}
	if s.total, err = parseU64(f[4]); err != nil {
		return bad(err)
	}
	n, err := strconv.Atoi(f[5])
	if err != nil || n < 0 || len(f) < 7+3*n {
		return bad(errors.New("bad hop count"))
	}
	s.hops = make([]hopSpec, n)
	pos := 6
	for i := range s.hops {
		h := &s.hops[i]
		if h.channelID, err = parseU64(f[pos]); err != nil {
			return bad(err)
		}
		if h.pubKey, err = parsePubKey(f[pos+1]); err != nil {
			return bad(err)
		}
		if h.amount, err = parseU64(f[pos+2]); err != nil {
			return bad(err)
		}
		pos += 3
	}
	rest := f[pos:]
	switch {
	case len(rest) == 1 && (rest[0] == "S" || rest[0] == "U"):
		s.outcome = rest[0][0]
	case len(rest) == 3 && rest[0] == "F":
		idx, err := strconv.ParseUint(rest[1], 10, 8)
		if err != nil {
			return bad(err)
		}
		s.outcome, s.sourceIdx = 'F', uint8(idx)
		if rest[2] != "-" {
			if s.message, err = hex.DecodeString(rest[2]); err != nil {
				return bad(err)
			}
		}
	default:
		return bad(errors.New("bad outcome"))
	}
	return &s, nil
}

func readLine(in *bufio.Reader) (string, error) {
	line, err := in.ReadString('\n')
	if err == io.EOF && line != "" {
		err = nil
	}
	return strings.TrimRight(line, "\r\n"), err
}

func run(s *store, in *bufio.Reader, batch, count int) (map[string]any, error) {
	if batch <= 0 || count < 0 {
		return nil, fmt.Errorf("run %d %d: bad batch or count", batch, count)
	}
	specs := make([]*resultSpec, count)
	for i := range specs {
		line, err := readLine(in)
		if err != nil {
			return nil, fmt.Errorf("reading result %d of %d: %v", i+1, count, err)
		}
		if specs[i], err = parseSpec(line); err != nil {
			return nil, err
		}
	}
	flushNs := make([]int64, 0, (count+batch-1)/batch)
	stored, pruned := 0, 0
	for start := 0; start < count; start += batch {
		end := start + batch
		if end > count {
			end = count
		}
		t0 := time.Now()
		for _, spec := range specs[start:end] {
			s.AddResult(build(spec))
		}
		added, deleted, err := s.storeResults()
		elapsed := time.Since(t0)
		if err != nil {
			return nil, err
		}
		flushNs = append(flushNs, elapsed.Nanoseconds())
		stored += added
		pruned += deleted
	}
	return map[string]any{"flush_ns": flushNs, "added": stored, "pruned": pruned, "stored": s.keys.Len()}, nil
}

func digest(s *store) (map[string]any, error) {
	h := sha256.New()
	count := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		top := tx.Bucket(resultsBucket)
		if top == nil {
			return errors.New("no results bucket")
		}
		b := top.Bucket(namespaceBucket)
		if b == nil {
			return errors.New("no namespace bucket")
		}
		var n [4]byte
		return b.ForEach(func(k, v []byte) error {
			h.Write(k)
			byteOrder.PutUint32(n[:], uint32(len(v)))
			h.Write(n[:])
			h.Write(v)
			count++
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"count": count, "sha256": hex.EncodeToString(h.Sum(nil))}, nil
}

func serve(s *store, in *bufio.Reader, out *bufio.Writer, loaded int) error {
	for {
		line, err := readLine(in)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var reply map[string]any
		f := strings.Fields(line)
		switch {
		case len(f) == 1 && f[0] == "hello":
			reply = map[string]any{
				"go":               runtime.Version(),
				"loaded":           loaded,
				"max_records":      s.maxRecords,
				"no_sync":          s.db.NoSync,
				"no_freelist_sync": s.db.NoFreelistSync,
				"freelist":         string(s.db.FreelistType),
			}
		case len(f) == 3 && f[0] == "run":
			batch, err1 := strconv.Atoi(f[1])
			count, err2 := strconv.Atoi(f[2])
			if err1 != nil || err2 != nil {
				err = fmt.Errorf("bad command %q", line)
			} else {
				reply, err = run(s, in, batch, count)
			}
		case len(f) == 1 && f[0] == "digest":
			reply, err = digest(s)
		default:
			err = fmt.Errorf("unknown command %q", line)
		}
		if err != nil {
			reply = map[string]any{"error": err.Error()}
		}
		data, jerr := json.Marshal(reply)
		if jerr != nil {
			return jerr
		}
		out.Write(data)
		out.WriteByte('\n')
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

func main() {
	path := flag.String("db", "", "the bbolt database file (created if missing)")
	maxRecords := flag.Int("max-records", 1000, "keep at most this many results (0: no cap)")
	flag.Parse()
	if *path == "" || *maxRecords < 0 {
		fmt.Fprintln(os.Stderr, "usage: lndstore -db PATH [-max-records N]")
		os.Exit(2)
	}
	s, err := openStore(*path, *maxRecords)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lndstore: opening %s: %v\n", *path, err)
		os.Exit(1)
	}
	err = serve(s, bufio.NewReaderSize(os.Stdin, 1<<20), bufio.NewWriter(os.Stdout), s.keys.Len())
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lndstore: %v\n", err)
		os.Exit(1)
	}
}
