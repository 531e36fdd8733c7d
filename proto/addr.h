/*
 * addr.h - parsing of the "HOST:PORT" strings that every sipc program takes
 * (--listen, --broker, $SIPC_BROKER).  Pure string handling: no name
 * resolution, no sockets (inet_ntop only formats).
 */
#ifndef SIPC_PROTO_ADDR_H
#define SIPC_PROTO_ADDR_H

#include <stddef.h>
#include <stdint.h>

#define ADDR_PORT_OPTIONAL	0x01	/* "HOST" alone keeps *port as is */
#define ADDR_ALLOW_PORT0	0x02	/* port 0: an ephemeral port */

/*
 * Splits s into host and port.  Accepts "HOST:PORT", "[IPV6]:PORT", and with
 * ADDR_PORT_OPTIONAL also "HOST", "[IPV6]" and a bare IPv6 address.  host
 * gets the host without brackets (hostsz bytes with the NUL).  Returns 0, or
 * -1 with *why set to a static text naming what is wrong.
 */
int	addr_parse(const char *s, char *host, size_t hostsz, uint16_t *port,
	    int flags, const char **why);

/* Parses a decimal port: 1..65535 (0 with ADDR_ALLOW_PORT0); 0 or -1. */
int	addr_parse_port(const char *s, uint16_t *port, int flags);

struct wire_endpoint;

/*
 * Formats an endpoint for people: "127.0.0.1:4455", "[::1]:4455" or
 * "unix:/run/user/1000/sipc/x".  Returns buf.
 */
char	*addr_format_endpoint(const struct wire_endpoint *ep, char *buf,
	    size_t size);
/* Only the address part: "127.0.0.1", "::1" or the socket path. */
char	*addr_format_host(const struct wire_endpoint *ep, char *buf,
	    size_t size);

#endif
