/*
 * listen.c - sipc-epmd's listening sockets: binding, accepting, limits.
 *
 * Sockets are bound before the broker daemonizes (so that a taken port is
 * reported on the terminal) and handed to libevent afterwards.  When the
 * process runs out of descriptors, accept is paused for a moment instead of
 * spinning on EMFILE, and a reserved descriptor lets the broker accept and
 * close the waiting connection so the client hears about it (OpenSMTPD's
 * control_accept does the same).
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "../proto/addr.h"
#include "epmd.h"

/* How long accept stays paused after EMFILE, in milliseconds. */
#define ACCEPT_PAUSE_MS	100

static int
bind_one(struct broker *b, const struct addrinfo *ai, const char *spec,
    int quiet)
{
	struct listener *l;
	char host[INET6_ADDRSTRLEN];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd, on = 1;
	uint16_t port;

	if (b->nlisteners >= EPMD_MAX_LISTEN) {
		log_warnx("listen %s: more than %d listeners", spec,
		    EPMD_MAX_LISTEN);
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		if (quiet && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT))
			return 1;
		log_warn("listen %s: socket", spec);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
		if (quiet && (errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT)) {
			close(fd);
			return 1;
		}
		log_warn("listen %s: bind", spec);
		close(fd);
		return -1;
	}
	if (listen(fd, (int)b->cfg.listen_backlog) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
		log_warn("listen %s", spec);
		close(fd);
		return -1;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
	}
	l = &b->listeners[b->nlisteners++];
	memset(l, 0, sizeof(*l));
	l->fd = fd;
	memcpy(&l->ss, &ss, sizeof(ss));
	l->port = port;
	snprintf(l->name, sizeof(l->name), ss.ss_family == AF_INET6 ?
	    "[%s]:%u" : "%s:%u", host, port);
	return 0;
}

static int
bind_spec(struct broker *b, const char *spec, int quiet)
{
	struct addrinfo hints, *res, *ai;
	char host[256], portstr[8];
	const char *why;
	uint16_t port;
	int rc, bound = 0;

	if (addr_parse(spec, host, sizeof(host), &port, ADDR_ALLOW_PORT0,
	    &why) == -1) {
		log_warnx("listen %s: %s", spec, why);
		return -1;
	}
	snprintf(portstr, sizeof(portstr), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		if (quiet)
			return 0;
		log_warnx("listen %s: %s", spec, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if ((rc = bind_one(b, ai, spec, quiet)) == -1) {
			freeaddrinfo(res);
			return -1;
		}
		if (rc == 0)
			bound++;
	}
	freeaddrinfo(res);
	if (bound == 0 && !quiet) {
		log_warnx("listen %s: no usable address", spec);
		return -1;
	}
	return 0;
}

int
listen_bind(struct broker *b)
{
	char spec[32];
	int i;

	if (b->cfg.nlisten == 0) {
		snprintf(spec, sizeof(spec), "127.0.0.1:%u", b->cfg.port);
		if (bind_spec(b, spec, 0) == -1)
			return -1;
		/* IPv6 loopback only where the host has it. */
		snprintf(spec, sizeof(spec), "[::1]:%u", b->cfg.port);
		return bind_spec(b, spec, 1);
	}
	for (i = 0; i < b->cfg.nlisten; i++)
		if (bind_spec(b, b->cfg.listen[i], 0) == -1)
			return -1;
	return 0;
}

static int
is_loopback(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	const uint8_t *a6 = s6->sin6_addr.s6_addr;

	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr)
		    >> 24) == 127;
	if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
		return 1;
	return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && a6[12] == 127;
}

