/*
 * addr.c - "HOST:PORT" parsing (see addr.h).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "wire.h"

int
addr_parse_port(const char *s, uint16_t *port, int flags)
{
	unsigned long v = 0;
	const char *p;

	if (*s == '\0' || strlen(s) > 5)
		return -1;
	for (p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > 65535 || (v == 0 && !(flags & ADDR_ALLOW_PORT0)))
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int
copy_host(char *host, size_t hostsz, const char *s, size_t n,
    const char **why)
{
	if (n == 0) {
		*why = "empty host";
		return -1;
	}
	if (n >= hostsz) {
		*why = "host name too long";
		return -1;
	}
	memcpy(host, s, n);
	host[n] = '\0';
	return 0;
}

int
addr_parse(const char *s, char *host, size_t hostsz, uint16_t *port,
    int flags, const char **why)
{
	const char *colon, *end;

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL) {
			*why = "missing ']' after IPv6 address";
			return -1;
		}
		if (copy_host(host, hostsz, s + 1, (size_t)(end - s - 1),
		    why) == -1)
			return -1;
		if (end[1] == '\0') {
			if (flags & ADDR_PORT_OPTIONAL)
				return 0;
			*why = "missing port (HOST:PORT)";
			return -1;
		}
		if (end[1] != ':') {
			*why = "expected ':' after ']'";
			return -1;
		}
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon != NULL && strchr(s, ':') != colon) {
			/* Several colons without brackets: an IPv6 address. */
			if (!(flags & ADDR_PORT_OPTIONAL)) {
				*why = "write IPv6 addresses as [ADDR]:PORT";
				return -1;
			}
			return copy_host(host, hostsz, s, strlen(s), why);
		}
		if (colon == NULL) {
			if (!(flags & ADDR_PORT_OPTIONAL)) {
				*why = "missing port (HOST:PORT)";
				return -1;
			}
			return copy_host(host, hostsz, s, strlen(s), why);
		}
		if (copy_host(host, hostsz, s, (size_t)(colon - s), why) == -1)
			return -1;
	}
	if (addr_parse_port(colon + 1, port, flags) == -1) {
		*why = (flags & ADDR_ALLOW_PORT0) ?
		    "port must be a number from 0 to 65535" :
		    "port must be a number from 1 to 65535";
		return -1;
	}
	return 0;
}

char *
addr_format_host(const struct wire_endpoint *ep, char *buf, size_t size)
{
	char tmp[INET6_ADDRSTRLEN];

	switch (ep->family) {
	case WIRE_AF_INET:
		inet_ntop(AF_INET, ep->addr, tmp, sizeof(tmp));
		break;
	case WIRE_AF_INET6:
		inet_ntop(AF_INET6, ep->addr, tmp, sizeof(tmp));
		break;
	case WIRE_AF_UNIX:
		snprintf(buf, size, "%s", ep->path);
		return buf;
	default:
		snprintf(tmp, sizeof(tmp), "?");
		break;
	}
	snprintf(buf, size, "%s", tmp);
	return buf;
}

char *
addr_format_endpoint(const struct wire_endpoint *ep, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	switch (ep->family) {
	case WIRE_AF_INET:
		snprintf(buf, size, "%s:%u",
		    addr_format_host(ep, host, sizeof(host)), ep->port);
		break;
	case WIRE_AF_INET6:
		snprintf(buf, size, "[%s]:%u",
		    addr_format_host(ep, host, sizeof(host)), ep->port);
		break;
	case WIRE_AF_UNIX:
		snprintf(buf, size, "unix:%s", ep->path);
		break;
	default:
		snprintf(buf, size, "?");
		break;
	}
	return buf;
}
