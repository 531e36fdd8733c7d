#!/bin/sh
# test_pkgconfig.sh - a program outside the tree builds against an
# installed libsipc with "cc prog.c $(pkg-config --cflags --libs sipc)" and
# runs: the example receiver (libclient/examples/receiver.c), copied away
# from the tree, gets a message through the local registry and through a
# broker on loopback; the examples of sipc(3) and of README.md build and
# run (every C block of README.md must build); a static link
# with "pkg-config --static" works too.  The library is installed into a
# DESTDIR and found through PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR, and
# into a real prefix (no DESTDIR).
set -u
# shellcheck source=tests/install/common.sh
. "${SIPC_SRC:?is unset: run this through make check}/tests/install/common.sh"
need pkg-config cc readelf

version=$(makevar VERSION)
sover=$(makevar SOVERSION)
sipc=$SIPC_BUILD/bin/sipc
mkdir -p "$T/xdg" "$T/prog"
chmod 0700 "$T/xdg"
cp "$SIPC_SRC/libclient/examples/receiver.c" "$T/prog/"
sed -n '/^#include <stdio.h>/,/^\.Ed/p' "$SIPC_SRC/packaging/man/sipc.3" |
    sed '$d' | sed 's/\\e/\\/g' >"$T/prog/manexample.c"
# Every ```c block of README.md, one file each.
awk -v dir="$T/prog" '
	/^```c$/ { n++; f = dir "/readme" n ".c"; next }
	/^```$/ { f = ""; next }
	f != "" { print > f }
' "$SIPC_SRC/README.md"

D=$T/dest
if pmake install DESTDIR="$D" >"$T/install.log" 2>&1; then
	ok "make install DESTDIR=$D"
else
	fail "make install DESTDIR=$D"
	cat "$T/install.log"
	finish
fi
lib=$D/usr/local/lib

PKG_CONFIG_PATH=$lib/pkgconfig
PKG_CONFIG_SYSROOT_DIR=$D
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
check "pkg-config --modversion sipc is $version" \
    [ "$(pkg-config --modversion sipc)" = "$version" ]
cflags=$(pkg-config --cflags sipc)
libs=$(pkg-config --libs sipc)
echo "pkg-config: --cflags '$cflags' --libs '$libs'"
# (The sysroot also prefixes the -I/usr/include of libevent.)
case " $cflags " in
*" -I$D/usr/local/include "*)
	ok "pkg-config --cflags names the installed include dir" ;;
*)	fail "pkg-config --cflags: '$cflags'" ;;
esac
case " $libs " in
*" -L$lib "*) ok "pkg-config --libs names the installed library dir" ;;
*) fail "pkg-config --libs: '$libs'" ;;
esac
case " $libs " in
*" -lsipc "*) ok "pkg-config --libs has -lsipc" ;;
*) fail "pkg-config --libs: '$libs'" ;;
esac

# Outside the tree: nothing of it on the include or library path.
cd "$T/prog" || exit 1
# shellcheck disable=SC2086	# word splitting of the flags is intended
if cc $SIPC_SANITIZE -o receiver receiver.c $cflags $libs 2>"$T/cc.log"
then
	ok "cc receiver.c \$(pkg-config --cflags --libs sipc)"
else
	fail "cc receiver.c \$(pkg-config --cflags --libs sipc)"
	cat "$T/cc.log"
	finish
fi
check "the receiver needs libsipc.so.$sover" \
    sh -c "readelf -d receiver | grep -q 'NEEDED.*\[libsipc.so.$sover\]'"
LD_LIBRARY_PATH=$lib
export LD_LIBRARY_PATH
check "the installed libsipc.so.$sover is the one loaded" \
    sh -c "ldd ./receiver | grep -q 'libsipc.so.$sover => $lib/libsipc.so.$sover'"

# run_receiver NAME [--broker ADDR]: runs ./receiver, sends it Foo1 with
# the tree's sipc, checks it printed it, stops it.
run_receiver() {
	name=$1
	shift
	out=$T/$name.out
	spawn env XDG_RUNTIME_DIR="$T/xdg" ./receiver "$@" >"$out" 2>&1
	rpid=$!
	if ! wait_for 10 grep -q "Receiving 'Foo'" "$out"; then
		fail "$name: the receiver did not start:"
		cat "$out"
		kill "$rpid" 2>/dev/null
		return
	fi
	if env -u LD_LIBRARY_PATH XDG_RUNTIME_DIR="$T/xdg" "$sipc" send Foo \
	    "$@" --wait-receivers 1 --timeout 10000 Foo1 >"$T/send.log" 2>&1
	then
		ok "$name: sipc send Foo reached the receiver"
	else
		fail "$name: sipc send Foo failed:"
		cat "$T/send.log"
	fi
	check "$name: the receiver printed 'Foo1' received" \
	    wait_for 10 grep -qx "'Foo1' received" "$out"
	kill -TERM "$rpid" 2>/dev/null
	wait "$rpid"
	check "$name: the receiver exits 0 on SIGTERM" [ $? -eq 0 ]
}

