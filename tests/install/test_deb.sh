#!/bin/sh
# test_deb.sh - the Debian packages, end to end, on this machine (as root;
# it must not have sipc packages installed already):
#   1. make deb builds sipc-epmd, sipc-tools, libsipc2, libsipc-dev and
#      python3-sipc; lintian finds no error in them;
#   2. installed with apt-get, where services may start (policy-rc.d allows)
#      and systemd is not running, the broker is enabled (systemd and rc.d
#      links) and started through the init script and sipc-epmd-start:
#      brokerctl ping answers on 127.0.0.1:4455; the config is a conffile;
#      the installed unit passes systemd-analyze verify; a program built
#      from the -dev package's example with pkg-config gets a message
#      through the broker, and so does /usr/bin/python3 with the sipc
#      module; "service sipc-epmd reload" keeps it running;
#   3. apt-get remove stops it, apt-get purge removes every file, the
#      config, the links: nothing runs, nothing is left;
#   4. installed again where policy-rc.d forbids starting services (as in
#      Docker images): the install succeeds without starting the broker;
#      started by hand, it is still stopped by the purge.
# The machine is left as it was: policy-rc.d restored, packages purged,
# the system user removed when the test created it.
set -u
# shellcheck source=tests/install/common.sh
. "${SIPC_SRC:?is unset: run this through make check}/tests/install/common.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "SKIPPED: installing packages needs root (make check-deb as root)"
	exit 0
fi
if [ -n "$SIPC_SANITIZE" ]; then
	echo "SKIPPED: the packages do not depend on sanitizer builds;" \
	    "make check runs this test"
	exit 0
fi
need dpkg-buildpackage dh lintian apt-get flock readelf cc pkg-config

# One run at a time on a machine.
exec 9>/tmp/sipc-test-deb.lock
if ! flock -w 900 9; then
	echo "FAIL: another test_deb holds /tmp/sipc-test-deb.lock"
	exit 1
fi

PKGS="sipc-epmd sipc-tools libsipc2 libsipc-dev python3-sipc"
for p in $PKGS; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "ok installed"; then
		echo "SKIPPED: $p is installed on this machine; this test" \
		    "installs and purges the packages, so it leaves it alone"
		exit 0
	fi
done
if "$SIPC_BUILD/bin/brokerctl" --timeout 500 ping >/dev/null 2>&1; then
	echo "SKIPPED: a broker already answers on 127.0.0.1:4455, where" \
	    "the packaged one would listen"
	exit 0
fi

apt() {
	DEBIAN_FRONTEND=noninteractive apt-get -y -q \
	    -o DPkg::Lock::Timeout=120 --no-install-recommends "$@"
}

policy=/usr/sbin/policy-rc.d
had_user=no
getent passwd _sipc-epmd >/dev/null && had_user=yes
if [ -e "$policy" ]; then
	cp -p "$policy" "$T/policy-rc.d.saved"
fi
# (deb_cleanup and brokerctl_ping run indirectly: shellcheck cannot tell.)
# shellcheck disable=SC2317
deb_cleanup() {
	for p in $PKGS; do
		if dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		    grep -q "installed"; then
			dpkg --purge "$p" >/dev/null 2>&1 || true
		fi
	done
	sh "$SIPC_SRC/packaging/stop-installed.sh" /usr/sbin/sipc-epmd \
	    >/dev/null 2>&1 || true
	if [ -e "$T/policy-rc.d.saved" ]; then
		cp -p "$T/policy-rc.d.saved" "$policy"
	else
		rm -f "$policy"
	fi
	if [ "$had_user" = no ] && getent passwd _sipc-epmd >/dev/null; then
		deluser --system --quiet _sipc-epmd >/dev/null 2>&1 || true
		getent group _sipc-epmd >/dev/null &&
		    delgroup --system --quiet _sipc-epmd >/dev/null 2>&1
	fi
}
cleanup_hook=deb_cleanup

# policy ALLOW|DENY: what policy-rc.d answers invoke-rc.d.
set_policy() {
	if [ "$1" = allow ]; then
		printf '#!/bin/sh\nexit 0\n' >"$policy"
	else
		printf '#!/bin/sh\nexit 101\n' >"$policy"
	fi
	chmod 0755 "$policy"
}

# running: pids of live processes of /usr/sbin/sipc-epmd.
running() {
	for d in /proc/[0-9]*; do
		case $(readlink "$d/exe" 2>/dev/null) in
		/usr/sbin/sipc-epmd | "/usr/sbin/sipc-epmd (deleted)")
			printf ' %s' "${d#/proc/}" ;;
		esac
	done
}

