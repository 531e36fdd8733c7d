#!/bin/sh
# test_notify.sh - the broker keeps the promise of the systemd unit's
# Type=notify, with a stand-in for systemd's notification socket
# ($NOTIFY_SOCKET): READY=1 once it accepts connections (brokerctl ping
# answers at once), RELOADING=1 then READY=1 on SIGHUP (ExecReload),
# STOPPING=1 on SIGTERM, then a clean exit.
set -u
# shellcheck source=tests/install/common.sh
. "${SIPC_SRC:?is unset: run this through make check}/tests/install/common.sh"
need cc

brokerctl=$SIPC_BUILD/bin/brokerctl
# shellcheck disable=SC2086	# the sanitizer flags
if ! cc $SIPC_SANITIZE -o "$T/notify_listen" \
    "$SIPC_SRC/tests/install/notify_listen.c" 2>"$T/cc.log"; then
	fail "cc notify_listen.c:"
	cat "$T/cc.log"
	finish
fi

sock=$T/notify.sock
out=$T/notify.out
spawn "$T/notify_listen" "$sock" 30 >"$out"
lpid=$!
wait_for 5 test -S "$sock"
spawn env NOTIFY_SOCKET="$sock" "$SIPC_BUILD/bin/sipc-epmd" \
    --listen 127.0.0.1:0 --port-file "$T/port" --log-level warn
bpid=$!

check "READY=1 arrives" wait_for 10 grep -qx "READY=1" "$out"
check "the broker answers when READY=1 is sent" \
    "$brokerctl" --broker "127.0.0.1:$(cat "$T/port" 2>/dev/null)" \
    --timeout 2000 ping
kill -HUP "$bpid"
check "SIGHUP: RELOADING=1" wait_for 10 grep -q "RELOADING=1" "$out"
check "SIGHUP: READY=1 again" \
    wait_for 10 sh -c "[ \$(grep -c 'READY=1' '$out') -ge 2 ]"
kill -TERM "$bpid"
check "SIGTERM: STOPPING=1" wait_for 10 grep -q "STOPPING=1" "$out"
wait "$bpid"
check "the broker exits 0 after SIGTERM" [ $? -eq 0 ]
wait "$lpid"
echo "notifications:"
sed 's/^/    | /' "$out"

finish
