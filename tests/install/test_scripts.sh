#!/bin/sh
# test_scripts.sh - scripts/sipc-epmd-start and sipc-epmd-stop against a
# real broker on a loopback port: start, start again (already running),
# ping it, stop, stop again (not running), stale pidfiles (a dead pid, a
# pid that is not sipc-epmd: never signalled), the pidfile named in the
# config, options passed through, a bad option (exit 2), a broker that
# cannot start (exit 1), and a broker that ignores SIGTERM (--timeout,
# --kill).
set -u
# shellcheck source=tests/install/common.sh
. "${SIPC_SRC:?is unset: run this through make check}/tests/install/common.sh"

start=$SIPC_SRC/scripts/sipc-epmd-start
stop=$SIPC_SRC/scripts/sipc-epmd-stop
brokerctl=$SIPC_BUILD/bin/brokerctl
SIPC_EPMD=$SIPC_BUILD/bin/sipc-epmd
export SIPC_EPMD
unset SIPC_EPMD_PIDFILE SIPC_EPMD_CONFIG SIPC_BROKER

conf=$T/epmd.conf
pidfile=$T/epmd.pid
cat >"$conf" <<EOF
listen = 127.0.0.1:0
port_file = $T/port
log_level = warn
EOF

# run NAME CMD...: runs CMD, its output in $T/NAME.out, its status in $rc.
run() {
	name=$1
	shift
	"$@" >"$T/$name.out" 2>&1
	rc=$?
	sed 's/^/    | /' "$T/$name.out"
}

# Remembers a daemon's pid so that cleanup ends it whatever happens.
track() {
	[ -n "$1" ] && echo "$1" >>"$T/daemons"
}

# (is_sipc_epmd and gone run through check, which shellcheck does not follow.)
# shellcheck disable=SC2317
is_sipc_epmd() {
	[ "$(cat "/proc/$1/comm" 2>/dev/null)" = sipc-epmd ]
}

