//go:build linux

package writetrace

import "golang.org/x/sys/unix"

// nativeArch is the audit architecture of this build; the table does not
// cover the system calls of any other (32-bit ARM programs).
const nativeArch = unix.AUDIT_ARCH_AARCH64

// x32Bit is 0: arm64 has no second ABI sharing its audit architecture.
const x32Bit = 0

// legacyCalls is empty: arm64 has only the *at calls.
func legacyCalls([]pathArg) map[uintptr]call { return nil }
