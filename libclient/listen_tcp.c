/*
 * listen_tcp.c - where a receiver listens when its end point manager is a
 * broker: a TCP socket on the address it is told (else the one its broker
 * session goes out from), on the first free port of allowed_ports, and the
 * endpoint it registers for senders to reach it.  The broker backend's
 * listen operation (epm_broker.c's table); nothing else here.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../proto/addr.h"
#include "internal.h"

/*
 * Parses "5000", "5000-5010", "5000,5005,6000-6010" into lo[i]..hi[i].
 * Returns the number of ranges, or -1.
 */
static int
parse_ports(const char *s, uint16_t *lo, uint16_t *hi, int max)
{
	char buf[1024], *tok, *save, *dash;
	int n = 0;

	if (strlen(s) >= sizeof(buf))
		return -1;
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok;
	    tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		if (n >= max)
			return -1;
		if ((dash = strchr(tok, '-')) != NULL)
			*dash = '\0';
		if (addr_parse_port(tok, &lo[n], 0) == -1)
			return -1;
		hi[n] = lo[n];
		if (dash && (addr_parse_port(dash + 1, &hi[n], 0) == -1 ||
		    hi[n] < lo[n]))
			return -1;
		n++;
	}
	return n > 0 ? n : -1;
}

static int
is_wildcard(const struct sockaddr_storage *ss)
{
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;

	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
		    htonl(INADDR_ANY);
	return memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, &any6,
	    sizeof(any6)) == 0;
}

static void
set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* Waits for the broker session, up to the EPM's patience. */
static int
wait_session(sipc_epm *epm)
{
	int timeout = epm->opts.connect_timeout_ms > 5000 ?
	    epm->opts.connect_timeout_ms : 5000;
	int64_t deadline = deadline_after(timeout);

	pthread_mutex_lock(&epm->mu);
	while (!atomic_load(&epm->connected) && !atomic_load(&epm->failed))
		if (cond_wait_until(&epm->cv, &epm->mu, deadline) != 0)
			break;
	pthread_mutex_unlock(&epm->mu);
	return atomic_load(&epm->connected) ? 0 : -1;
}

int
broker_listen(sipc_epm *epm, struct epm_listen *o)
{
	struct sockaddr_storage lss, rss, bss;
	socklen_t lsl, rsl, bsl;
	uint16_t lo[64], hi[64];
	char what[128];
	int nr = 0, r, fd = -1, on = 1, rc;
	unsigned port;

	if ((o->listen_address == NULL || o->register_address == NULL) &&
	    wait_session(epm) == -1)
		return seterr(SIPC_ENOTCONN, "no broker session to learn this "
		    "host's address from; set listen_address and "
		    "register_address, or start the broker");
	if (o->listen_address) {
		if (parse_ip(o->listen_address, &lss, &lsl) == -1)
			return seterr(SIPC_EADDR, "listen_address '%s' is not "
			    "an IP address", o->listen_address);
	} else if (broker_local_addr(epm, &lss, &lsl) != 0)
		return seterr(SIPC_ENOTCONN, "broker session lost");
	if (o->register_address) {
		if (parse_ip(o->register_address, &rss, &rsl) == -1)
			return seterr(SIPC_EADDR, "register_address '%s' is "
			    "not an IP address", o->register_address);
	} else if (!is_wildcard(&lss)) {
		rss = lss;
		rsl = lsl;
	} else if (broker_local_addr(epm, &rss, &rsl) != 0)
		return seterr(SIPC_ENOTCONN, "broker session lost");
	if (o->allowed_ports &&
	    (nr = parse_ports(o->allowed_ports, lo, hi, 64)) == -1)
		return seterr(SIPC_EINVAL, "allowed_ports '%s': expected "
		    "ports and ranges such as 5000,5010-5020",
		    o->allowed_ports);
	if (nr == 0) {
		lo[0] = hi[0] = 0;
		nr = 1;
	}
	set_port(&lss, 0);
	sa_format((struct sockaddr *)&lss, what, sizeof(what));
	for (r = 0; r < nr && fd == -1; r++) {
		for (port = lo[r]; port <= hi[r]; port++) {
			fd = socket(lss.ss_family, SOCK_STREAM |
			    SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd == -1)
				return seterr_sys(SIPC_ESYS, "socket");
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on,
			    sizeof(on));
			set_port(&lss, (uint16_t)port);
			if (bind(fd, (struct sockaddr *)&lss, lsl) == 0)
				break;
			rc = errno;
			close(fd);
			fd = -1;
			if (rc != EADDRINUSE && rc != EACCES) {
				errno = rc;
				return seterr_sys(SIPC_ESYS, "bind %s port %u",
				    what, port);
			}
		}
	}
	if (fd == -1)
		return seterr(SIPC_ENOPORT, "no free port among '%s' on %s",
		    o->allowed_ports, what);
	if (listen(fd, 511) == -1) {
		rc = seterr_sys(SIPC_ESYS, "listen");
		close(fd);
		return rc;
	}
	bsl = sizeof(bss);
	getsockname(fd, (struct sockaddr *)&bss, &bsl);
	set_port(&rss, ntohs(bss.ss_family == AF_INET ?
	    ((struct sockaddr_in *)&bss)->sin_port :
	    ((struct sockaddr_in6 *)&bss)->sin6_port));
	sa_to_endpoint((struct sockaddr *)&rss, &o->ep);
	o->fd = fd;
	return 0;
}