# shellcheck disable=SC2317
brokerctl_ping() {
	/usr/bin/brokerctl --broker 127.0.0.1:4455 --timeout 2000 ping
}

# ---- 1. build and lintian -------------------------------------------------------

t0=$(date +%s)
if pmake deb >"$T/deb.log" 2>&1; then
	ok "make deb ($(($(date +%s) - t0)) s)"
else
	fail "make deb:"
	tail -n 40 "$T/deb.log"
	finish
fi
D=$SIPC_BUILD/deb
version=$(makevar VERSION)
arch=$(dpkg --print-architecture)
debs=
for p in $PKGS; do
	a=$arch
	[ "$p" = python3-sipc ] && a=all
	f=$D/${p}_${version}_$a.deb
	check "built $(basename "$f")" [ -f "$f" ]
	debs="$debs $f"
done

t0=$(date +%s)
lintian --pedantic "$D/sipc_${version}_$arch.changes" >"$T/lintian.log" 2>&1
grep -v "^running with root privileges" "$T/lintian.log" | sed 's/^/    | /'
nerr=$(grep -c '^E:' "$T/lintian.log")
nwarn=$(grep -c '^W:' "$T/lintian.log")
msg="$nerr errors, $nwarn warnings, $(($(date +%s) - t0)) s"
check "lintian: no errors ($msg)" [ "$nerr" -eq 0 ]

# ---- 2. install where services may start --------------------------------------------

check "systemd is not running here (this test covers the init script path)" \
    [ ! -d /run/systemd/system ]
set_policy allow
# shellcheck disable=SC2086	# the list of packages
if apt install $debs >"$T/install.log" 2>&1; then
	ok "apt-get install of the packages"
else
	fail "apt-get install of the packages:"
	tail -n 30 "$T/install.log"
	finish
fi
grep -i "sipc-epmd" "$T/install.log" | grep -v -e "^Selecting" \
    -e "^Preparing" -e "^Unpacking" -e "^Setting up" -e "^Get:" |
    sed 's/^/    | /'
check "the postinst said 'started'" grep -q "sipc-epmd: started (pid" \
    "$T/install.log"
check "brokerctl ping answers on 127.0.0.1:4455" brokerctl_ping
pid=$(cat /run/sipc-epmd.pid 2>/dev/null)
check "/run/sipc-epmd.pid names /usr/sbin/sipc-epmd" \
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = /usr/sbin/sipc-epmd ]
if /usr/sbin/sipc-epmd --help | grep -q -e '--user '; then
	check "the broker runs as _sipc-epmd" \
	    [ "$(stat -c %U "/proc/$pid")" = _sipc-epmd ]
fi
check "/etc/sipc/epmd.conf is a conffile" sh -c \
    "dpkg-query -W -f='\${Conffiles}' sipc-epmd | grep -q ' /etc/sipc/epmd.conf '"
check "enabled for systemd (multi-user.target.wants link)" \
    [ -L /etc/systemd/system/multi-user.target.wants/sipc-epmd.service ]
check "enabled for sysvinit (rc2.d link)" \
    sh -c 'ls /etc/rc2.d/S[0-9][0-9]sipc-epmd >/dev/null 2>&1'
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify /lib/systemd/system/sipc-epmd.service 2>&1)
	check "systemd-analyze verify of the installed unit is silent" \
	    [ -z "$out" ]
	[ -z "$out" ] || echo "$out" | sed 's/^/    | /'
fi
check "man -w sipc-epmd finds the page" sh -c 'man -w sipc-epmd >/dev/null'
check "service sipc-epmd status: running" sh -c \
    'service sipc-epmd status >/dev/null'
