#!/bin/sh
# test_lint.sh - the packaging's text files are well formed and agree with
# the programs:
#   * the man pages pass mandoc -Tlint and groff's warnings (what lintian
#     runs);
#   * every option in the --help of sipc-epmd, brokerctl and sipc is in
#     its man page; every sipc-epmd option is a key in packaging/epmd.conf,
#     and every key there is one sipc-epmd knows;
#   * the shell scripts pass shellcheck;
#   * the systemd unit has the hardening the issue asks for, and passes
#     systemd-analyze verify, alone and with each example drop-in.
set -u
LC_ALL=C	# sort and comm agree on the order
export LC_ALL
# shellcheck source=tests/install/common.sh
. "${SIPC_SRC:?is unset: run this through make check}/tests/install/common.sh"
need mandoc man shellcheck systemd-analyze

# Keys documented ahead of the broker code that reads them.  A key here
# that sipc-epmd does not know yet is a note, not a failure; anything else
# unknown fails.
PENDING_KEYS=""

M=$SIPC_SRC/packaging/man
bin=$SIPC_BUILD/bin

# ---- man pages ----------------------------------------------------------------

for page in "$M"/*.[0-9]; do
	name=$(basename "$page")
	out=$(mandoc -Tlint -W warning "$page" 2>&1)
	if [ -z "$out" ]; then
		ok "mandoc -Tlint $name"
	else
		fail "mandoc -Tlint $name:"
		echo "$out" | sed 's/^/    /'
	fi
	out=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 \
	    man --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
	if [ -z "$out" ]; then
		ok "man --warnings $name (groff)"
	else
		fail "man --warnings $name (groff):"
		echo "$out" | sed 's/^/    /'
	fi
done

# ---- options: --help against the man pages and the config ----------------------

# long_options PROGRAM...: the --options in its --help, one a line.
long_options() {
	"$@" --help 2>&1 | grep -o -- '--[a-z][a-z0-9-]*' | sort -u
}

# documented PAGE OPTION: the page has "Fl Fl OPTION".
documented() {
	grep -q "Fl Fl ${2#--}\\( \\|\$\\)" "$1"
}

for prog in sipc-epmd brokerctl sipc; do
	case $prog in
	sipc-epmd) page=$M/sipc-epmd.8 ;;
	*) page=$M/$prog.1 ;;
	esac
	long_options "$bin/$prog" >"$T/$prog.opts"
	missing=
	while IFS= read -r o; do
		documented "$page" "$o" || missing="$missing $o"
	done <"$T/$prog.opts"
	if [ -z "$missing" ]; then
		ok "every option of $prog --help is in $(basename "$page")" \
		    "($(wc -l <"$T/$prog.opts"))"
	else
		fail "options of $prog --help missing in $(basename "$page"):" \
		    "$missing"
	fi
done

# Config keys: the options but those of the program itself.
grep -v -x -e --help -e --version -e --config -e --check-config \
    "$T/sipc-epmd.opts" | sed 's/^--//; s/-/_/g' | sort >"$T/keys"
sed -n 's/^#\{0,1\}\([a-z][a-z0-9_]*\) =.*/\1/p' \
    "$SIPC_SRC/packaging/epmd.conf" | sort -u >"$T/conf.keys"
missing=$(comm -23 "$T/keys" "$T/conf.keys" | tr '\n' ' ')
if [ -z "$missing" ]; then
	ok "every sipc-epmd option is a key in packaging/epmd.conf"
else
	fail "sipc-epmd options missing in packaging/epmd.conf: $missing"
fi
for k in $(comm -13 "$T/keys" "$T/conf.keys"); do
	case " $PENDING_KEYS " in
	*" $k "*) echo "note: epmd.conf documents '$k', which this" \
	    "sipc-epmd does not know yet" ;;
	*) fail "packaging/epmd.conf has '$k', which sipc-epmd does not know" ;;
	esac
done
check "packaging/epmd.conf is valid (sipc-epmd --check-config)" \
    "$bin/sipc-epmd" --config "$SIPC_SRC/packaging/epmd.conf" \
    --check-config >/dev/null