unset SIPC_BROKER
run_receiver local

# The same through a broker on loopback.
spawn "$SIPC_BUILD/bin/sipc-epmd" --listen 127.0.0.1:0 \
    --port-file "$T/port" --log-level warn
bpid=$!
if wait_for 10 test -s "$T/port"; then
	run_receiver broker --broker "127.0.0.1:$(cat "$T/port")"
else
	fail "the broker did not start"
fi
kill -TERM "$bpid" 2>/dev/null
wait "$bpid"

# The example of sipc(3).
# shellcheck disable=SC2086
if cc $SIPC_SANITIZE -o manexample manexample.c $cflags $libs \
    2>"$T/cc.log"; then
	ok "the example of sipc(3) builds"
	if env XDG_RUNTIME_DIR="$T/xdg" timeout 30 ./manexample \
	    >"$T/man.out" 2>&1 && grep -qx "'Foo1' received" "$T/man.out"
	then
		ok "the example of sipc(3) runs"
	else
		fail "the example of sipc(3) runs:"
		cat "$T/man.out"
	fi
else
	fail "the example of sipc(3) builds:"
	cat "$T/cc.log"
fi

# The C of README.md, as a reader would paste it.
nreadme=0
for src in "$T"/prog/readme*.c; do
	[ -f "$src" ] || continue
	nreadme=$((nreadme + 1))
	bin=${src%.c}
	# shellcheck disable=SC2086
	if cc $SIPC_SANITIZE -o "$bin" "$src" $cflags $libs 2>"$T/cc.log"
	then
		ok "README.md's C block $nreadme builds"
	else
		fail "README.md's C block $nreadme builds:"
		cat "$T/cc.log"
	fi
done
check "README.md has C to build" [ "$nreadme" -gt 0 ]
if [ -x "$T/prog/readme1" ] &&
    env XDG_RUNTIME_DIR="$T/xdg" timeout 30 "$T/prog/readme1" \
    >"$T/readme.out" 2>&1 && grep -qx "'Foo1' received" "$T/readme.out" &&
    grep -qx "sipc $version" "$T/readme.out"; then
	ok "README.md's program runs: 'Foo1' received, sipc $version"
else
	fail "README.md's program runs:"
	cat "$T/readme.out"
fi

if [ -x "$T/prog/readme2" ] &&
    env XDG_RUNTIME_DIR="$T/xdg" timeout 30 "$T/prog/readme2" \
    >"$T/readme.out" 2>&1 && grep -qx "'PING' answered: 'pong'" \
    "$T/readme.out"; then
	ok "README.md's request/reply program runs: 'PING' answered"
else
	fail "README.md's request/reply program runs:"
	cat "$T/readme.out"
fi

if [ -x "$T/prog/readme3" ] &&
    env XDG_RUNTIME_DIR="$T/xdg" timeout 30 "$T/prog/readme3" \
    >"$T/readme.out" 2>&1 && grep -qx "'hello' -> 'HELLO'" \
    "$T/readme.out"; then
	ok "README.md's event loop program runs: 'hello' -> 'HELLO'"
else
	fail "README.md's event loop program runs:"
	cat "$T/readme.out"
fi

# Static: libsipc.a and what pkg-config --static adds.
slibs=$(pkg-config --static --libs sipc | sed 's/-lsipc\b/-l:libsipc.a/')
# shellcheck disable=SC2086
if cc $SIPC_SANITIZE -o static manexample.c $cflags $slibs 2>"$T/cc.log"
then
	ok "static link with pkg-config --static --libs sipc"
	check "the static program needs no libsipc.so" \
	    sh -c "! readelf -d static | grep -q libsipc"
	check "the static program runs" sh -c \
	    "env -u LD_LIBRARY_PATH XDG_RUNTIME_DIR='$T/xdg' timeout 30 ./static | grep -qx \"'Foo1' received\""
else
	fail "static link with pkg-config --static --libs sipc ($slibs):"
	cat "$T/cc.log"
fi

# A real prefix, no DESTDIR nor sysroot: the .pc file's own paths.
unset PKG_CONFIG_SYSROOT_DIR LD_LIBRARY_PATH
P=$T/prefix
if pmake install PREFIX="$P" >"$T/install2.log" 2>&1; then
	ok "make install PREFIX=$P"
	PKG_CONFIG_PATH=$P/lib/pkgconfig
	# shellcheck disable=SC2046,SC2086
	if cc $SIPC_SANITIZE -o prefixed receiver.c \
	    $(pkg-config --cflags --libs sipc) -Wl,-rpath,"$P/lib" \
	    2>"$T/cc.log"; then
		ok "cc against PREFIX=$P"
		check "it loads $P/lib/libsipc.so.$sover" sh -c \
		    "ldd ./prefixed | grep -q '=> $P/lib/libsipc.so.$sover'"
	else
		fail "cc against PREFIX=$P:"
		cat "$T/cc.log"
	fi
	pmake uninstall PREFIX="$P" >/dev/null 2>&1
else
	fail "make install PREFIX=$P"
	cat "$T/install2.log"
fi

finish
