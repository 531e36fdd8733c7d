#!/bin/sh
# test_install.sh - make install into a DESTDIR puts every file where it
# belongs (binaries, library with its soname and symlinks, header,
# pkg-config file, man pages, systemd unit, config, examples) with the
# paths rewritten for the prefix; installing again keeps a changed config;
# make uninstall removes everything it installed.  Both for the default
# PREFIX=/usr/local and for the Debian layout PREFIX=/usr.
set -u
# shellcheck source=tests/install/common.sh
. "${SIPC_SRC:?is unset: run this through make check}/tests/install/common.sh"
need readelf cmp

version=$(makevar VERSION)
sover=$(makevar SOVERSION)
sominor=$(makevar SOMINOR)

# is_file PATH MODE: a regular file with that mode.  (This and is_link run
# through check, which shellcheck does not follow.)
# shellcheck disable=SC2317
is_file() {
	[ -f "$1" ] && [ ! -L "$1" ] &&
	    [ "$(stat -c %a "$1")" = "$2" ]
}

# is_link PATH TARGET
# shellcheck disable=SC2317
is_link() {
	[ -L "$1" ] && [ "$(readlink "$1")" = "$2" ]
}

# Lists files and symlinks under $1, relative, sorted.
tree() {
	(cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort)
}

