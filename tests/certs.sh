#!/bin/sh
# certs.sh - make a throw-away PKI for the TLS tests in DIR:
#   ca.pem/ca.key          the test CA
#   server.pem/server.key  for 127.0.0.1, ::1 and localhost, signed by it
#   client.pem/client.key  a client certificate, signed by it
#   expired.pem/expired.key  like server.pem, but no longer valid
#   other-ca.pem           a CA that signed none of these
# Keys are P-256 (fast to make).  Usage: tests/certs.sh DIR
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -key ca.key -out ca.pem -days 30 -subj /CN=sipc-test-ca \
    2>/dev/null
key other-ca.key
openssl req -x509 -key other-ca.key -out other-ca.pem -days 30 \
    -subj /CN=sipc-other-ca 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n' > server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
# sign NAME CN DAYS EXTFILE
sign() {
	key "$1.key"
	openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
	openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key \
	    -CAcreateserial -out "$1.pem" -days "$3" -extfile "$4" 2>/dev/null
	rm -f "$1.csr"
}
sign server localhost 30 server.ext
sign client sipc-client 30 client.ext
sign expired localhost -1 server.ext
