package rpc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/sourcegraph/jsonrpc2"
)

// Framing is how JSON-RPC messages are delimited on a byte stream.
type Framing int

const (
	// FramingAuto detects the framing from the first non-whitespace byte the
	// peer sends ('C' or 'c' means LSP headers, anything else NDJSON).
	FramingAuto Framing = iota
	// FramingLSP is the LSP base protocol: "Content-Length: N\r\n", optional
	// other headers, a blank line, then N bytes of JSON. vscode-jsonrpc and
	// Neovim's vim.lsp.rpc speak it.
	FramingLSP
	// FramingNDJSON is one JSON value per line, what ACP clients and most
	// scripts speak.
	FramingNDJSON
)

// String returns the name used in logs and flags.
func (f Framing) String() string {
	switch f {
	case FramingAuto:
		return "auto"
	case FramingLSP:
		return "lsp"
	case FramingNDJSON:
		return "ndjson"
	}
	return "Framing(" + strconv.Itoa(int(f)) + ")"
}

// DefaultMaxMessageBytes bounds a single incoming message when no limit is
// configured: large enough for uploads, small enough that a runaway client
// cannot exhaust the daemon's memory.
const DefaultMaxMessageBytes int64 = 64 << 20

const (
	readBufferSize  = 64 << 10
	writeBufferSize = 32 << 10
	// keepBufferBytes is the largest read buffer kept between messages; a
	// bigger one (from a rare huge message) is dropped so its memory is freed.
	keepBufferBytes = 1 << 20
)

// StreamOptions configures NewStream.
type StreamOptions struct {
	Framing         Framing
	MaxMessageBytes int64 // 0 means DefaultMaxMessageBytes
	Logger          *slog.Logger
}

// Stream frames JSON-RPC messages over a byte stream and implements
// jsonrpc2.ObjectStream.
//
// jsonrpc2 drops the connection whenever ReadObject fails, so Stream answers
// bad input itself (parse errors, batches, non-requests, oversized
// messages, broken headers) and moves on to the next message; ReadObject
// only fails on I/O errors and EOF.
type Stream struct {
	rwc     io.ReadWriteCloser
	log     *slog.Logger
	max     int64
	framing atomic.Int32

	// Read side; used only by the goroutine calling ReadObject.
	r       *bufio.Reader
	src     source // what r reads from: bytes given back by unread, then rwc
	buf     []byte // reused body buffer for messages that do not fit r
	consume int    // bytes of r to discard once the peeked message is decoded
	// quiet is set after an LSP frame was answered as broken and until the
	// next header block is read: the bytes in between are most likely the
	// rest of that frame (a Content-Length too short) and are skipped
	// without a second error.
	quiet bool

	// onRequest, if set, receives requests and notifications directly
	// instead of through ReadObject's v; Conn and Client set it before the
	// first read so params are decoded once, by the handler.
	onRequest func(*jsonrpc2.Request)
	// onEOF, if set, runs when the peer ends its side of the stream, before
	// the connection closes.
	onEOF func()
	// onMessage, if set, runs for every message read, good or bad.
	onMessage func()
	// inBuf says the message being decoded lies in buf, which decode may
	// then hand over instead of copying when release would drop it.
	inBuf bool

	wmu sync.Mutex
	w   *bufio.Writer
	hdr []byte

	closeOnce sync.Once
	closeErr  error
}

var _ jsonrpc2.ObjectStream = (*Stream)(nil)

// NewStream wraps rwc. The Stream owns rwc: Close closes it.
func NewStream(rwc io.ReadWriteCloser, opts StreamOptions) *Stream {
	s := &Stream{
		rwc: rwc,
		log: opts.Logger,
		max: opts.MaxMessageBytes,
		src: source{r: rwc},
		w:   bufio.NewWriterSize(rwc, writeBufferSize),
	}
	s.r = bufio.NewReaderSize(&s.src, readBufferSize)
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.max <= 0 {
		s.max = DefaultMaxMessageBytes
	}
	s.framing.Store(int32(opts.Framing))
	return s
}

