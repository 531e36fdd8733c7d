#!/bin/sh
# test_symbols.sh - libsipc.so exports the public API and nothing else:
# every symbol defined in its dynamic symbol table (nm -D --defined-only)
# starts with sipc_ and carries the version node of libclient/sipc.map
# (SIPC_2); every function declared in sipc.h is among them; the soname is
# libsipc.so.SOVERSION.  libsipc.a defines no global symbol outside sipc_*
# either, so a program with functions of the library's internal names
# (loop_init, seterr, mono_ms...) links statically and keeps its own.
set -u
# shellcheck source=tests/install/common.sh
. "${SIPC_SRC:?is unset: run this through make check}/tests/install/common.sh"
need nm readelf cc

sover=$(makevar SOVERSION)
so=$SIPC_BUILD/lib/libsipc.so.$sover.$(makevar SOMINOR)
node=$(sed -n 's/^\([A-Z0-9_]*\)[[:space:]]*{.*/\1/p' \
    "$SIPC_SRC/libclient/sipc.map" | tail -n 1)
check "$so exists" [ -f "$so" ]
check "libclient/sipc.map names a version node ($node)" [ -n "$node" ]

nm -D --defined-only "$so" >"$T/nm" || fail "nm -D $so"
# Fields: value type name[@@version]; the version node itself is an
# absolute symbol (type A) named after it.
awk -v node="$node" '!($2 == "A" && $3 == node) { print $3 }' "$T/nm" |
    sort >"$T/exported"
check "libsipc.so exports symbols" [ -s "$T/exported" ]
grep -v '^sipc_' "$T/exported" >"$T/bad"
if [ -s "$T/bad" ]; then
	fail "libsipc.so exports symbols outside sipc_*:"
	sed 's/^/    /' "$T/bad"
else
	ok "every exported symbol starts with sipc_ ($(wc -l <"$T/exported"))"
fi
grep -v "@@$node\$" "$T/exported" >"$T/unversioned"
if [ -s "$T/unversioned" ]; then
	fail "exported symbols without the version $node:"
	sed 's/^/    /' "$T/unversioned"
else
	ok "every exported symbol has the version $node"
fi

# The functions of the header, comments stripped by the preprocessor.
cc -E -P -I"$SIPC_SRC/libclient/include" -x c - <<EOF >"$T/h.i"
#include <sipc.h>
EOF
grep -o '\bsipc_[a-z0-9_]*[[:space:]]*(' "$T/h.i" | tr -d ' (' | sort -u \
    >"$T/declared"
check "sipc.h declares functions ($(wc -l <"$T/declared"))" [ -s "$T/declared" ]
sed "s/@@$node\$//" "$T/exported" >"$T/names"
missing=$(comm -23 "$T/declared" "$T/names")
if [ -n "$missing" ]; then
	fail "declared in sipc.h but not exported: $(echo "$missing" | tr "\n" " ")"
else
	ok "every function of sipc.h is exported"
fi
extra=$(comm -13 "$T/declared" "$T/names")
if [ -n "$extra" ]; then
	fail "exported but not declared in sipc.h: $(echo "$extra" | tr "\n" " ")"
else
	ok "nothing is exported that sipc.h does not declare"
fi

soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
check "soname libsipc.so.$sover" [ "$soname" = "libsipc.so.$sover" ]

# ---- the static library ---------------------------------------------------------

a=$SIPC_BUILD/lib/libsipc.a
nm -g --defined-only "$a" 2>/dev/null | awk 'NF == 3 { print $3 }' |
    sort -u >"$T/a_defined"
check "libsipc.a defines global symbols" [ -s "$T/a_defined" ]
grep -v '^sipc_' "$T/a_defined" >"$T/a_bad"
if [ -s "$T/a_bad" ]; then
	fail "libsipc.a defines global symbols outside sipc_*:"
	sed 's/^/    /' "$T/a_bad"
else
	ok "every global symbol libsipc.a defines starts with sipc_" \
	    "($(wc -l <"$T/a_defined"))"
fi
missing=$(comm -23 "$T/declared" "$T/a_defined")
check "libsipc.a defines every function of sipc.h" [ -z "$missing" ]

# A program whose own functions have the names the library uses inside.
cat >"$T/clash.c" <<'EOF'
#include <stdio.h>
#include <sipc.h>
int loop_init(void) { return 42; }
int seterr(int e) { return e; }
long mono_ms(void) { return 7; }
int
main(void)
{
	sipc_epm *epm;
	int rc;

	if ((rc = sipc_epm_local(&epm)) != 0) {
		fprintf(stderr, "%s\n", sipc_strerror(rc));
		return 1;
	}
	sipc_epm_close(epm);
	printf("%d %d %ld\n", loop_init(), seterr(3), mono_ms());
	return 0;
}
EOF
# shellcheck disable=SC2086,SC2046
cc -I"$SIPC_SRC/libclient/include" -o "$T/clash" "$T/clash.c" "$a" \
    $(pkg-config --libs libevent libevent_pthreads libevent_openssl \
    openssl zlib) -lpthread ${SIPC_SANITIZE:-} >"$T/cc.out" 2>&1
check "a program defining loop_init, seterr and mono_ms links libsipc.a" \
    [ -x "$T/clash" ]
[ -x "$T/clash" ] || sed 's/^/    /' "$T/cc.out"
mkdir -p "$T/xdg" && chmod 700 "$T/xdg"
out=$(XDG_RUNTIME_DIR=$T/xdg "$T/clash" 2>&1)
check "it runs the library and its own functions ($out)" \
    [ "$out" = "42 3 7" ]

finish
