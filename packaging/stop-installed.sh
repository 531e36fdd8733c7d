#!/bin/sh
# stop-installed.sh - before "make uninstall" removes a sipc-epmd, stop
# every broker that runs that very executable (however it was started: by
# sipc-epmd-start, by hand, by systemd), and only those.
#
#   sh packaging/stop-installed.sh /usr/local/sbin/sipc-epmd [UNIT-FILE]
#
# With UNIT-FILE, and systemd running with that file loaded as
# sipc-epmd.service, the service is disabled and stopped through systemctl
# first.  Exit status: 0 nothing of it runs any more; 1 something still
# does after 10 seconds.
set -eu

exe=$1
unit=${2:-}

if [ -n "$unit" ] && [ -d /run/systemd/system ] && [ -e "$unit" ] &&
    [ "$(systemctl show -P FragmentPath sipc-epmd.service 2>/dev/null)" = \
    "$unit" ]; then
	echo "systemctl disable --now sipc-epmd.service"
	systemctl disable --now sipc-epmd.service
fi

# running: the pids of live processes whose executable is $exe.
running() {
	for d in /proc/[0-9]*; do
		case $(readlink "$d/exe" 2>/dev/null || true) in
		"$exe" | "$exe (deleted)") ;;
		*) continue ;;
		esac
		state=$(sed 's/.*) \(.\).*/\1/' "$d/stat" 2>/dev/null || echo Z)
		[ "$state" = Z ] || printf ' %s' "${d#/proc/}"
	done
}

pids=$(running)
[ -n "$pids" ] || exit 0
echo "stopping $exe (pid$pids)"
# shellcheck disable=SC2086	# a list of pids
kill -TERM $pids 2>/dev/null || true
n=100
while [ -n "$(running)" ]; do
	if [ "$n" -le 0 ]; then
		echo "$exe is still running (pid$(running)); stop it" \
		    "and try again" >&2
		exit 1
	fi
	sleep 0.1
	n=$((n - 1))
done
