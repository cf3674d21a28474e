#!/usr/bin/env bash
# bench/timemachine.sh — benchmark of sessiond's workspace time machine
# (DESIGN §4) against the git method other coding agents use to snapshot.
#
# Builds bench/timemachine into a temporary directory and runs it on a
# generated 100,000-file workspace and on a copy of $(go env GOROOT)/src,
# measuring sessiond and the git method on the same tree in the same run.
# Prints a Markdown table per tree (after a line describing the machine) on
# stdout; progress goes to stderr. Extra arguments go to the program (see
# `bench/timemachine.sh -h`), e.g.
#   bench/timemachine.sh --quick                   # 10,000 files: about a minute
#   bench/timemachine.sh -trees generated -files 50000
#   bench/timemachine.sh -cpuprofile /tmp/tm.prof  # then: go tool pprof -tagfocus phase=capture
# The full run takes several minutes on 2 cores and about 2 GiB of disk in
# $TMPDIR (or -tmp DIR), all removed at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
bin=$(mktemp -d "${TMPDIR:-/tmp}/sessiond-timemachine-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT

echo "· building bench/timemachine" >&2
go build -o "$bin/timemachine" ./bench/timemachine

rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then rev="$rev+dirty"; fi

# Other work on the machine skews every number here: say how busy it was.
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo 0)
if awk -v l="${load%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
	echo "· warning: load average $load on $(nproc) CPUs; the results will be noisy" >&2
fi

"$bin/timemachine" -goroot "$(go env GOROOT)" -commit "$rev" "$@"