# check_layout DESTDIR PREFIX LIBDIR SYSCONFDIR UNITDIR DOCDIR
check_layout() {
	d=$1 p=$2 lib=$3 etc=$4 unit=$5 doc=$6
	check "sipc-epmd in sbin, 0755" is_file "$d$p/sbin/sipc-epmd" 755
	for s in sipc-epmd-start sipc-epmd-stop; do
		check "$s in sbin, 0755" is_file "$d$p/sbin/$s" 755
		check "$s reads $etc/sipc/epmd.conf" \
		    grep -q "^default_config=$etc/sipc/epmd.conf\$" "$d$p/sbin/$s"
	done
	for b in brokerctl sipc; do
		check "$b in bin, 0755" is_file "$d$p/bin/$b" 755
	done
	so=libsipc.so.$sover.$sominor
	check "$so in $lib, 0644" is_file "$d$lib/$so" 644
	check "libsipc.so.$sover -> $so" is_link "$d$lib/libsipc.so.$sover" "$so"
	check "libsipc.so -> libsipc.so.$sover" \
	    is_link "$d$lib/libsipc.so" "libsipc.so.$sover"
	soname=$(readelf -d "$d$lib/$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
	check "soname is libsipc.so.$sover (readelf: '$soname')" \
	    [ "$soname" = "libsipc.so.$sover" ]
	check "libsipc.a, 0644" is_file "$d$lib/libsipc.a" 644
	check "sipc.h installed as in the tree" \
	    cmp -s "$SIPC_SRC/libclient/include/sipc.h" "$d$p/include/sipc.h"
	pc=$d$lib/pkgconfig/sipc.pc
	check "sipc.pc, 0644" is_file "$pc" 644
	check "sipc.pc: prefix=$p" grep -qx "prefix=$p" "$pc"
	check "sipc.pc: Version: $version" grep -qx "Version: $version" "$pc"
	check "sipc.pc: libdir under prefix" \
	    grep -qx "libdir=\${prefix}${lib#"$p"}" "$pc"
	for m in man1/brokerctl.1 man1/sipc.1 man3/sipc.3 man8/sipc-epmd.8 \
	    man8/sipc-epmd-start.8; do
		check "man page $m" is_file "$d$p/share/man/$m" 644
	done
	check "man8/sipc-epmd-stop.8 -> sipc-epmd-start.8" \
	    is_link "$d$p/share/man/man8/sipc-epmd-stop.8" sipc-epmd-start.8
	check "sipc-epmd(8) names $etc/sipc/epmd.conf" \
	    grep -q "^\.It Pa $etc/sipc/epmd.conf" "$d$p/share/man/man8/sipc-epmd.8"
	u=$d$unit/sipc-epmd.service
	check "unit in $unit, 0644" is_file "$u" 644
	check "unit runs $p/sbin/sipc-epmd with $etc/sipc/epmd.conf" \
	    grep -qx "ExecStart=$p/sbin/sipc-epmd --config $etc/sipc/epmd.conf \\\$SIPC_EPMD_OPTS" "$u"
	check "unit points at $doc/examples" grep -q "$doc/examples/" "$u"
	check "config $etc/sipc/epmd.conf, 0644" \
	    is_file "$d$etc/sipc/epmd.conf" 644
	for f in epmd.conf password.conf tls.conf low-port.conf cluster.conf; do
		check "example $doc/examples/$f" is_file "$d$doc/examples/$f" 644
	done
	check "the installed config is valid for the installed broker" \
	    "$d$p/sbin/sipc-epmd" --config "$d$etc/sipc/epmd.conf" \
	    --check-config >/dev/null
}

# ---- PREFIX=/usr/local (the default) -----------------------------------------

D=$T/dest
if pmake install DESTDIR="$D" >"$T/install.log" 2>&1; then
	ok "make install DESTDIR=$D"
else
	fail "make install DESTDIR=$D"
	cat "$T/install.log"
	finish
fi
check_layout "$D" /usr/local /usr/local/lib /usr/local/etc \
    /usr/local/lib/systemd/system /usr/local/share/doc/sipc

cat >"$T/expected" <<EOF
usr/local/bin/brokerctl
usr/local/bin/sipc
usr/local/etc/sipc/epmd.conf
usr/local/include/sipc.h
usr/local/lib/libsipc.a
usr/local/lib/libsipc.so
usr/local/lib/libsipc.so.$sover
usr/local/lib/libsipc.so.$sover.$sominor
usr/local/lib/pkgconfig/sipc.pc
usr/local/lib/systemd/system/sipc-epmd.service
usr/local/sbin/sipc-epmd
usr/local/sbin/sipc-epmd-start
usr/local/sbin/sipc-epmd-stop
usr/local/share/doc/sipc/examples/cluster.conf
usr/local/share/doc/sipc/examples/epmd.conf
usr/local/share/doc/sipc/examples/low-port.conf
usr/local/share/doc/sipc/examples/password.conf
usr/local/share/doc/sipc/examples/tls.conf
usr/local/share/man/man1/brokerctl.1
usr/local/share/man/man1/sipc.1
usr/local/share/man/man3/sipc.3
usr/local/share/man/man8/sipc-epmd-start.8
usr/local/share/man/man8/sipc-epmd-stop.8
usr/local/share/man/man8/sipc-epmd.8
EOF
tree "$D" >"$T/got"
if cmp -s "$T/expected" "$T/got"; then
	ok "exactly the expected files are installed"
else
	fail "installed files differ from the list (- expected, + got):"
	diff -u "$T/expected" "$T/got" | sed -n '3,$p'
fi

# A changed config survives install and uninstall.
conf=$D/usr/local/etc/sipc/epmd.conf
echo "log_level = debug" >>"$conf"
cp "$conf" "$T/changed.conf"
pmake install DESTDIR="$D" >"$T/install2.log" 2>&1
check "make install again keeps the changed config" cmp -s "$conf" "$T/changed.conf"
check "make install says it kept the config" \
    grep -q "kept $conf (changed)" "$T/install2.log"

# make uninstall stops a broker running the installed sipc-epmd, and
# leaves alone one running another copy.
spawn "$D/usr/local/sbin/sipc-epmd" --listen 127.0.0.1:0 \
    --port-file "$T/port1" --log-level warn
mine=$!
spawn "$SIPC_BUILD/bin/sipc-epmd" --listen 127.0.0.1:0 \
    --port-file "$T/port2" --log-level warn
other=$!
wait_for 10 test -s "$T/port1"
wait_for 10 test -s "$T/port2"
if pmake uninstall DESTDIR="$D" >"$T/uninstall.log" 2>&1; then
	ok "make uninstall DESTDIR=$D"
else
	fail "make uninstall DESTDIR=$D"
	cat "$T/uninstall.log"
fi
check "make uninstall said it stopped the installed broker" \
    grep -q "^stopping $D/usr/local/sbin/sipc-epmd (pid $mine)" \
    "$T/uninstall.log"
wait "$mine"
check "the installed broker exited 0 (SIGTERM)" [ $? -eq 0 ]
check "a broker of another sipc-epmd still runs" kill -0 "$other"
kill -TERM "$other"
wait "$other"
check "make uninstall keeps the changed config" cmp -s "$conf" "$T/changed.conf"
check "make uninstall says it kept the config" \
    grep -q "kept $conf (changed)" "$T/uninstall.log"
rm -f "$conf"
tree "$D" >"$T/left"
if [ -s "$T/left" ]; then
	fail "make uninstall left files behind:"
	sed 's/^/    /' "$T/left"
else
	ok "make uninstall removed every file"
fi
check "make uninstall removed the sipc doc directory" \
    [ ! -e "$D/usr/local/share/doc/sipc" ]

# ---- PREFIX=/usr, as the Debian packages use it ------------------------------

D=$T/deb
lib=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
if pmake install DESTDIR="$D" PREFIX=/usr LIBDIR="$lib" \
    DOCDIR=/usr/share/doc/sipc-epmd >"$T/install3.log" 2>&1; then
	ok "make install PREFIX=/usr"
else
	fail "make install PREFIX=/usr"
	cat "$T/install3.log"
fi
check_layout "$D" /usr "$lib" /etc /lib/systemd/system \
    /usr/share/doc/sipc-epmd
check "with PREFIX=/usr the unit is as in packaging/systemd" \
    cmp -s "$SIPC_SRC/packaging/systemd/sipc-epmd.service" \
    "$D/lib/systemd/system/sipc-epmd.service"
pmake uninstall DESTDIR="$D" PREFIX=/usr LIBDIR="$lib" \
    DOCDIR=/usr/share/doc/sipc-epmd >"$T/uninstall3.log" 2>&1
tree "$D" >"$T/left"
if [ -s "$T/left" ]; then
	fail "make uninstall PREFIX=/usr left files behind:"
	sed 's/^/    /' "$T/left"
else
	ok "make uninstall PREFIX=/usr removed every file (and the unchanged config)"
fi
check "make uninstall removed /etc/sipc" [ ! -e "$D/etc/sipc" ]

finish
