#!/bin/sh
# run.sh - the Python package's tests (pytest) against the tree's build:
# make check runs it through $SIPC_BUILD/tests/test_python.  Uses Debian's
# /usr/bin/python3 (with python3-cffi and python3-pytest), not whatever
# python3 comes first in PATH.
set -u
: "${SIPC_SRC:?is unset: run this through make check}"
: "${SIPC_BUILD:?is unset: run this through make check}"
if [ -n "${SIPC_SANITIZE:-}" ]; then
	echo "SKIPPED: a sanitizer build of libsipc.so cannot be loaded into" \
	    "python3; make check runs this test"
	exit 0
fi
py=${SIPC_PYTHON:-/usr/bin/python3}
if ! "$py" -c 'import cffi, pytest' 2>/dev/null; then
	echo "FAIL: $py lacks cffi or pytest (scripts/install-deps.sh" \
	    "installs python3-cffi python3-pytest)"
	exit 1
fi
cd "$SIPC_SRC/bindings/python" || exit 1
exec "$py" -m pytest -q -p no:cacheprovider tests
