package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// base is the process clock every timestamp is taken from (monotonic): the
// publisher writes nowNS() into the body, the receiver subtracts it on receipt.
var base = time.Now()

func nowNS() int64 { return int64(time.Since(base)) }

// Event bodies: ~1 KB of valid JSON whose first fields have a fixed width, so
// that the receiver reads the sequence and the publish time without a JSON parser:
//
//	{"seq":"0000000042","ts":"0000000001234567890","title":"…","description":"xxxx…"}
const (
	bodySize  = 1024
	seqStart  = 8 // {"seq":"
	seqEnd    = seqStart + 10
	tsStart   = seqEnd + 8 // ","ts":"
	tsEnd     = tsStart + 19
	bodyEvent = "scan_added"
)

var bodyTemplate = func() []byte {
	head := `{"seq":"0000000000","ts":"0000000000000000000","title":"dojo-webhooks bench","description":"`
	tail := `"}`
	b := []byte(head + strings.Repeat("x", bodySize-len(head)-len(tail)) + tail)
	if string(b[seqStart-8:seqStart]) != `{"seq":"` || string(b[seqEnd:tsStart]) != `","ts":"` {
		panic("body layout")
	}
	return b
}()

// eventBody is a fresh 1 KB body carrying seq and the publish time ts (nowNS, 0 = none).
func eventBody(seq int, ts int64) []byte {
	b := make([]byte, bodySize)
	copy(b, bodyTemplate)
	putDigits(b[seqStart:seqEnd], uint64(seq))
	putDigits(b[tsStart:tsEnd], uint64(ts))
	return b
}

func putDigits(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

func readDigits(src []byte) (uint64, bool) {
	var v uint64
	for _, c := range src {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// parseBody returns the sequence and publish time of a bench body.
func parseBody(b []byte) (seq int, ts int64, ok bool) {
	if len(b) < tsEnd || string(b[:seqStart]) != `{"seq":"` {
		return 0, 0, false
	}
	s, ok1 := readDigits(b[seqStart:seqEnd])
	t, ok2 := readDigits(b[tsStart:tsEnd])
	return int(s), int64(t), ok1 && ok2
}

// epStats is what one endpoint of the receiver got.
type epStats struct {
	mu     sync.Mutex
	n      int      // requests answered 204
	unique int      // distinct sequences
	seen   []uint64 // bitset of sequences
	first  int64    // nowNS of the first and last receipt
	last   int64
	maxGap int64   // longest time between two receipts, ns
	lats   []int64 // publish→receipt, ns (when recording)

	hang atomic.Bool  // hold requests until the client gives up
	hung atomic.Int64 // requests held
}

func (st *epStats) add(now int64, seq int, ts int64, ok, record bool) {
	st.mu.Lock()
	if st.n == 0 || now < st.first {
		st.first = now
	}
	if now > st.last {
		if st.n > 0 && now-st.last > st.maxGap {
			st.maxGap = now - st.last
		}
		st.last = now
	}
	st.n++
	if ok {
		w := seq >> 6
		for w >= len(st.seen) {
			st.seen = append(st.seen, 0)
		}
		if bit := uint64(1) << (seq & 63); st.seen[w]&bit == 0 {
			st.seen[w] |= bit
			st.unique++
		}
		if record && ts > 0 {
			st.lats = append(st.lats, now-ts)
		}
	}
	st.mu.Unlock()
}

type epSnapshot struct {
	n, unique   int
	first, last int64
	maxGap      int64
	lats        []int64
}

func (st *epStats) snapshot(withLats bool) epSnapshot {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := epSnapshot{n: st.n, unique: st.unique, first: st.first, last: st.last, maxGap: st.maxGap}
	if withLats {
		s.lats = append([]int64(nil), st.lats...)
	}
	return s
}

func (st *epStats) counts() (n, unique int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.n, st.unique
}

func (st *epStats) reset() {
	st.mu.Lock()
	st.n, st.unique, st.first, st.last, st.maxGap = 0, 0, 0, 0, 0
	clear(st.seen)
	st.lats = st.lats[:0]
	st.mu.Unlock()
	st.hung.Store(0)
}

// receiver is the local webhook receiver: net/http servers on 127.0.0.1
// answering 204, counting and timestamping each request per endpoint
// (/ep/<index>) and sequence. Endpoints are spread over several listeners
// (one per endpoint up to the listener count), as distinct receivers would be.
type receiver struct {
	eps     []*epStats
	urls    []string
	record  atomic.Bool
	servers []*http.Server
	bufs    sync.Pool
}

func newReceiver(endpoints, listeners int) (*receiver, error) {
	rc := &receiver{bufs: sync.Pool{New: func() any { b := make([]byte, 0, 2*bodySize); return &b }}}
	listeners = max(1, min(listeners, endpoints))
	addrs := make([]string, 0, listeners)
	for range listeners {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			rc.close()
			return nil, fmt.Errorf("receiver: %w", err)
		}
		srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
		rc.servers = append(rc.servers, srv)
		addrs = append(addrs, ln.Addr().String())
		go func() { _ = srv.Serve(ln) }()
	}
	for i := range endpoints {
		rc.eps = append(rc.eps, &epStats{})
		rc.urls = append(rc.urls, fmt.Sprintf("http://%s/ep/%d", addrs[i%len(addrs)], i))
	}
	return rc, nil
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/ep/"))
	if err != nil || i < 0 || i >= len(rc.eps) || r.Method != http.MethodPost {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	st := rc.eps[i]
	if st.hang.Load() { // never answers: held until the client times out
		st.hung.Add(1)
		<-r.Context().Done()
		return
	}
	bp := rc.bufs.Get().(*[]byte)
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			*bp = b
			rc.bufs.Put(bp)
			return
		}
	}
	now := nowNS()
	seq, ts, ok := parseBody(b)
	*bp = b
	rc.bufs.Put(bp)
	st.add(now, seq, ts, ok, rc.record.Load())
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) reset() {
	for _, st := range rc.eps {
		st.reset()
	}
}

// uniqueOf sums the distinct sequences received by the given endpoints.
func (rc *receiver) uniqueOf(eps []int) int {
	total := 0
	for _, i := range eps {
		_, u := rc.eps[i].counts()
		total += u
	}
	return total
}

// span is the first and last receipt and the counts over the given endpoints.
func (rc *receiver) span(eps []int) (n, unique int, first, last int64) {
	for _, i := range eps {
		s := rc.eps[i].snapshot(false)
		if s.n == 0 {
			continue
		}
		if n == 0 || s.first < first {
			first = s.first
		}
		if s.last > last {
			last = s.last
		}
		n += s.n
		unique += s.unique
	}
	return n, unique, first, last
}

// maxGapMS is the longest pause between two receipts of one endpoint, over eps.
func (rc *receiver) maxGapMS(eps []int) float64 {
	var g int64
	for _, i := range eps {
		g = max(g, rc.eps[i].snapshot(false).maxGap)
	}
	return float64(g) / 1e6
}

func (rc *receiver) latencies(eps []int) []int64 {
	var out []int64
	for _, i := range eps {
		out = append(out, rc.eps[i].snapshot(true).lats...)
	}
	return out
}

func (rc *receiver) close() {
	for _, s := range rc.servers {
		_ = s.Close()
	}
}

func indexes(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// rate is (n-1) deliveries over the first→last receipt interval.
func rate(n int, first, last int64) float64 {
	if n < 2 || last <= first {
		return 0
	}
	return float64(n-1) / (float64(last-first) / 1e9)
}