check "service sipc-epmd reload" sh -c 'service sipc-epmd reload >/dev/null'
check "the broker still answers after the reload, same pid" \
    sh -c "/usr/bin/brokerctl --timeout 2000 ping >/dev/null &&
    [ \"\$(cat /run/sipc-epmd.pid)\" = '$pid' ]"
check "pkg-config --modversion sipc is $version" \
    [ "$(pkg-config --modversion sipc)" = "$version" ]

# An outside program built from the -dev package, through the broker.
cp /usr/share/doc/libsipc-dev/examples/receiver.c "$T/"
# shellcheck disable=SC2046
if cc -o "$T/receiver" "$T/receiver.c" $(pkg-config --cflags --libs sipc) \
    2>"$T/cc.log"; then
	ok "receiver.c from libsipc-dev builds with pkg-config"
	check "it loads the packaged libsipc.so.2" sh -c \
	    "ldd '$T/receiver' | grep -Eq '=> /(usr/)?lib/[^ ]*/libsipc.so.2 '"
	spawn "$T/receiver" --broker 127.0.0.1:4455 >"$T/recv.out" 2>&1
	rpid=$!
	wait_for 10 grep -q "Receiving" "$T/recv.out"
	check "sipc send through the packaged broker" \
	    /usr/bin/sipc send Foo --broker 127.0.0.1:4455 \
	    --wait-receivers 1 --timeout 10000 Foo1
	check "the receiver got it" \
	    wait_for 10 grep -qx "'Foo1' received" "$T/recv.out"
	kill -TERM "$rpid" 2>/dev/null
	wait "$rpid" 2>/dev/null
else
	fail "receiver.c from libsipc-dev builds with pkg-config:"
	cat "$T/cc.log"
fi

# The Python module, on the packaged library, through the packaged broker.
cat >"$T/py.py" <<'PY'
import sipc
epm = sipc.Epm("127.0.0.1:4455")
with sipc.Receiver("py", epm, listen_address="127.0.0.1") as rx, \
        sipc.Sender("py", epm) as tx:
    tx.wait_receivers(1, 10)
    tx.send(b"from python")
    print(rx.recv(10).decode())
    print(sipc.__file__)
PY
if /usr/bin/python3 "$T/py.py" >"$T/py.out" 2>&1; then
	check "python3-sipc: a message through the packaged broker" \
	    grep -qx "from python" "$T/py.out"
	check "python3-sipc is the packaged module" \
	    grep -q "^/usr/lib/python3/dist-packages/sipc/" "$T/py.out"
else
	fail "python3-sipc:"
	cat "$T/py.out"
fi

# ---- 3. remove, purge ---------------------------------------------------------------

for p in $PKGS; do
	dpkg-query -L "$p" 2>/dev/null
done | sort -u >"$T/files"
if apt remove sipc-epmd >"$T/remove.log" 2>&1; then
	ok "apt-get remove sipc-epmd"
else
	fail "apt-get remove sipc-epmd:"
	tail -n 20 "$T/remove.log"
fi
check "the broker is stopped (no /usr/sbin/sipc-epmd runs)" \
    [ -z "$(running)" ]
check "brokerctl ping fails" sh -c "! /usr/bin/brokerctl --timeout 500 ping \
    >/dev/null 2>&1"
check "remove keeps /etc/sipc/epmd.conf" [ -f /etc/sipc/epmd.conf ]
check "/run/sipc-epmd.pid is gone" [ ! -e /run/sipc-epmd.pid ]
# shellcheck disable=SC2086	# the list of packages
if apt purge $PKGS >"$T/purge.log" 2>&1; then
	ok "apt-get purge of the packages"
else
	fail "apt-get purge:"
	tail -n 20 "$T/purge.log"
fi
check "purge removes /etc/sipc" [ ! -e /etc/sipc ]
check "purge removes the systemd links" sh -c \
    '! ls /etc/systemd/system/*/sipc-epmd.service >/dev/null 2>&1'
check "purge removes the rc.d links" sh -c \
    '! ls /etc/rc?.d/*sipc-epmd >/dev/null 2>&1'
left=
while IFS= read -r f; do
	[ -d "$f" ] && continue		# shared directories stay
	if [ -e "$f" ] || [ -L "$f" ]; then left="$left $f"; fi
done <"$T/files"
check "no file of the packages is left${left:+:$left}" [ -z "$left" ]

# ---- 4. where policy-rc.d forbids starting services ------------------------------------

set_policy deny
f=$D/sipc-epmd_${version}_${arch}.deb
if apt install "$D/sipc-tools_${version}_$arch.deb" "$f" \
    >"$T/install2.log" 2>&1; then
	ok "install with policy-rc.d denying: succeeds"
else
	fail "install with policy-rc.d denying:"
	tail -n 20 "$T/install2.log"
fi
check "install with policy-rc.d denying: the broker is not started" \
    [ -z "$(running)" ]
service sipc-epmd start >"$T/start.log" 2>&1
check "service sipc-epmd start starts it by hand" brokerctl_ping
if apt purge sipc-epmd sipc-tools >"$T/purge2.log" 2>&1; then
	ok "purge with policy-rc.d denying: succeeds"
else
	fail "purge with policy-rc.d denying:"
	tail -n 20 "$T/purge2.log"
fi
check "purge with policy-rc.d denying: the broker is stopped all the same" \
    [ -z "$(running)" ]

finish
