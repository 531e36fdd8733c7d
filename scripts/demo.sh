#!/bin/sh
# demo.sh - the main job, end to end, on real input: a text file streamed
# line by line from one sender to three receivers, first through the
# sipc-epmd broker on a free loopback port, then through the local
# registry with no daemon.  Every receiver's output must have the input's
# SHA-256.  Exits 0 only if everything matched; cleans up every process it
# started (by pid).
#
#   scripts/demo.sh [BUILD_DIR] [INPUT_FILE]
set -u

BUILD=${1:-build}
INPUT=${2:-/usr/share/common-licenses/GPL-3}
[ -r "$INPUT" ] || INPUT=$(dirname "$0")/../proto/PROTOCOL.md
BIN=$(cd "$BUILD/bin" && pwd)
WORK=$(mktemp -d /tmp/sipc-demo.XXXXXX)
chmod 700 "$WORK"
PIDS=
HANDLE=demo.lines

cleanup() {
	for p in $PIDS; do
		kill "$p" 2>/dev/null
	done
	for p in $PIDS; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

say() { printf '%s\n' "$*"; }
fail() { say "demo: $*" >&2; exit 1; }

LINES=$(wc -l < "$INPUT" | tr -d ' ')
WANT=$(sha256sum < "$INPUT" | cut -d' ' -f1)
say "input: $INPUT, $LINES lines, sha256 $WANT"

# Waits for pids, at most $1 seconds in all; 0 when all exited 0.
wait_pids() {
	limit=$1
	shift
	rc=0
	for p in "$@"; do
		n=0
		while kill -0 "$p" 2>/dev/null && [ $n -lt $((limit * 10)) ]; do
			sleep 0.1
			n=$((n + 1))
		done
		if kill -0 "$p" 2>/dev/null; then
			kill "$p" 2>/dev/null
			rc=1
		fi
		wait "$p" || rc=1
	done
	return $rc
}

# run MODE BROKER_ARGS...: three receivers, one sender, compare.
run() {
	mode=$1
	shift
	rpids=
	for i in 1 2 3; do
		"$BIN/sipc" recv "$HANDLE" "$@" --count "$LINES" \
		    --output "$WORK/$mode.$i.out" 2>"$WORK/$mode.$i.err" &
		rpids="$rpids $!"
		PIDS="$PIDS $!"
	done
	if [ "$mode" = broker ]; then
		# Show what the broker holds once all three registered.
		n=0
		while [ $n -lt 100 ]; do
			c=$("$BIN/brokerctl" "$@" --json show "$HANDLE" |
			    grep -o '"id"' | wc -l)
			[ "$c" -ge 3 ] && break
			sleep 0.1
			n=$((n + 1))
		done
		say
		say "\$ brokerctl list"
		"$BIN/brokerctl" "$@" list
		say "\$ brokerctl show $HANDLE"
		"$BIN/brokerctl" "$@" show "$HANDLE"
		say
	fi
	t0=$(date +%s%N)
	if ! timeout 60 "$BIN/sipc" send "$HANDLE" "$@" --wait-receivers 3 \
	    --timeout 20000 --file "$INPUT"; then
		say "$mode: sipc send failed"
		return 1
	fi
	t1=$(date +%s%N)
	wait_pids 20 $rpids || { say "$mode: a receiver failed:"; \
	    cat "$WORK"/$mode.*.err; return 1; }
	ok=0
	for i in 1 2 3; do
		got=$(sha256sum < "$WORK/$mode.$i.out" | cut -d' ' -f1)
		if [ "$got" = "$WANT" ]; then
			say "$mode: receiver $i: sha256 $got  match"
			ok=$((ok + 1))
		else
			say "$mode: receiver $i: sha256 $got  MISMATCH"
		fi
	done
	say "$mode: $LINES messages to 3 receivers in" \
	    "$(( (t1 - t0) / 1000000 )) ms, $ok of 3 matched"
	[ $ok -eq 3 ]
}

say
say "== 1. through the sipc-epmd broker"
"$BIN/sipc-epmd" --listen 127.0.0.1:0 --port-file "$WORK/port" \
    2>"$WORK/broker.log" &
BROKER=$!
PIDS="$PIDS $BROKER"
n=0
while [ ! -s "$WORK/port" ] && [ $n -lt 100 ]; do
	sleep 0.1
	n=$((n + 1))
done
[ -s "$WORK/port" ] || fail "broker did not start: $(cat "$WORK/broker.log")"
ADDR=127.0.0.1:$(cat "$WORK/port")
say "broker listening on $ADDR"
run broker --broker "$ADDR"
R1=$?
kill "$BROKER"
wait "$BROKER" 2>/dev/null

say
say "== 2. through the local registry (no daemon)"
mkdir -m 700 "$WORK/xdg"
XDG_RUNTIME_DIR=$WORK/xdg
SIPC_BROKER=
export XDG_RUNTIME_DIR SIPC_BROKER
say "registry: $XDG_RUNTIME_DIR/sipc"
run local
R2=$?

say
if [ $R1 -eq 0 ] && [ $R2 -eq 0 ]; then
	say "demo: OK - both runs delivered every line to every receiver"
	exit 0
fi
say "demo: FAILED (broker run: $R1, local run: $R2)"
exit 1