int
listen_check_protected(struct broker *b)
{
	int i;

	for (i = 0; i < b->nlisteners; i++) {
		if (is_loopback(&b->listeners[i].ss) || b->tls)
			continue;
		if (!b->cfg.insecure) {
			log_errorx("refusing to listen on %s without TLS or a "
			    "password: anyone who reaches it could register "
			    "receivers, and read where every receiver "
			    "listens.  Use --tls-cert and --tls-key, or "
			    "--password-file, or --insecure to accept that",
			    b->listeners[i].name);
			return -1;
		}
		log_warnx("listening on %s without TLS or a password "
		    "(--insecure)", b->listeners[i].name);
	}
	return 0;
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	(void)evl;
	session_accept(arg, fd, sa, (socklen_t)salen);
}

static void
accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	int i;

	(void)fd;
	(void)what;
	if (b->reserve_fd == -1)
		b->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (i = 0; i < b->nlisteners; i++)
		evconnlistener_enable(b->listeners[i].evl);
}

static void
accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct broker *b = arg;
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	int err = errno, fd, i;

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_warnx("accept: %s", strerror(err));
		return;
	}
	/* Out of descriptors: use the spare one to turn the first waiting
	 * client away, then stop accepting for a moment. */
	if (b->reserve_fd != -1) {
		close(b->reserve_fd);
		b->reserve_fd = -1;
		fd = accept(evconnlistener_get_fd(evl), NULL, NULL);
		if (fd != -1)
			close(fd);
	}
	if (b->st.accept_paused++ % 100 == 0)
		log_warnx("accept: %s; pausing accept for %d ms "
		    "(%u sessions open)", strerror(err), ACCEPT_PAUSE_MS,
		    b->nsessions);
	for (i = 0; i < b->nlisteners; i++)
		evconnlistener_disable(b->listeners[i].evl);
	evtimer_add(b->accept_resume, &tv);
}

int
listen_start(struct broker *b)
{
	struct listener *l;
	int i;

	b->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if ((b->accept_resume = evtimer_new(b->base, accept_resume_cb, b)) ==
	    NULL)
		return -1;
	for (i = 0; i < b->nlisteners; i++) {
		l = &b->listeners[i];
		/* Backlog 0: the socket listens already, with ours; -1
		 * would make libevent call listen(fd, 128) again. */
		l->evl = evconnlistener_new(b->base, accept_cb, b,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, l->fd);
		if (l->evl == NULL) {
			log_warnx("listen %s: cannot start listener", l->name);
			return -1;
		}
		evconnlistener_set_error_cb(l->evl, accept_error_cb);
		log_info("listening on %s", l->name);
	}
	return 0;
}

void
listen_set_backlog(struct broker *b)
{
	int i;

	/* listen() on a listening socket changes only its backlog. */
	for (i = 0; i < b->nlisteners; i++)
		if (listen(b->listeners[i].fd,
		    (int)b->cfg.listen_backlog) == -1)
			log_warn("listen %s: backlog %u",
			    b->listeners[i].name, b->cfg.listen_backlog);
}

void
listen_close(struct broker *b)
{
	int i;

	for (i = 0; i < b->nlisteners; i++) {
		if (b->listeners[i].evl)
			evconnlistener_free(b->listeners[i].evl);
		else if (b->listeners[i].fd != -1)
			close(b->listeners[i].fd);
		b->listeners[i].evl = NULL;
		b->listeners[i].fd = -1;
	}
	b->nlisteners = 0;
	if (b->accept_resume)
		event_free(b->accept_resume);
	b->accept_resume = NULL;
	if (b->reserve_fd != -1)
		close(b->reserve_fd);
	b->reserve_fd = -1;
}

int
listen_write_port_file(struct broker *b, const char *path)
{
	char tmp[4096];
	FILE *fp;

	if (b->nlisteners == 0)
		return -1;
	/* Write then rename, so a reader never sees a partial number. */
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	if ((fp = fopen(tmp, "w")) == NULL) {
		log_warn("port file %s", tmp);
		return -1;
	}
	fprintf(fp, "%u\n", b->listeners[0].port);
	if (fclose(fp) != 0 || rename(tmp, path) == -1) {
		log_warn("port file %s", path);
		unlink(tmp);
		return -1;
	}
	return 0;
}
