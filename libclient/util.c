/*
 * util.c - small helpers: clocks, random ids, socket addresses, name
 * resolution, socket options.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../proto/addr.h"
#include "internal.h"

void
sa_format(const struct sockaddr *sa, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	switch (sa->sa_family) {
	case AF_INET:
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    host, sizeof(host));
		snprintf(buf, size, "%s:%u", host,
		    ntohs(((const struct sockaddr_in *)sa)->sin_port));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr, host,
		    sizeof(host));
		snprintf(buf, size, "[%s]:%u", host,
		    ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
		break;
	default:
		snprintf(buf, size, "local");
		break;
	}
}

int
sa_to_endpoint(const struct sockaddr *sa, struct wire_endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	switch (sa->sa_family) {
	case AF_INET:
		ep->family = WIRE_AF_INET;
		memcpy(ep->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		ep->port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
		return 0;
	case AF_INET6:
		ep->family = WIRE_AF_INET6;
		memcpy(ep->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr,
		    16);
		ep->port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
		return 0;
	case AF_UNIX:
		ep->family = WIRE_AF_UNIX;
		snprintf(ep->path, sizeof(ep->path), "%s",
		    ((const struct sockaddr_un *)sa)->sun_path);
		return 0;
	default:
		return -1;
	}
}

socklen_t
endpoint_to_sa(const struct wire_endpoint *ep, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_un *su = (struct sockaddr_un *)ss;

	memset(ss, 0, sizeof(*ss));
	switch (ep->family) {
	case WIRE_AF_INET:
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, ep->addr, 4);
		s4->sin_port = htons(ep->port);
		return sizeof(*s4);
	case WIRE_AF_INET6:
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, ep->addr, 16);
		s6->sin6_port = htons(ep->port);
		return sizeof(*s6);
	default:
		su->sun_family = AF_UNIX;
		snprintf(su->sun_path, sizeof(su->sun_path), "%s", ep->path);
		return sizeof(*su);
	}
}

int
parse_ip(const char *s, struct sockaddr_storage *ss, socklen_t *sl)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		*sl = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		*sl = sizeof(*s6);
		return 0;
	}
	return -1;
}

int
resolve_hostport(const char *s, uint16_t default_port,
    struct sockaddr_storage *ss, socklen_t *sl)
{
	struct addrinfo hints, *res;
	char host[256], port[8];
	const char *why;
	uint16_t p = default_port;
	int rc;

	if (addr_parse(s, host, sizeof(host), &p, ADDR_PORT_OPTIONAL,
	    &why) == -1)
		return seterr(SIPC_EADDR, "address '%s': %s", s, why);
	snprintf(port, sizeof(port), "%u", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
		return seterr(SIPC_EADDR, "address '%s': %s", s,
		    gai_strerror(rc));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sl = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int
endpoint_equal(const struct wire_endpoint *a, const struct wire_endpoint *b)
{
	if (a->family != b->family)
		return 0;
	if (a->family == WIRE_AF_UNIX)
		return strcmp(a->path, b->path) == 0;
	return a->port == b->port && memcmp(a->addr, b->addr,
	    a->family == WIRE_AF_INET ? 4 : 16) == 0;
}

int
transport_shm_allowed(void)
{
	const char *t = getenv("SIPC_TRANSPORT");

	return t == NULL || (strcmp(t, "unix") != 0 && strcmp(t, "tcp") != 0);
}

int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl == -1 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void
tune_data_socket(int fd, int is_tcp)
{
	int on = 1;

	/* Frames are batched by sipc itself (many per writev), so Nagle
	 * would only delay the last, lone message of a burst. */
	if (is_tcp)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	/*
	 * Socket buffer sizes stay the kernel's: fixed ones turn off its
	 * autotuning, which a network with a large bandwidth-delay product
	 * needs, and did not beat it here (loopback, messages/s over TCP,
	 * two runs each: 64 KiB 46-58k autotuned, 41-45k at 256 KiB, 48-58k
	 * at 1 MiB, 44-46k at 4 MiB; 1 KiB 3.5-3.6M, 2.4-2.5M, 3.6-4.0M,
	 * 3.4-3.6M).  The high-water mark bounds what sipc itself queues.
	 */
}

void
timer_after(struct event *ev, int64_t ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(ev, &tv);
}

void
wev_set(struct event *ev, int *armed, int on)
{
	if (on && !*armed) {
		event_add(ev, NULL);
		*armed = 1;
	} else if (!on && *armed) {
		event_del(ev);
		*armed = 0;
	}
}

void
waiters_fini(pthread_mutex_t *mu, pthread_cond_t *cv, SSL_CTX *tls)
{
	pthread_mutex_destroy(mu);
	pthread_cond_destroy(cv);
	if (tls)
		SSL_CTX_free(tls);
}

void
cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

int
cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline)
{
	struct timespec ts;

	if (deadline < 0)
		return pthread_cond_wait(cv, mu);
	ts.tv_sec = (time_t)(deadline / 1000);
	ts.tv_nsec = (long)(deadline % 1000) * 1000000;
	return pthread_cond_timedwait(cv, mu, &ts);
}

int64_t
deadline_after(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
}

int
sized_in(void *dst, size_t dsize, const void *src, const char *what)
{
	const uint8_t *p = src;
	size_t n, i;

	memcpy(&n, src, sizeof(n));
	if (n < sizeof(n))
		return seterr(SIPC_EINVAL, "%s not initialized: call its "
		    "*_init() first", what);
	/* A newer program's fields we do not know must be unused. */
	for (i = dsize; i < n; i++)
		if (p[i] != 0)
			return seterr(SIPC_EINVAL, "%s use a field this "
			    "library (%s) does not know", what,
			    sipc_version(NULL));
	memcpy((uint8_t *)dst + sizeof(n), p + sizeof(n),
	    (n < dsize ? n : dsize) - sizeof(n));
	return 0;
}

void
sized_opts(void *dst, size_t dsize, const void *defaults, size_t ssize)
{
	sized_out(dst, dsize, defaults, ssize);
	/* The caller's size: what lies past ours is checked when used. */
	if (dsize >= sizeof(size_t))
		memcpy(dst, &dsize, sizeof(dsize));
}

void
sized_out(void *dst, size_t dsize, const void *src, size_t ssize)
{
	size_t n = dsize < ssize ? dsize : ssize;

	if (dsize < sizeof(size_t))
		return;		/* nothing to fill: callers refuse it */
	memset(dst, 0, dsize);
	memcpy((uint8_t *)dst + sizeof(size_t), (const uint8_t *)src +
	    sizeof(size_t), n - sizeof(size_t));
	memcpy(dst, &n, sizeof(n));
}
