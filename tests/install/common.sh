# common.sh - helpers of the packaging tests (sourced, not run).
#
# Each test is run by make check through a wrapper that sets SIPC_SRC (the
# source tree) and SIPC_B (the build directory, as given to make);
# tests/run.sh sets SIPC_BUILD (its absolute path).  Each test works in a
# temporary directory of its own, removed at exit, and ends every process
# it started, by pid.
#
#   ok MESSAGE          a check passed
#   fail MESSAGE        a check failed: print and count it
#   need CMD...         stop with a failure when a tool is missing
#   finish              exit 0 when nothing failed, else 1
#   spawn CMD...        start CMD in the background (its pid is $! after)
#   pmake ARGS...       make in the source tree with the test's build dir

: "${SIPC_SRC:?run through make check}"
: "${SIPC_B:?run through make check}"
SIPC_BUILD=${SIPC_BUILD:-$SIPC_SRC/$SIPC_B}
SIPC_SANITIZE=${SIPC_SANITIZE:-}

nfail=0
npass=0
pids=
T=$(mktemp -d "${TMPDIR:-/tmp}/sipc-test.XXXXXX")

ok() {
	npass=$((npass + 1))
	echo "ok: $*"
}

fail() {
	nfail=$((nfail + 1))
	echo "FAIL: $*"
}

# check DESCRIPTION CMD...: ok when CMD succeeds, else fail.
check() {
	what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}

need() {
	for c in "$@"; do
		if ! command -v "$c" >/dev/null 2>&1; then
			echo "FAIL: $c not installed (scripts/install-deps.sh" \
			    "installs it)"
			exit 1
		fi
	done
}

spawn() {
	"$@" &
	pids="$pids $!"
}

# Ends what the test started: its own children, and daemons whose pids it
# recorded in $T/daemons; first runs $cleanup_hook, when the test set one.
cleanup_hook=
cleanup() {
	[ -z "$cleanup_hook" ] || $cleanup_hook
	for p in $pids $(cat "$T/daemons" 2>/dev/null); do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in $pids; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# make in the tree, not inheriting make check's jobserver.
pmake() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	    make --no-print-directory -C "$SIPC_SRC" B="$SIPC_B" "$@"
}

makevar() {
	sed -n "s/^$1[[:space:]]*=[[:space:]]*//p" "$SIPC_SRC/Makefile" |
	    head -n 1
}

finish() {
	echo "$npass passed, $nfail failed"
	[ "$nfail" -eq 0 ]
	exit
}

# wait_for SECONDS CMD...: polls CMD ten times a second until it succeeds.
wait_for() {
	n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" 2>/dev/null && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}
