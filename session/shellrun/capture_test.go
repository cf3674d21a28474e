package shellrun

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// feed writes b to a capture in random chunks and returns its result.
func feed(r *rand.Rand, limit int, b []byte) Result {
	c := newCapture(limit)
	for len(b) > 0 {
		n := min(len(b), 1+r.IntN(3*limit))
		if r.IntN(4) == 0 {
			n = min(len(b), 1+r.IntN(4))
		}
		c.Write(b[:n])
		b = b[n:]
	}
	var res Result
	c.fill(&res)
	return res
}

func TestCapture(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	runes := []string{"a", "b", "é", "€", "😀"} // no newline: the omitted line's prefix is then certain
	text := func(n int) []byte {
		var b strings.Builder
		for b.Len() < n {
			b.WriteString(runes[r.IntN(len(runes))])
		}
		return []byte(b.String())
	}
	for _, limit := range []int{64, 65, 66, 67, 100, 101, 1000, 4099} {
		for _, size := range []int{0, 1, limit - 1, limit, limit + 1, 2 * limit, 10 * limit, 100 * limit} {
			t.Run(fmt.Sprintf("%d/%d", limit, size), func(t *testing.T) {
				want := text(size)
				res := feed(r, limit, want)
				if res.Bytes != int64(len(want)) {
					t.Errorf("Bytes = %d, want %d", res.Bytes, len(want))
				}
				if len(want) <= limit {
					if res.Output != string(want) || res.Truncated || res.Full != nil {
						t.Errorf("under the cap: Output %q, Truncated %v, Full %d bytes", res.Output, res.Truncated, len(res.Full))
					}
					return
				}
				if !res.Truncated || !bytes.Equal(res.Full, want) {
					t.Errorf("Truncated = %v, Full %d bytes; want true, %d", res.Truncated, len(res.Full), len(want))
				}
				if !utf8.ValidString(res.Output) {
					t.Errorf("Output is not valid UTF-8: %q", res.Output)
				}
				// The cuts cost at most 3 bytes each, the newline before the
				// omitted line 1, and a shorter count than the total's a few.
				if len(res.Output) < limit-10 {
					t.Errorf("Output is %d bytes, wasting the cap of %d", len(res.Output), limit)
				}
				checkElided(t, "Output", res.Output, want, limit)
			})
		}
	}
}

// Bytes that are not UTF-8 are cut wherever they fall, within the cap.
func TestCaptureBinary(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	for _, limit := range []int{64, 65, 1000} {
		want := make([]byte, 50*limit)
		for i := range want {
			want[i] = byte(r.IntN(256))
		}
		res := feed(r, limit, want)
		if len(res.Output) > limit || len(res.Output) < limit-10 {
			t.Errorf("cap %d: Output is %d bytes", limit, len(res.Output))
		}
		if !bytes.Equal(res.Full, want) || res.Bytes != int64(len(want)) {
			t.Errorf("cap %d: Full %d bytes, Bytes %d; want %d", limit, len(res.Full), res.Bytes, len(want))
		}
	}
	// All continuation bytes: no rune start to cut at.
	want := bytes.Repeat([]byte{0x80}, 1000)
	if res := feed(r, 100, want); len(res.Output) > 100 || len(res.Output) < 90 {
		t.Errorf("continuation bytes: Output is %d bytes", len(res.Output))
	}
}

func TestCaptureOverMaxFull(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	want := bytes.Repeat([]byte("abc€😀"), MaxFullOutput/10+12345)
	res := feed(r, DefaultOutputCap, want)
	if res.Bytes != int64(len(want)) || !res.Truncated {
		t.Fatalf("Bytes = %d, Truncated = %v", res.Bytes, res.Truncated)
	}
	if len(res.Full) > MaxFullOutput || len(res.Full) < MaxFullOutput-10 {
		t.Errorf("Full is %d bytes, want about %d", len(res.Full), MaxFullOutput)
	}
	if !utf8.Valid(res.Full) || !utf8.ValidString(res.Output) {
		t.Error("not valid UTF-8")
	}
	checkElided(t, "Full", string(res.Full), want, MaxFullOutput)
	checkElided(t, "Output", res.Output, want, DefaultOutputCap)
}

func TestCuts(t *testing.T) {
	t.Parallel()
	b := []byte("a€b") // a E2 82 AC b
	for i, want := range []int{0, 1, 1, 1, 4, 5} {
		if got := cutBefore(b, i); got != want {
			t.Errorf("cutBefore(%d) = %d, want %d", i, got, want)
		}
	}
	for i, want := range []int{0, 1, 4, 4, 4, 5} {
		if got := cutAfter(b, i); got != want {
			t.Errorf("cutAfter(%d) = %d, want %d", i, got, want)
		}
	}
}
