package shellrun

import (
	"fmt"
	"unicode/utf8"
)

// capture collects a command's combined output in bounded memory: the
// first limit/2 bytes, a ring of the last limit-limit/2 bytes, and — from
// the moment the output first exceeds limit — the whole output up to
// MaxFullOutput bytes. It is used by one goroutine at a time.
type capture struct {
	limit   int // Options.OutputCap
	headMax int
	head    []byte
	ring    []byte // the tail; allocated when the head is full
	ringPos int    // next write index in ring
	ringLen int    // valid bytes in ring; while < len(ring), ringPos == ringLen
	full    []byte // nil until total > limit; at most MaxFullOutput bytes
	total   int64
}

func newCapture(limit int) *capture {
	return &capture{limit: limit, headMax: limit / 2}
}

// Write records p. It never fails.
func (c *capture) Write(p []byte) (int, error) {
	n := len(p)
	c.total += int64(n)
	switch {
	case c.full != nil:
		c.full = appendMax(c.full, p, MaxFullOutput)
	case c.total > int64(c.limit):
		// Until now head and ring held everything; start keeping it all.
		c.full = make([]byte, 0, min(2*c.limit, MaxFullOutput))
		c.full = appendMax(c.full, c.head, MaxFullOutput)
		c.full = appendMax(c.full, c.tail(), MaxFullOutput)
		c.full = appendMax(c.full, p, MaxFullOutput)
	}
	if room := c.headMax - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
	}
	if len(p) > 0 {
		c.writeRing(p)
	}
	return n, nil
}

func (c *capture) writeRing(p []byte) {
	size := c.limit - c.headMax
	if size <= 0 {
		return
	}
	if c.ring == nil {
		c.ring = make([]byte, size)
	}
	if len(p) >= size {
		copy(c.ring, p[len(p)-size:])
		c.ringPos, c.ringLen = 0, size
		return
	}
	k := copy(c.ring[c.ringPos:], p)
	copy(c.ring, p[k:])
	c.ringPos = (c.ringPos + len(p)) % size
	c.ringLen = min(c.ringLen+len(p), size)
}

// tail returns the ring's bytes in write order.
func (c *capture) tail() []byte {
	if c.ringLen < len(c.ring) {
		return c.ring[:c.ringLen]
	}
	out := make([]byte, 0, c.ringLen)
	out = append(out, c.ring[c.ringPos:]...)
	return append(out, c.ring[:c.ringPos]...)
}

// fill sets r's Output, Full, Truncated and Bytes.
func (c *capture) fill(r *Result) {
	r.Bytes = c.total
	tail := c.tail()
	if c.total <= int64(c.limit) {
		r.Output = string(c.head) + string(tail)
		return
	}
	r.Truncated = true
	r.Output = string(elide(c.head, tail, c.total, c.limit))
	if c.total <= MaxFullOutput {
		r.Full = c.full
		return
	}
	// full holds the first MaxFullOutput bytes and tail the last few
	// KiB; they cannot overlap in what elide keeps of them.
	r.Full = elide(c.full, tail, c.total, MaxFullOutput)
}

// elide returns the start of head, a line saying how many bytes were left
// out, and the end of tail, in at most limit bytes (when limit leaves room
// for the line at all). head is the output's beginning, tail its end, and
// total its length. The cuts fall on UTF-8 boundaries.
func elide(head, tail []byte, total int64, limit int) []byte {
	avail := max(limit-len(omittedLine(total, true)), 0)
	t := min(len(tail), avail/2)
	h := min(len(head), avail-t)
	t = min(len(tail), avail-h)

	hb := head[:cutBefore(head, h)]
	tb := tail[cutAfter(tail, len(tail)-t):]
	omitted := total - int64(len(hb)) - int64(len(tb))
	line := omittedLine(omitted, len(hb) > 0 && hb[len(hb)-1] != '\n')

	out := make([]byte, 0, len(hb)+len(line)+len(tb))
	out = append(out, hb...)
	out = append(out, line...)
	return append(out, tb...)
}

// omittedLine is the line put where output was left out; it starts with a
// newline when what precedes it does not end one.
func omittedLine(n int64, newline bool) string {
	s := fmt.Sprintf("… %d bytes omitted …\n", n)
	if newline {
		s = "\n" + s
	}
	return s
}

// cutBefore moves i back to the start of the rune it falls inside, so
// that b[:i] does not end with part of a rune. Bytes that are not UTF-8
// are cut where they are.
func cutBefore(b []byte, i int) int {
	if i <= 0 || i >= len(b) {
		return i
	}
	for j := i; j >= 0 && i-j < utf8.UTFMax; j-- {
		if utf8.RuneStart(b[j]) {
			return j
		}
	}
	return i
}

// cutAfter moves i forward past the rest of the rune it falls inside, so
// that b[i:] does not start with part of a rune.
func cutAfter(b []byte, i int) int {
	for j := i; j < len(b) && j-i < utf8.UTFMax; j++ {
		if utf8.RuneStart(b[j]) {
			return j
		}
	}
	if len(b)-i < utf8.UTFMax {
		return len(b)
	}
	return i
}

// appendMax appends as much of p to b as keeps len(b) <= limit, never
// growing b's capacity past limit.
func appendMax(b, p []byte, limit int) []byte {
	if room := limit - len(b); room < len(p) {
		p = p[:max(room, 0)]
	}
	if need := len(b) + len(p); need > cap(b) {
		nb := make([]byte, len(b), min(max(2*cap(b), need), limit))
		copy(nb, b)
		b = nb
	}
	return append(b, p...)
}