# gone PID: not running (or a zombie).
# shellcheck disable=SC2317
gone() {
	! kill -0 "$1" 2>/dev/null ||
	    [ "$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# ---- start, start again, ping, stop, stop again --------------------------------

run start1 "$start" --config "$conf" --pidfile "$pidfile"
pid=$(cat "$pidfile" 2>/dev/null)
track "$pid"
check "start: exit 0" [ "$rc" -eq 0 ]
check "start: says 'started (pid $pid)'" \
    grep -qx "sipc-epmd: started (pid $pid)" "$T/start1.out"
check "start: the pidfile names a running sipc-epmd" is_sipc_epmd "$pid"
port=$(cat "$T/port" 2>/dev/null)
check "start: brokerctl ping answers on 127.0.0.1:$port" \
    "$brokerctl" --broker "127.0.0.1:$port" --timeout 2000 ping

run start2 "$start" --config "$conf" --pidfile "$pidfile"
check "start again: exit 0" [ "$rc" -eq 0 ]
check "start again: says 'already running (pid $pid)'" \
    grep -qx "sipc-epmd: already running (pid $pid)" "$T/start2.out"
check "start again: same pid in the pidfile" \
    [ "$(cat "$pidfile")" = "$pid" ]

run stop1 "$stop" --pidfile "$pidfile"
check "stop: exit 0" [ "$rc" -eq 0 ]
check "stop: says 'stopped (pid $pid)'" \
    grep -qx "sipc-epmd: stopped (pid $pid)" "$T/stop1.out"
check "stop: the broker is gone" gone "$pid"
check "stop: the pidfile is gone" [ ! -e "$pidfile" ]
check "stop: brokerctl ping fails" \
    sh -c "! '$brokerctl' --broker 127.0.0.1:$port --timeout 500 ping \
    >/dev/null 2>&1"

run stop2 "$stop" --pidfile "$pidfile"
check "stop again: exit 0" [ "$rc" -eq 0 ]
check "stop again: says 'not running'" \
    grep -q "^sipc-epmd: not running" "$T/stop2.out"

# ---- stale pidfiles -------------------------------------------------------------

# A pid that no process has: the most recent pid is gone.
sh -c 'exit 0' &
dead=$!
wait "$dead"
echo "$dead" >"$pidfile"
run stop3 "$stop" --pidfile "$pidfile"
check "stop, dead pid: exit 0, 'not running (removed stale pidfile ...)'" \
    sh -c "[ $rc -eq 0 ] && grep -q 'not running (removed stale pidfile' \
    '$T/stop3.out'"
check "stop, dead pid: the pidfile is gone" [ ! -e "$pidfile" ]

# A live process that is not sipc-epmd must never be signalled.
spawn sleep 60
other=$!
echo "$other" >"$pidfile"
run stop4 "$stop" --pidfile "$pidfile"
check "stop, pid of another program: exit 0, stale pidfile removed" \
    sh -c "[ $rc -eq 0 ] && [ ! -e '$pidfile' ]"
check "stop, pid of another program: that program still runs" \
    kill -0 "$other"
echo "$other" >"$pidfile"
run start3 "$start" --config "$conf" --pidfile "$pidfile"
pid=$(cat "$pidfile" 2>/dev/null)
track "$pid"
check "start over a stale pidfile: removes it and starts" \
    sh -c "[ $rc -eq 0 ] && grep -q 'removed stale pidfile' '$T/start3.out' \
    && grep -qx 'sipc-epmd: started (pid $pid)' '$T/start3.out'"
check "start over a stale pidfile: the other program still runs" \
    kill -0 "$other"
run stop5 "$stop" --pidfile "$pidfile"
check "stop: exit 0" [ "$rc" -eq 0 ]
check "stop: the broker is gone" gone "$pid"

# ---- the config's pidfile, options passed through, environment -----------------

cp "$conf" "$T/withpid.conf"
echo "pidfile = $T/cfg.pid" >>"$T/withpid.conf"
run start4 "$start" --config "$T/withpid.conf" --log-level info
pid=$(cat "$T/cfg.pid" 2>/dev/null)
track "$pid"
check "start: uses the pidfile of the config" \
    sh -c "[ $rc -eq 0 ] && [ -n '$pid' ] && grep -qx \
    'sipc-epmd: started (pid $pid)' '$T/start4.out'"
check "start: passes --log-level info through to sipc-epmd" \
    sh -c "tr '\\0' ' ' </proc/$pid/cmdline | grep -q -- '--log-level info'"
run stop6 env SIPC_EPMD_CONFIG="$T/withpid.conf" "$stop"
check "stop: finds the pidfile through \$SIPC_EPMD_CONFIG" \
    sh -c "[ $rc -eq 0 ] && grep -qx 'sipc-epmd: stopped (pid $pid)' \
    '$T/stop6.out'"

run start5 env SIPC_EPMD_PIDFILE="$T/env.pid" "$start" --config "$conf"
pid=$(cat "$T/env.pid" 2>/dev/null)
track "$pid"
check "start: \$SIPC_EPMD_PIDFILE names the pidfile" \
    sh -c "[ $rc -eq 0 ] && [ -n '$pid' ]"
run stop7 env SIPC_EPMD_PIDFILE="$T/env.pid" "$stop"
check "stop: \$SIPC_EPMD_PIDFILE names the pidfile" \
    sh -c "[ $rc -eq 0 ] && grep -qx 'sipc-epmd: stopped (pid $pid)' \
    '$T/stop7.out'"

if [ "$(id -u)" -ne 0 ]; then
	mkdir -m 0700 "$T/xdg"
	run start6 env XDG_RUNTIME_DIR="$T/xdg" "$start" --config "$conf"
	pid=$(cat "$T/xdg/sipc-epmd.pid" 2>/dev/null)
	track "$pid"
	check "start as a user: the pidfile is \$XDG_RUNTIME_DIR/sipc-epmd.pid" \
	    sh -c "[ $rc -eq 0 ] && [ -n '$pid' ]"
	run stop8 env XDG_RUNTIME_DIR="$T/xdg" "$stop"
	check "stop as a user: finds \$XDG_RUNTIME_DIR/sipc-epmd.pid" \
	    sh -c "[ $rc -eq 0 ] && [ ! -e '$T/xdg/sipc-epmd.pid' ]"
else
	echo "note: root; the default pidfile of users is not tried"
fi

# ---- failures -------------------------------------------------------------------

run bad1 "$start" --config "$conf" --pidfile "$pidfile" --no-such-option
check "start with a bad option: exit 2" [ "$rc" -eq 2 ]
check "start with a bad option: names it" \
    grep -q "no-such-option" "$T/bad1.out"
check "start with a bad option: nothing started" [ ! -e "$pidfile" ]

run bad2 "$start" --config "$T/missing.conf" --pidfile "$pidfile"
check "start with a missing config: exit 1, says so" \
    sh -c "[ $rc -eq 1 ] && grep -q 'cannot read config file' '$T/bad2.out'"

run bad3 "$stop" --timeout soon
check "stop with a bad --timeout: exit 2" [ "$rc" -eq 2 ]

# A broker that cannot bind: the port is taken by another broker.
spawn "$SIPC_EPMD" --listen 127.0.0.1:0 --port-file "$T/busy" --log-level warn
busy=$!
wait_for 10 test -s "$T/busy"
run bad4 "$start" --config "$conf" --pidfile "$pidfile" \
    --listen "127.0.0.1:$(cat "$T/busy")"
check "start on a busy port: exit 1" [ "$rc" -eq 1 ]
check "start on a busy port: says it did not start" \
    grep -q "did not start" "$T/bad4.out"
check "start on a busy port: no pidfile left" [ ! -e "$pidfile" ]
kill -TERM "$busy"
wait "$busy"

# A "sipc-epmd" that ignores SIGTERM: a copy of sleep of that name.
cp "$(command -v sleep)" "$T/sipc-epmd"
spawn sh -c "trap '' TERM; exec '$T/sipc-epmd' 60"
stubborn=$!
wait_for 5 is_sipc_epmd "$stubborn"
echo "$stubborn" >"$pidfile"
t0=$(date +%s)
run stop9 "$stop" --pidfile "$pidfile" --timeout 1
t1=$(date +%s)
check "stop, SIGTERM ignored: exit 1 after the timeout" [ "$rc" -eq 1 ]
check "stop, SIGTERM ignored: gave up within 3 s" [ $((t1 - t0)) -le 3 ]
check "stop, SIGTERM ignored: says it still runs" \
    grep -q "still running after 1 s" "$T/stop9.out"
run stop10 "$stop" --pidfile "$pidfile" --timeout 1 --kill
check "stop --kill: exit 0, stopped" sh -c "[ $rc -eq 0 ] && grep -qx \
    'sipc-epmd: stopped (pid $stubborn)' '$T/stop10.out'"
wait "$stubborn" 2>/dev/null

finish
