#!/usr/bin/env bash
# bench/streaming.sh — sessiond's streaming benchmark.
#
# Builds ./cmd/sessiond and bench/streaming into a temporary directory and
# runs the benchmark against that binary: a fake OpenAI-compatible model
# server in the benchmark program streams 10,000 small text deltas per
# turn to a `sessiond serve`, and one client on its socket reads them back
# as session/event notifications. Prints a Markdown table (after a line
# describing the machine) on stdout; progress goes to stderr. Extra
# arguments go to the benchmark program (see `bench/streaming.sh -h`), e.g.
#   bench/streaming.sh -runs 5 -interval 200us
#   bench/streaming.sh -cpuprofile /tmp/client.prof   # the program, not the daemon
# Takes about 10–30 s; it starts and stops its own daemon in a fresh data
# dir and HOME and leaves nothing running.
set -euo pipefail

cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sessiond-streaming-bin.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "· building sessiond and the benchmark" >&2
go build -o "$tmp/sessiond" ./cmd/sessiond
go build -o "$tmp/streaming" ./bench/streaming

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then rev="$rev+dirty"; fi

# Other work on the machine skews every number here: say how busy it was.
load=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${load%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
	echo "· warning: load average $load on $(nproc) CPUs; the results will be noisy" >&2
fi

# Run first, print the header after: the table is stdout's only other
# content, so a failed run prints nothing misleading.
table=$("$tmp/streaming" -sessiond "$tmp/sessiond" "$@")

echo "Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $mem RAM; $(uname -sr); $(go version | cut -d' ' -f3-); load average before the run $load; commit $rev; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "$table"
