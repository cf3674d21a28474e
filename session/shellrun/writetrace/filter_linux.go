//go:build linux && (amd64 || arm64)

package writetrace

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data, the input of a seccomp filter: nr (int),
// arch (u32), instruction_pointer (u64), args[6] (u64 each). Both
// architectures are little-endian, so an argument's low 32 bits are at
// its offset.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// bpfProgram builds a classic BPF program from labelled jumps.
type bpfProgram struct {
	insns  []unix.SockFilter
	labels map[string]int
	jumps  []bpfJump
}

type bpfJump struct {
	at     int
	jt, jf string // "" falls through
}

func (p *bpfProgram) stmt(code uint16, k uint32) {
	p.insns = append(p.insns, unix.SockFilter{Code: code, K: k})
}

// jump appends a conditional jump to labels jt and jf ("": the next
// instruction).
func (p *bpfProgram) jump(code uint16, k uint32, jt, jf string) {
	p.jumps = append(p.jumps, bpfJump{at: len(p.insns), jt: jt, jf: jf})
	p.stmt(code, k)
}

func (p *bpfProgram) label(name string) {
	if p.labels == nil {
		p.labels = map[string]int{}
	}
	p.labels[name] = len(p.insns)
}

// assemble resolves the labels; jumps go forward only, at most 255
// instructions, as classic BPF requires.
func (p *bpfProgram) assemble() ([]unix.SockFilter, error) {
	off := func(from int, label string) (uint8, error) {
		if label == "" {
			return 0, nil
		}
		to, ok := p.labels[label]
		if !ok {
			return 0, fmt.Errorf("bpf: no label %q", label)
		}
		d := to - from - 1
		if d < 0 || d > 255 {
			return 0, fmt.Errorf("bpf: jump from %d to %q (%d) out of range", from, label, to)
		}
		return uint8(d), nil
	}
	out := slices.Clone(p.insns)
	for _, j := range p.jumps {
		var err error
		if out[j.at].Jt, err = off(j.at, j.jt); err != nil {
			return nil, err
		}
		if out[j.at].Jf, err = off(j.at, j.jf); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// filterProgram is the seccomp filter: system calls of another
// architecture (or x32) stop, so the supervisor can say the trace is
// incomplete; the calls in calls stop, open and openat only with a write
// flag; everything else runs without a stop.
func filterProgram(calls map[uintptr]call) ([]unix.SockFilter, error) {
	const (
		ldW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		jset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
	)
	var p bpfProgram
	p.stmt(ldW, offArch)
	p.jump(jeq, nativeArch, "", "notify")
	p.stmt(ldW, offNr)
	if x32Bit != 0 {
		p.jump(jge, x32Bit, "notify", "")
	}
	nrs := make([]uintptr, 0, len(calls))
	for nr := range calls {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs) // a stable program
	var flagChecks []uintptr
	for _, nr := range nrs {
		if calls[nr].flagsArg > 0 {
			p.jump(jeq, uint32(nr), fmt.Sprint("flags", nr), "")
			flagChecks = append(flagChecks, nr)
			continue
		}
		p.jump(jeq, uint32(nr), "notify", "")
	}
	p.stmt(ret, unix.SECCOMP_RET_ALLOW)
	for _, nr := range flagChecks {
		p.label(fmt.Sprint("flags", nr))
		p.stmt(ldW, uint32(offArgs+8*calls[nr].flagsArg))
		p.jump(jset, writeOpenFlags, "notify", "allow")
	}
	p.label("allow")
	p.stmt(ret, unix.SECCOMP_RET_ALLOW)
	p.label("notify")
	p.stmt(ret, unix.SECCOMP_RET_USER_NOTIF)
	return p.assemble()
}
