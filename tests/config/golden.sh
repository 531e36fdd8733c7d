#!/bin/sh
# golden.sh - sipc-epmd --check-config against golden files, as OpenBSD's
# bgpd tests its parser: for each CASE.conf (with the extra arguments in
# CASE.args, if any), the output of
#     sipc-epmd --check-config -c CASE.conf ARGS 2>&1; echo "exit $?"
# must equal CASE.ok.  Runs in this directory so paths stay short.
# SIPC_UPDATE_GOLDEN=1 rewrites the .ok files (then read the diff!).
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${SIPC_BUILD:-$here/../../build}/bin/sipc-epmd
cd "$here" || exit 1
fail=0
n=0
for conf in *.conf; do
	case=${conf%.conf}
	args=
	[ -f "$case.args" ] && args=$(cat "$case.args")
	# shellcheck disable=SC2086
	got=$("$bin" --check-config -c "$conf" $args 2>&1; echo "exit $?")
	n=$((n + 1))
	if [ "${SIPC_UPDATE_GOLDEN:-}" = 1 ]; then
		printf '%s\n' "$got" > "$case.ok"
		continue
	fi
	if ! printf '%s\n' "$got" | diff -u "$case.ok" - ; then
		echo "golden: $case: output differs from $case.ok"
		fail=1
	fi
done
[ $fail -eq 0 ] && echo "golden: $n config cases match"
exit $fail
