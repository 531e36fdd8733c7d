#!/bin/sh
# install-deps.sh - install the Debian packages sipc needs to build, test,
# benchmark and package.  Safe to run again: apt-get skips what is there.
#
#   scripts/install-deps.sh           everything
#
# Runs apt-get directly as root, through sudo otherwise.
set -eu

PKGS="
build-essential
pkg-config
libevent-dev
libjson-c-dev
libssl-dev
zlib1g-dev
libjson-c-dev
etcd-server
etcd-client
check
openssl
valgrind
clang
libclang-rt-14-dev
libzmq3-dev
libnats-dev
nats-server
iceoryx
libiceoryx-binding-c-dev
debhelper
dpkg-dev
fakeroot
lintian
mandoc
man-db
groff-base
shellcheck
systemd
iproute2
python3
python3-cffi
python3-pytest
python3-zmq
python3-setuptools
python3-pip
chromium
"

if [ "$(id -u)" -eq 0 ]; then
	SUDO=
elif command -v sudo >/dev/null 2>&1; then
	SUDO=sudo
else
	echo "install-deps: not root and no sudo; run as root:" >&2
	echo "  apt-get install -y" $PKGS >&2
	exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: apt-get not found; sipc builds on Debian 12." >&2
	echo "install these packages by hand:" $PKGS >&2
	exit 1
fi

missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
