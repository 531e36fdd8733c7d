#!/bin/sh
# run.sh - run test programs one after another, each bounded in time, and
# summarize.  Exit status 1 when any failed.  Used by "make check".
#
#   tests/run.sh PROGRAM...
#
# Each program is a Check runner (or any program: exit 0 means passed).
# SIPC_TEST_TIMEOUT bounds each program in seconds (default 900).
set -u

limit=${SIPC_TEST_TIMEOUT:-900}
failed=
passed=0
start=$(date +%s)
for t in "$@"; do
	name=$(basename "$t")
	echo "=== $name"
	t0=$(date +%s)
	timeout -k 10 "$limit" "$t"
	rc=$?
	t1=$(date +%s)
	if [ "$rc" -eq 0 ]; then
		echo "=== $name: passed ($((t1 - t0)) s)"
		passed=$((passed + 1))
	else
		[ "$rc" -eq 124 ] && echo "=== $name: timed out after $limit s"
		echo "=== $name: FAILED (exit $rc, $((t1 - t0)) s)"
		failed="$failed $name"
	fi
done
end=$(date +%s)
echo
if [ -n "$failed" ]; then
	echo "FAILED:$failed ($passed passed, $((end - start)) s)"
	exit 1
fi
echo "all $passed test programs passed ($((end - start)) s)"