// Framing returns the framing in use: the configured one, or with
// FramingAuto the detected one (FramingAuto until the peer's first byte).
func (s *Stream) Framing() Framing { return Framing(s.framing.Load()) }

// Close closes the underlying connection; later calls return the same error.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.rwc.Close() })
	return s.closeErr
}

// WriteObject encodes obj and writes it as one frame. It is safe for
// concurrent use. Before the framing of an Auto stream is known, NDJSON is
// written.
func (s *Stream) WriteObject(obj any) error {
	data, err := marshalCompact(obj)
	if err != nil {
		return fmt.Errorf("encode JSON-RPC message: %w", err)
	}
	return s.writeFrame(data)
}

// marshalCompact encodes v on one line. A json.Marshaler's output (the
// jsonrpc2 message types) is already compact, so it skips encoding/json's
// re-validation pass unless it contains a line break.
func marshalCompact(v any) ([]byte, error) {
	m, ok := v.(json.Marshaler)
	if !ok {
		return json.Marshal(v)
	}
	data, err := m.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if bytes.IndexByte(data, '\n') < 0 && bytes.IndexByte(data, '\r') < 0 && json.Valid(data) {
		return data, nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeFrame writes one already-encoded message, given as the parts it
// is the concatenation of, with the stream's framing. Parts let a caller
// send a large encoded value it shares with other connections without
// copying it into a message of its own.
func (s *Stream) writeFrame(parts ...[]byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.Framing() == FramingLSP {
		n := 0
		for _, p := range parts {
			n += len(p)
		}
		s.hdr = append(s.hdr[:0], "Content-Length: "...)
		s.hdr = strconv.AppendInt(s.hdr, int64(n), 10)
		s.hdr = append(s.hdr, "\r\n\r\n"...)
		if _, err := s.w.Write(s.hdr); err != nil {
			return fmt.Errorf("write message header: %w", err)
		}
	}
	for _, p := range parts {
		if _, err := s.w.Write(p); err != nil {
			return fmt.Errorf("write message: %w", err)
		}
	}
	if s.Framing() != FramingLSP {
		if err := s.w.WriteByte('\n'); err != nil {
			return fmt.Errorf("write message: %w", err)
		}
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	return nil
}

// errorResponse is the reply the stream writes for input it rejects.
type errorResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"` // nil encodes as null
	Error   *Error          `json:"error"`
}

// reject answers bad input. id is the raw JSON id to echo, or nil for null.
func (s *Stream) reject(id []byte, e *Error) error {
	s.log.Debug("rpc: rejected incoming message", "code", e.Code, "error", e.Message)
	data, err := json.Marshal(errorResponse{JSONRPC: "2.0", ID: id, Error: e})
	if err != nil {
		return fmt.Errorf("encode error response: %w", err)
	}
	return s.writeFrame(data)
}

// ReadObject reads the next well-formed JSON-RPC message into v (for
// jsonrpc2, its message type). Bad messages are answered and skipped.
func (s *Stream) ReadObject(v any) error {
	for {
		data, err := s.next()
		if err != nil {
			if errors.Is(err, io.EOF) && s.onEOF != nil {
				// The peer is done sending (a script piping requests, a
				// half-closed socket): answer what it asked before hanging up.
				s.onEOF()
			}
			return err
		}
		if s.onMessage != nil {
			s.onMessage()
		}
		ok, err := s.decode(data, v)
		s.release()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
}

// release returns the bytes of the message just handled to the reader,
// and drops a body buffer a rare large message grew, so that its memory
// goes back to the heap instead of staying with the connection.
func (s *Stream) release() {
	if s.consume > 0 {
		_, _ = s.r.Discard(s.consume) // already buffered by Peek, cannot fail
		s.consume = 0
	}
	if cap(s.buf) > keepBufferBytes {
		s.buf = nil
	}
	s.inBuf = false
}

// takeBody returns params to keep beyond the current message: the bytes
// themselves when they lie in a body buffer that release would drop
// anyway, else a copy. A large message then costs one buffer, not two.
func (s *Stream) takeBody(params []byte) []byte {
	if s.inBuf && cap(s.buf) > keepBufferBytes {
		s.buf = nil
		return params
	}
	return bytes.Clone(params)
}

// next returns the body of the next frame. It answers and skips oversized
// messages and broken LSP headers.
func (s *Stream) next() ([]byte, error) {
	f := s.Framing()
	if f == FramingAuto {
		var err error
		if f, err = s.detect(); err != nil {
			return nil, err
		}
	}
	if f == FramingLSP {
		return s.nextLSP()
	}
	return s.nextLine()
}

// detect picks the framing from the peer's first non-whitespace byte.
func (s *Stream) detect() (Framing, error) {
	for {
		b, err := s.r.Peek(1)
		if err != nil {
			return FramingAuto, err
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			_, _ = s.r.Discard(1)
			continue
		case 'C', 'c':
			s.framing.Store(int32(FramingLSP))
		default:
			s.framing.Store(int32(FramingNDJSON))
		}
		f := s.Framing()
		s.log.Debug("rpc: detected framing", "framing", f.String())
		return f, nil
	}
}

// tooBig answers a message over the size limit.
func (s *Stream) tooBig(size int64) error {
	return s.reject(nil, NewError(CodeInvalidRequest,
		"message of %d bytes exceeds the %s limit; split it or raise --max-message-size",
		size, formatBytes(s.max)).With("limit", s.max).With("size", size))
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// nextLine reads one NDJSON message, skipping blank lines. Lines longer
// than the limit are discarded chunk by chunk, never held in memory.
func (s *Stream) nextLine() ([]byte, error) {
	for {
		line, err := s.r.ReadSlice('\n')
		switch {
		case err == nil || (err == io.EOF && len(line) > 0):
			// The whole line is in the read buffer: use it in place.
			size := int64(len(bytes.TrimRight(line, "\r\n")))
			if size > s.max {
				if err := s.tooBig(size); err != nil {
					return nil, err
				}
				continue
			}
			if data := bytes.TrimSpace(line); len(data) > 0 {
				return data, nil
			}
			if err == io.EOF {
				return nil, io.EOF
			}
			continue
		case err != bufio.ErrBufferFull:
			return nil, err
		}
		data, err := s.longLine(line)
		if err != nil || data != nil {
			return data, err
		}
	}
}

// longLine collects a line that did not fit the read buffer, starting with
// its first chunk. It returns nil data (and no error) after answering an
// oversized or blank line.
func (s *Stream) longLine(chunk []byte) ([]byte, error) {
	var (
		size int64
		over bool
		err  = bufio.ErrBufferFull
	)
	s.buf = s.buf[:0]
	for {
		body := chunk
		if err == nil {
			body = body[:len(body)-1] // the '\n'
		}
		size += int64(len(body))
		if !over && size > s.max {
			over = true
			s.buf = s.buf[:0]
		}
		if !over {
			s.buf = s.appendBounded(s.buf, body)
		}
		if err != bufio.ErrBufferFull {
			break
		}
		chunk, err = s.r.ReadSlice('\n')
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	if over {
		if werr := s.tooBig(size); werr != nil {
			return nil, werr
		}
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, nil
	}
	data := bytes.TrimSpace(s.buf)
	s.inBuf = true
	if len(data) == 0 {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, nil
	}
	return data, nil
}

// appendBounded appends like append, but grows the buffer to at most the
// message limit, so an accepted message never costs more than the limit.
func (s *Stream) appendBounded(buf, b []byte) []byte {
	need := len(buf) + len(b)
	if need > cap(buf) {
		c := max(2*cap(buf), need, 4096)
		c = int(min(int64(c), s.max))
		nb := make([]byte, len(buf), c)
		copy(nb, buf)
		buf = nb
	}
	return append(buf, b...)
}

// nextLSP reads one LSP-framed message. A broken header is answered with a
// parse error, after which the stream resynchronises on the next
// Content-Length header line.
func (s *Stream) nextLSP() ([]byte, error) {
	n := int64(-1)
	for {
		var err error
		if n, err = s.readHeader(n); err != nil {
			return nil, err
		}
		size := n
		n = -1
		if size > s.max {
			// Skip the body without keeping it. A valid JSON body cannot
			// hold a Content-Length header line (see trailingContentLength),
			// so finding one inside means the length was wrong: the next
			// frame starts there and is not skipped with it.
			v, found, err := s.scanForHeader(size, nil)
			if err != nil {
				return nil, unexpectedEOF(err)
			}
			s.quiet = true
			if found {
				if err := s.reject(nil, NewError(CodeParseError,
					"malformed LSP frame: Content-Length %d is longer than the message, another Content-Length header follows inside it; the message was ignored (Content-Length must count the bytes of the body)", size)); err != nil {
					return nil, err
				}
				n = v
				continue
			}
			if err := s.tooBig(size); err != nil {
				return nil, err
			}
			continue
		}
		if size == 0 {
			s.quiet = true
			if err := s.reject(nil, NewError(CodeParseError, "parse error: empty message (Content-Length: 0); the message was ignored")); err != nil {
				return nil, err
			}
			continue
		}
		if size <= int64(s.r.Size()) {
			b, err := s.r.Peek(int(size))
			if err != nil {
				return nil, unexpectedEOF(err)
			}
			s.consume = int(size)
			return b, nil
		}
		if int64(cap(s.buf)) < size {
			s.buf = make([]byte, size)
		}
		s.buf = s.buf[:size]
		if _, err := io.ReadFull(s.r, s.buf); err != nil {
			return nil, unexpectedEOF(err)
		}
		s.inBuf = true
		return s.buf, nil
	}
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readHeader reads an LSP header block and returns its Content-Length;
// n >= 0 continues a block whose Content-Length line was already read. A
// malformed block is answered with a ParseError (unless s.quiet) and skipped
// up to the next Content-Length header line, whose block is then read: so
// the only errors returned are I/O errors.
func (s *Stream) readHeader(n int64) (int64, error) {
	started := n >= 0
	for {
		line, err := s.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if n, err = s.skipBad(fmt.Sprintf("header line longer than %d bytes", s.r.Size()), line); err != nil {
				return 0, err
			}
			started = true
			continue
		}
		if err != nil {
			if err == io.EOF && !started && (s.quiet || len(bytes.TrimSpace(line)) == 0) {
				return 0, io.EOF
			}
			return 0, unexpectedEOF(err)
		}
		if v, at, ok := trailingContentLength(line); ok {
			// Usually the whole line. Bytes before it are the rest of a
			// frame whose Content-Length was too short (LSP bodies end
			// without a line break) or other garbage.
			if junk := bytes.TrimSpace(line[:at]); len(junk) > 0 {
				if err := s.badHeader(fmt.Sprintf("%q before the Content-Length header", truncate(junk, 80))); err != nil {
					return 0, err
				}
			}
			n, started = v, true
			continue
		}
		text := bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(text)) == 0 {
			if !started {
				continue // stray line break between messages
			}
			if n >= 0 {
				s.quiet = false
				return n, nil
			}
			if n, err = s.skipBad("no Content-Length header", nil); err != nil {
				return 0, err
			}
			continue
		}
		started = true
		name, value, ok := bytes.Cut(text, []byte(":"))
		name = bytes.TrimSpace(name)
		if !ok || !isToken(name) {
			if n, err = s.skipBad(fmt.Sprintf("%q is not a \"Name: value\" header line", truncate(text, 80)), nil); err != nil {
				return 0, err
			}
			continue
		}
		if !bytes.EqualFold(name, []byte("Content-Length")) {
			continue // Content-Type and any other header are ignored
		}
		// Not a plain non-negative number, or trailingContentLength would
		// have taken it.
		v := bytes.TrimSpace(value)
		problem := fmt.Sprintf("Content-Length %q is not a number", truncate(v, 40))
		if x, err := strconv.ParseInt(string(v), 10, 64); err == nil && x < 0 {
			problem = fmt.Sprintf("Content-Length %d is negative", x)
		}
		if n, err = s.skipBad(problem, nil); err != nil {
			return 0, err
		}
	}
}

// skipBad answers a malformed header (see badHeader) and skips input up to
// and including the next Content-Length header line, returning its value.
// partial is the start of the current line, already consumed.
func (s *Stream) skipBad(problem string, partial []byte) (int64, error) {
	if err := s.badHeader(problem); err != nil {
		return 0, err
	}
	v, _, err := s.scanForHeader(-1, partial)
	return v, err
}

// badHeader answers a malformed header with a ParseError, once per broken
// frame: in quiet mode the bytes are the rest of a frame already answered.
func (s *Stream) badHeader(problem string) error {
	if s.quiet {
		s.log.Debug("rpc: skipping the rest of a malformed LSP frame", "problem", problem)
		return nil
	}
	s.quiet = true
	return s.reject(nil, NewError(CodeParseError,
		"malformed LSP header: %s; send \"Content-Length: <bytes>\\r\\n\\r\\n\" before each message (skipping to the next Content-Length header)", problem))
}

// isToken reports whether b is a header name (an HTTP token). JSON text
// never is one, so the rest of a cut body is not taken for a header.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// maxHeaderLine bounds the Content-Length header line scanForHeader finds
// across the chunks of a line longer than the read buffer.
const maxHeaderLine = 64

// trailingContentLength reports whether line (up to and including its
// '\n') ends in a Content-Length header with a plain decimal value,
// "Content-Length: 62\r\n" (case-insensitive), and returns the value and
// where that header starts in line.
//
// It is what the stream resynchronises on. Such a line can never lie
// inside a valid JSON body: outside a string JSON has no letters but true,
// false and null, and a string cannot hold a raw line break. So a body
// that mentions "Content-Length: 5" is never split there.
func trailingContentLength(line []byte) (v int64, at int, ok bool) {
	const name = "content-length:"
	i := len(line)
	if i == 0 || line[i-1] != '\n' {
		return 0, 0, false
	}
	i--
	if i > 0 && line[i-1] == '\r' {
		i--
	}
	for i > 0 && (line[i-1] == ' ' || line[i-1] == '\t') {
		i--
	}
	end := i
	for i > 0 && '0' <= line[i-1] && line[i-1] <= '9' {
		i--
	}
	digits := line[i:end]
	if len(digits) == 0 || len(digits) > 18 { // 18 digits always fit an int64
		return 0, 0, false
	}
	for i > 0 && (line[i-1] == ' ' || line[i-1] == '\t') {
		i--
	}
	if i < len(name) || !bytes.EqualFold(line[i-len(name):i], []byte(name)) {
		return 0, 0, false
	}
	v, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return v, i - len(name), true
}

// scanForHeader discards input up to and including the next line that
// ends in a Content-Length header (see trailingContentLength) and returns
// its value. It reads at most limit bytes (limit < 0: no limit) and
// reports found == false when the limit came first. before is the start
// of the current line, already consumed. Lines are never held whole: a
// long one is skipped chunk by chunk, keeping only its last bytes.
func (s *Stream) scanForHeader(limit int64, before []byte) (v int64, found bool, err error) {
	var keep [2 * maxHeaderLine]byte
	tail := keepLast(keep[:0], before)
	for limit != 0 {
		if s.r.Buffered() == 0 {
			if _, err := s.r.Peek(1); err != nil {
				return 0, false, err
			}
		}
		k := s.r.Buffered()
		if limit > 0 && int64(k) > limit {
			k = int(limit)
		}
		chunk, _ := s.r.Peek(k) // already buffered
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			tail = keepLast(tail, chunk)
		} else {
			k = i + 1
			line := chunk[:k]
			if len(tail) > 0 && len(line) < maxHeaderLine {
				tail = keepLast(tail, line)
				line = tail
			}
			v, _, found = trailingContentLength(line)
			tail = tail[:0]
		}
		_, _ = s.r.Discard(k)
		if limit > 0 {
			limit -= int64(k)
		}
		if found {
			return v, true, nil
		}
	}
	return 0, false, nil
}

// keepLast appends b to dst, which has room for 2*maxHeaderLine bytes,
// keeping only the last maxHeaderLine bytes of the two.
func keepLast(dst, b []byte) []byte {
	if len(b) >= maxHeaderLine {
		return append(dst[:0], b[len(b)-maxHeaderLine:]...)
	}
	if over := len(dst) + len(b) - maxHeaderLine; over > 0 {
		dst = dst[:copy(dst, dst[over:])]
	}
	return append(dst, b...)
}

// source is what the read buffer fills from: bytes given back by unread
// first, then the connection.
type source struct {
	back []byte
	r    io.Reader
}

func (s *source) Read(p []byte) (int, error) {
	if len(s.back) > 0 {
		n := copy(p, s.back)
		s.back = s.back[n:]
		if len(s.back) == 0 {
			s.back = nil
		}
		return n, nil
	}
	return s.r.Read(p)
}

// unread gives b back to the reader: it is read again before anything the
// reader has buffered. b is copied.
func (s *Stream) unread(b []byte) {
	buffered, _ := s.r.Peek(s.r.Buffered())
	back := make([]byte, 0, len(b)+len(buffered)+len(s.src.back))
	back = append(append(append(back, b...), buffered...), s.src.back...)
	_, _ = s.r.Discard(len(buffered))
	s.src.back = back
}

// rejectLSPBody answers an LSP body that is not valid JSON. When the
// Content-Length was too long, the body is a whole JSON message followed
// by the start of the next frame: that start is given back to the reader,
// so the next frame is read as usual. When it was too short, the rest of
// the message follows the body, and quiet mode skips it up to the next
// header without a second error.
func (s *Stream) rejectLSPBody(data []byte) error {
	s.quiet = true
	if end := jsonEnd(data); end > 0 {
		rest := data[end:]
		if s.consume > 0 {
			s.consume = end // the rest is still in the read buffer
		} else {
			s.unread(rest)
		}
		return s.reject(nil, NewError(CodeParseError,
			"parse error: the JSON message ends after %d of the %d bytes Content-Length gave, and %q follows; the message was ignored (a body holds one message, and Content-Length counts its bytes)",
			end, len(data), truncate(rest, 20)))
	}
	var sink struct{}
	perr := json.Unmarshal(data, &sink) // reports the syntax error without decoding
	var se *json.SyntaxError
	if errors.As(perr, &se) && se.Offset >= int64(len(data)) {
		return s.reject(nil, NewError(CodeParseError,
			"parse error: %v; the message was ignored: the body ends before its JSON does (Content-Length %d: it must count the bytes of the body, not its characters)",
			perr, len(data)))
	}
	return s.reject(nil, NewError(CodeParseError, "parse error: %v; the message was ignored", perr))
}

// jsonEnd returns where the JSON object or array at the start of data ends,
// if it is complete and followed by something other than white space; 0
// otherwise.
func jsonEnd(data []byte) int {
	i := skipSpace(data, 0)
	if i >= len(data) || (data[i] != '{' && data[i] != '[') {
		return 0
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var v json.RawMessage
	if dec.Decode(&v) != nil {
		return 0
	}
	end := int(dec.InputOffset())
	if skipSpace(data, end) >= len(data) {
		return 0
	}
	return end
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// decode checks that data is one JSON-RPC request or response and decodes
// it into v. Anything else is answered (requests) or logged (responses,
// which must never be answered) and reported as ok == false.
func (s *Stream) decode(data []byte, v any) (ok bool, err error) {
	if !json.Valid(data) {
		if s.Framing() == FramingLSP {
			return false, s.rejectLSPBody(data)
		}
		var sink struct{}
		perr := json.Unmarshal(data, &sink) // reports the syntax error without decoding
		return false, s.reject(nil, NewError(CodeParseError, "parse error: %v; the message was ignored", perr))
	}
	switch data[0] {
	case '{':
	case '[':
		return false, s.reject(nil, NewError(CodeInvalidRequest,
			"batch requests (JSON arrays) are not supported; send requests one at a time"))
	default:
		return false, s.reject(nil, NewError(CodeInvalidRequest,
			"a JSON-RPC message must be an object with \"method\" (request) or \"result\"/\"error\" (response), got %s %s",
			article(jsonType(data)), jsonType(data)))
	}

	var env envelope
	eachMember(data, func(key, val []byte) {
		switch string(key) {
		case "id":
			env.id = val
		case "method":
			env.method = val
		case "params":
			env.params = val
		case "result":
			env.result = val
		case "error":
			env.err = val
		}
	})

	idOK, echo, idProblem := checkID(env.id)
	if env.method == nil && (env.result != nil || env.err != nil) {
		return s.decodeResponse(data, v, env, idOK)
	}

	var problem string
	switch {
	case env.method == nil:
		problem = "message has neither \"method\" (a request) nor \"result\" or \"error\" (a response)"
	case env.method[0] != '"':
		problem = fmt.Sprintf("\"method\" must be a string, got %s", jsonType(env.method))
	case env.result != nil || env.err != nil:
		problem = "a message cannot have both \"method\" and \"result\"/\"error\""
	case idProblem != "":
		problem = idProblem
	case env.params != nil && !isParamsType(env.params):
		problem = fmt.Sprintf("\"params\" must be an object or an array, got %s", jsonType(env.params))
	}
	if problem != "" {
		return false, s.reject(echo, NewError(CodeInvalidRequest, "invalid request: %s", problem))
	}
	if s.onRequest != nil {
		req, err := envelopeRequest(env, idOK, s.takeBody)
		if err != nil {
			return false, s.reject(echo, NewError(CodeInvalidRequest, "invalid request: %v", err))
		}
		s.onRequest(req)
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, s.reject(echo, NewError(CodeInvalidRequest, "invalid request: %v", err))
	}
	return true, nil
}

// decodeResponse hands a response to jsonrpc2, or logs and drops it when it
// cannot be matched to a call: answering a response could start an endless
// error ping-pong between two peers.
func (s *Stream) decodeResponse(data []byte, v any, env envelope, idOK bool) (bool, error) {
	if !idOK {
		s.log.Warn("rpc: peer sent a response without a usable id; dropping it",
			"id", string(env.id), "error", truncate(env.err, 500))
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		s.log.Warn("rpc: cannot decode response from peer; dropping it", "id", string(env.id), "err", err)
		return false, nil
	}
	return true, nil
}

// envelopeRequest builds the request from the members already found by
// eachMember, keeping only params (through keep, which copies them or
// takes the buffer they lie in). (jsonrpc2.Request's own decoder decodes
// the whole message into a map and re-encodes params.)
func envelopeRequest(env envelope, hasID bool, keep func([]byte) []byte) (*jsonrpc2.Request, error) {
	r := &jsonrpc2.Request{Notif: !hasID}
	var err error
	if r.Method, err = unquote(env.method); err != nil {
		return nil, fmt.Errorf("method: %w", err)
	}
	if hasID {
		if env.id[0] == '"' {
			str, err := unquote(env.id)
			if err != nil {
				return nil, fmt.Errorf("id: %w", err)
			}
			r.ID = jsonrpc2.ID{Str: str, IsString: true}
		} else {
			n, err := strconv.ParseUint(string(env.id), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("id: %w", err)
			}
			r.ID = jsonrpc2.ID{Num: n}
		}
	}
	if env.params != nil {
		p := json.RawMessage(keep(env.params))
		r.Params = &p
	}
	return r, nil
}

// unquote decodes a JSON string literal, without allocating twice in the
// common case of no escapes.
func unquote(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var str string
	err := json.Unmarshal(raw, &str)
	return str, err
}

// envelope holds the raw top-level members of a message (nil if absent).
type envelope struct {
	id, method, params, result, err []byte
}

// checkID reports whether raw is an id jsonrpc2 can carry (a string or a
// non-negative integer), what to echo in an error reply, and if it is not
// usable, why.
func checkID(raw []byte) (ok bool, echo []byte, problem string) {
	switch {
	case raw == nil:
		return false, nil, "" // a notification
	case string(raw) == "null":
		// JSON-RPC keeps null for replies to requests whose id could not
		// be read; a request with it could not be told from the others.
		return false, nil, "\"id\" is null; give each request a string or integer id, or leave \"id\" out to send a notification"
	}
	switch c := raw[0]; {
	case c == '"':
		return true, raw, ""
	case c == '-' || ('0' <= c && c <= '9'):
		if isUint63(raw) {
			return true, raw, ""
		}
		// A valid JSON number the peer can still match the reply with.
		return false, raw, fmt.Sprintf("\"id\" must be a string or a non-negative integer, got %s", raw)
	}
	return false, nil, fmt.Sprintf("\"id\" must be a string or a number, got %s", jsonType(raw))
}

// isUint63 reports whether b is a decimal integer in [0, MaxInt64], the ids
// jsonrpc2 round-trips exactly.
func isUint63(b []byte) bool {
	if len(b) == 0 || len(b) > 19 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	if len(b) == 19 {
		_, err := strconv.ParseInt(string(b), 10, 64)
		return err == nil
	}
	return true
}

func isParamsType(b []byte) bool {
	return b[0] == '{' || b[0] == '[' || string(b) == "null"
}

// jsonType names the JSON type of a valid, trimmed JSON value.
func jsonType(b []byte) string {
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func article(word string) string {
	switch word[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an"
	}
	return "a"
}

// eachMember calls fn with the key and raw value of every top-level member
// of obj, which must be a valid JSON object (as checked by json.Valid). It
// does not allocate unless a key contains escapes.
func eachMember(obj []byte, fn func(key, val []byte)) {
	i := skipSpace(obj, 0) + 1 // past '{'
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return
		}
		if obj[i] == ',' {
			i++
			continue
		}
		ks := i
		i = skipString(obj, i)
		key := obj[ks+1 : i-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(obj[ks:i], &k) == nil {
				key = []byte(k)
			}
		}
		i = skipSpace(obj, i) + 1 // past ':'
		i = skipSpace(obj, i)
		vs := i
		i = skipValue(obj, i)
		fn(key, obj[vs:i])
	}
}

// member returns the raw value of the top-level member name of the JSON
// object obj, or nil.
func member(obj []byte, name string) []byte {
	var v []byte
	eachMember(obj, func(key, val []byte) {
		if string(key) == name {
			v = val
		}
	})
	return v
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string starting at b[i].
func skipString(b []byte, i int) int {
	i++
	for i < len(b) {
		j := bytes.IndexAny(b[i:], "\"\\")
		if j < 0 {
			return len(b)
		}
		i += j
		if b[i] == '\\' {
			i += 2
			continue
		}
		return i + 1
	}
	return len(b)
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
		i++
	}
	return i
}
