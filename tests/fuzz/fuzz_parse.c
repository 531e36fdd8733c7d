/*
 * fuzz_parse.c - libFuzzer target: the small text parsers that take what
 * users and the environment give: addr_parse() and addr_parse_port()
 * (proto/addr.c: --listen, --broker, $SIPC_BROKER, port ranges) and
 * tls_salt_parse() (common/tls.c: --salt).
 *
 * Input: byte 0 selects the parser in bits 0-1 (0 and 3: addr_parse, 1:
 * addr_parse_port, 2: tls_salt_parse) and the ADDR_* flags in bits 2-3; byte 1 sizes the output buffer (allocated to exactly that
 * size, so that ASan sees a byte too far); the rest is the string, up to
 * its first NUL.
 *
 * Besides memory safety: what a parser accepts, written out again the
 * canonical way, parses to the same value.
 */
#include <string.h>

#include "../../common/tls.h"
#include "../../proto/addr.h"
#include "fuzz.h"

static void
check_addr(const char *s, size_t hostsz, int flags)
{
	char *host, *host2, again[600];
	const char *why = NULL;
	uint16_t port = 4242, port2 = 0;
	int rc, v6;

	if ((host = malloc(hostsz)) == NULL)
		return;
	if ((host2 = malloc(hostsz)) == NULL) {
		free(host);
		return;
	}
	rc = addr_parse(s, host, hostsz, &port, flags, &why);
	FZ_ASSERT(rc == 0 || rc == -1);
	if (rc == -1) {
		FZ_ASSERT(why != NULL && why[0] != '\0');
		goto out;
	}
	FZ_ASSERT(strnlen(host, hostsz) < hostsz);
	FZ_ASSERT(host[0] != '\0' && strstr(s, host) != NULL);
	FZ_ASSERT(port != 0 || (flags & ADDR_ALLOW_PORT0));
	/* HOST:PORT, or [HOST]:PORT for an IPv6 address, reads the same.
	 * (Brackets inside a host name are left to the resolver.) */
	if (strpbrk(host, "[]") != NULL)
		goto out;
	v6 = strchr(host, ':') != NULL;
	snprintf(again, sizeof(again), "%s%s%s:%u", v6 ? "[" : "", host,
	    v6 ? "]" : "", port);
	rc = addr_parse(again, host2, hostsz, &port2,
	    flags & ADDR_ALLOW_PORT0, &why);
	if (rc != 0)
		fprintf(stderr, "'%s' -> '%s': %s\n", s, again, why);
	FZ_ASSERT(rc == 0);
	FZ_ASSERT(strcmp(host, host2) == 0 && port == port2);
out:
	free(host);
	free(host2);
}

static void
check_port(const char *s, int flags)
{
	char again[8];
	uint16_t port = 0, port2 = 0;
	size_t i;

	if (addr_parse_port(s, &port, flags) != 0)
		return;
	FZ_ASSERT(strlen(s) >= 1 && strlen(s) <= 5);
	for (i = 0; s[i]; i++)
		FZ_ASSERT(s[i] >= '0' && s[i] <= '9');
	FZ_ASSERT(port != 0 || (flags & ADDR_ALLOW_PORT0));
	snprintf(again, sizeof(again), "%u", port);
	FZ_ASSERT(addr_parse_port(again, &port2, flags) == 0 && port2 == port);
}

static void
check_salt(const char *s, size_t cap)
{
	char hex[2 * TLS_SALT_MAX + 1], arr[6 * TLS_SALT_MAX + 3];
	uint8_t *out, again[TLS_SALT_MAX];
	size_t n = 0, n2 = 0, i;
	int rc;

	if ((out = malloc(cap ? cap : 1)) == NULL)
		return;
	rc = tls_salt_parse(s, out, cap, &n);
	FZ_ASSERT(rc == 0 || rc == -1);
	if (rc == -1)
		goto out;
	FZ_ASSERT(n >= 1 && n <= cap);
	/* As hex, and as the original's {0x01,0x02}. */
	for (i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", out[i]);
	FZ_ASSERT(tls_salt_parse(hex, again, sizeof(again), &n2) == 0);
	FZ_ASSERT(n2 == n && memcmp(again, out, n) == 0);
	strcpy(arr, "{");
	for (i = 0; i < n; i++)
		snprintf(arr + strlen(arr), sizeof(arr) - strlen(arr),
		    "%s0x%02X", i ? "," : "", out[i]);
	strcat(arr, "}");
	FZ_ASSERT(tls_salt_parse(arr, again, sizeof(again), &n2) == 0);
	FZ_ASSERT(n2 == n && memcmp(again, out, n) == 0);
out:
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	int flags;

	if (size < 2)
		return 0;
	/* A string in a buffer of its own size: ASan sees a byte too far. */
	if ((s = malloc(size - 1)) == NULL)
		return 0;
	memcpy(s, data + 2, size - 2);
	s[size - 2] = '\0';
	flags = data[0] >> 2 & (ADDR_PORT_OPTIONAL | ADDR_ALLOW_PORT0);
	switch (data[0] & 3) {
	case 0:
	case 3:
		check_addr(s, 1 + (size_t)data[1], flags);
		break;
	case 1:
		check_port(s, flags);
		break;
	case 2:
		check_salt(s, (size_t)data[1] % (TLS_SALT_MAX + 1));
		break;
	}
	free(s);
	return 0;
}