# Every key's documented default is the broker's default.
"$bin/sipc-epmd" --check-config >"$T/defaults"
bad=
while IFS= read -r line; do
	case $line in
	'#'* | '') continue ;;	# "# pidfile: not set"
	esac
	k=${line%% = *}
	grep -q "^#$k = " "$SIPC_SRC/packaging/epmd.conf" || continue
	grep -qx "#$line" "$SIPC_SRC/packaging/epmd.conf" || bad="$bad $k"
done <"$T/defaults"
if [ -z "$bad" ]; then
	ok "the defaults in packaging/epmd.conf are the broker's"
else
	fail "packaging/epmd.conf shows other defaults than" \
	    "sipc-epmd --check-config for:$bad"
fi

# ---- shell scripts ---------------------------------------------------------------

cd "$SIPC_SRC" || exit 1
scripts="scripts/sipc-epmd-start scripts/sipc-epmd-stop
    packaging/stop-installed.sh tests/install/*.sh"
for f in packaging/debian/*.init packaging/debian/*.postinst \
    packaging/debian/*.prerm packaging/debian/*.postrm; do
	[ -e "$f" ] && scripts="$scripts $f"
done
# shellcheck disable=SC2086	# the list of files
if out=$(shellcheck -x -s sh $scripts 2>&1); then
	ok "shellcheck: $(echo $scripts | wc -w) scripts"
else
	fail "shellcheck:"
	echo "$out" | sed 's/^/    /'
fi

# ---- the systemd unit -------------------------------------------------------------

unit=$SIPC_SRC/packaging/systemd/sipc-epmd.service
# shellcheck disable=SC2016	# $MAINPID is for systemd
for want in Type=notify 'ExecReload=/bin/kill -HUP $MAINPID' \
    DynamicUser=yes ProtectSystem=strict ProtectHome=yes \
    NoNewPrivileges=yes PrivateTmp=yes \
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
    SystemCallFilter=@system-service CapabilityBoundingSet= \
    AmbientCapabilities= WantedBy=multi-user.target; do
	check "the unit has $want" grep -qxF "$want" "$unit"
done
check "the unit has no User= (DynamicUser= picks it)" \
    sh -c "! grep -q '^User=' '$unit'"
check "password.conf loads the password with LoadCredential=" \
    grep -qx 'LoadCredential=password:/etc/sipc/password' \
    "$SIPC_SRC/packaging/systemd/password.conf"

# verify needs the unit's programs to exist: install into a real prefix.
P=$T/prefix
if pmake install PREFIX="$P" >"$T/install.log" 2>&1; then
	u=$P/lib/systemd/system/sipc-epmd.service
	# man: links of Documentation= are checked against these pages.
	MANPATH=$P/share/man:
	export MANPATH
	# verify_with NAME [DROP-IN]: systemd-analyze verify prints nothing.
	verify_with() {
		rm -rf "$u.d"
		if [ -n "${2:-}" ]; then
			mkdir "$u.d"
			cp "$P/share/doc/sipc/examples/$2" "$u.d/"
		fi
		out=$(systemd-analyze verify "$u" 2>&1)
		rc=$?
		if [ "$rc" -eq 0 ] && [ -z "$out" ]; then
			ok "systemd-analyze verify: $1"
		else
			fail "systemd-analyze verify: $1 (exit $rc):"
			echo "$out" | sed 's/^/    /'
		fi
	}
	verify_with "sipc-epmd.service"
	for d in password.conf tls.conf low-port.conf cluster.conf; do
		verify_with "sipc-epmd.service with $d" "$d"
	done
	rm -rf "$u.d"
	systemd-analyze security --offline=yes "$u" 2>/dev/null |
	    grep 'Overall exposure' | sed 's/^→ */note: /'
	pmake uninstall PREFIX="$P" >/dev/null 2>&1
else
	fail "make install PREFIX=$P"
	cat "$T/install.log"
fi

finish
