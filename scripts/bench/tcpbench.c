/*
 * tcpbench.c - bench-tcp: the plain-socket baselines of `make bench`,
 * the practical limit sipc is compared with.
 *
 *   bench-tcp stream   [--size B] [--count N] [--receivers N] [--unix]
 *   bench-tcp pingpong [--size B] [--count N] [--unix]
 *   bench-tcp connect  [--size B] [--count N]
 *   bench-tcp memcpy   [--size B] [--count N]
 *
 * stream: one sender writes frames (4-byte big-endian length + payload)
 * to each receiver process, coalescing them into writes of up to 64 KiB
 * (a frame larger than that goes in one writev of its own); every
 * receiver reads 256 KiB at a time, checks the order of every message
 * and reports over a pipe.  pingpong: a message of --size bytes there
 * and back, with TCP_NODELAY, to an echoing child.  connect: socket(),
 * connect() and one frame, until it is read from the accepted socket of
 * a fresh listener, in this process.  memcpy: no socket, the ceiling of
 * the shared-memory rows: one thread copies one --size message (hot in
 * the cache, like every sender's template here) --count times into a
 * destination that walks through 8 MiB: more than a core's L2 cache on
 * this machine (1 MiB), within its L3 (32 MiB), as a ring of that size
 * would be.  A ring larger than L3 copies at memory speed, about a third
 * of that here: then the ceiling is out of reach, never too low.
 *
 * It measures what the kernel can do with the simplest code; it has none
 * of sipc's features (no acknowledgements, no discovery).  Prints one
 * JSON object; exit 0, 1 on errors or loss, 2 on bad usage.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define COALESCE	(64 * 1024)
#define RBUF		(256 * 1024)
#define TIMEOUT_MS	30000

static struct case_opts cfg;

static void
nodelay(int fd)
{
	int on = 1;

	if (!cfg.unix_sock)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

/* A loopback listener on an ephemeral port (in *port). */
static int
tcp_listen(int *port, int backlog)
{
	int fd;

	if ((fd = listen_loopback(backlog, port)) == -1)
		fatal_sys("listen on 127.0.0.1");
	return fd;
}

/* A connection to it (TCP_NODELAY set before connect()). */
static int
tcp_connect(int port)
{
	int fd;

	if ((fd = connect_loopback(port)) == -1)
		fatal_sys("connect 127.0.0.1:%d", port);
	return fd;
}

static int
tcp_accept(int lfd)
{
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1 &&
	    errno == EINTR)
		;
	if (fd == -1)
		fatal_sys("accept");
	return fd;
}

/* ---- stream -------------------------------------------------------------- */

struct stream_kid {
	int			 fd;	/* data, from the sender */
	int			 rep;	/* report pipe, write end */
	int			 port;	/* TCP: where to connect */
};

/*
 * A receiver: frames in, order checked, READY and report out.  Frames are
 * parsed where they were read; the buffer is compacted only when its tail
 * runs short, so large frames are not moved around.
 */
static int
stream_receiver(void *arg)
{
	struct stream_kid *k = arg;
	struct rx_check c;
	uint8_t *buf, *nb;
	size_t cap = RBUF, len = 0, off = 0, flen, need = 0;
	ssize_t r;
	int kind;

	memset(&c, 0, sizeof(c));
	if (!cfg.unix_sock) {
		k->fd = tcp_connect(k->port);
		nodelay(k->fd);
	}
	if ((buf = malloc(cap)) == NULL)
		fatal("out of memory");
	for (;;) {
		if (off > 0 && (cap - len < RBUF / 4 || cap - off < need)) {
			memmove(buf, buf + off, len - off);
			len -= off;
			off = 0;
		}
		if (need > cap) {
			if ((nb = realloc(buf, need)) == NULL)
				fatal("out of memory");
			buf = nb;
			cap = need;
		}
		r = read(k->fd, buf + len, cap - len);
		if (r == 0)
			fatal("receiver: sender closed before END");
		if (r == -1) {
			if (errno == EINTR)
				continue;
			fatal_sys("receiver: read");
		}
		len += (size_t)r;
		need = 0;
		while (len - off >= 4) {
			flen = get32(buf + off);
			if (flen > BM_SIZE_MAX)
				fatal("receiver: frame of %zu bytes", flen);
			if (len - off < 4 + flen) {
				need = 4 + flen;
				break;
			}
			kind = rx_check_msg(&c, buf + off + 4, flen);
			off += 4 + flen;
			if (kind == K_BEGIN &&
			    write_full(k->rep, "Y", 1) == -1)
				fatal_sys("receiver: report pipe");
			if (kind == K_END) {
				if (write_full(k->rep, &c.r, sizeof(c.r)) ==
				    -1)
					fatal_sys("receiver: report pipe");
				free(buf);
				return 0;
			}
		}
		if (off == len)
			off = len = 0;
	}
}

static void
send_all(int *fds, int n, const void *p, size_t len)
{
	int i;

	for (i = 0; i < n; i++)
		if (write_full(fds[i], p, len) == -1)
			fatal_sys("write to receiver %d", i);
}

/* Writes iov[0..niov) (niov <= 4) to each receiver in turn. */
static void
writev_all(int *fds, int n, const struct iovec *iov, int niov)
{
	struct iovec v[4], *vp;
	ssize_t w;
	int i, nv;

	for (i = 0; i < n; i++) {
		memcpy(v, iov, (size_t)niov * sizeof(*iov));
		vp = v;
		nv = niov;
		while (nv > 0) {
			if ((w = writev(fds[i], vp, nv)) == -1) {
				if (errno == EINTR)
					continue;
				fatal_sys("writev to receiver %d", i);
			}
			while (nv > 0 && (size_t)w >= vp->iov_len) {
				w -= (ssize_t)vp->iov_len;
				vp++;
				nv--;
			}
			if (nv > 0) {
				vp->iov_base = (uint8_t *)vp->iov_base + w;
				vp->iov_len -= (size_t)w;
			}
		}
	}
}

static int
run_stream(void)
{
	struct stream_kid k[KIDS_MAX];
	struct rx_total tot;
	int port;
	struct iovec iov[2];
	uint8_t *tmpl, *co, hdr[4], ctl[4 + CTL_LEN], y;
	int fds[KIDS_MAX], pipes[KIDS_MAX], sv[2], p[2], lfd = -1, i, n;
	size_t clen = 0, frame = 4 + (size_t)cfg.size;
	int64_t t0, cpu0;
	long m;
	int rc;

	n = (int)cfg.receivers;
	if (!cfg.unix_sock)
		lfd = tcp_listen(&port, n);
	for (i = 0; i < n; i++) {
		memset(&k[i], 0, sizeof(k[i]));
		if (pipe2(p, O_CLOEXEC) == -1)
			fatal_sys("pipe");
		k[i].rep = p[1];
		pipes[i] = p[0];
		if (cfg.unix_sock) {
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
			    sv) == -1)
				fatal_sys("socketpair");
			k[i].fd = sv[1];
			fds[i] = sv[0];
		} else
			k[i].port = port;
		kid_start(stream_receiver, &k[i]);
		close(p[1]);
		if (cfg.unix_sock)
			close(sv[1]);
	}
	if (!cfg.unix_sock) {
		for (i = 0; i < n; i++) {
			fds[i] = tcp_accept(lfd);
			nodelay(fds[i]);
		}
		close(lfd);
	}
	if ((tmpl = malloc((size_t)cfg.size)) == NULL ||
	    (co = malloc(COALESCE)) == NULL)
		fatal("out of memory");
	bm_init(tmpl, (size_t)cfg.size, K_DATA);

	put32(ctl, CTL_LEN);
	bm_init(ctl + 4, CTL_LEN, K_BEGIN);
	put64(ctl + 4 + F_COUNT, (uint64_t)cfg.count);
	put64(ctl + 4 + F_SIZE, (uint64_t)cfg.size);
	send_all(fds, n, ctl, sizeof(ctl));
	for (i = 0; i < n; i++)
		if (read_full(pipes[i], &y, 1, TIMEOUT_MS) == -1 || y != 'Y')
			fatal_sys("receiver %d did not start", i);

	cpu0 = cpu_self_ns();
	t0 = mono_ns();
	put32(hdr, (uint32_t)cfg.size);
	for (m = 0; m < cfg.count; m++) {
		if (frame > COALESCE) {
			/* Too big to coalesce: header and payload in one
			 * writev, after whatever is pending. */
			if (clen) {
				send_all(fds, n, co, clen);
				clen = 0;
			}
			put64(tmpl + 8, (uint64_t)m);
			iov[0].iov_base = hdr;
			iov[0].iov_len = 4;
			iov[1].iov_base = tmpl;
			iov[1].iov_len = (size_t)cfg.size;
			writev_all(fds, n, iov, 2);
			continue;
		}
		if (clen + frame > COALESCE) {
			send_all(fds, n, co, clen);
			clen = 0;
		}
		memcpy(co + clen, hdr, 4);
		memcpy(co + clen + 4, tmpl, (size_t)cfg.size);
		put64(co + clen + 4 + 8, (uint64_t)m);
		clen += frame;
	}
	if (clen)
		send_all(fds, n, co, clen);
	bm_init(ctl + 4, CTL_LEN, K_END);
	put64(ctl + 4 + F_COUNT, (uint64_t)cfg.count);
	send_all(fds, n, ctl, sizeof(ctl));

	rx_collect(pipes, n, t0, TIMEOUT_MS, &tot);
	cpu0 = cpu_self_ns() - cpu0;
	for (i = 0; i < n; i++)
		close(fds[i]);
	if (kids_reap(5000))
		fatal("a receiver failed");
	rc = json_stream(&cfg, "stream", cfg.unix_sock ? "unix" : "tcp", n,
	    t0, &tot, cpu0);
	free(tmpl);
	free(co);
	return rc;
}

/* ---- pingpong ------------------------------------------------------------ */

struct echo_kid {
	int			 fd;
	int			 other;	/* the parent's end: closed here */
	int			 rep;
	int			 port;
};

static int
echo_child(void *arg)
{
	struct echo_kid *k = arg;
	uint8_t *buf;
	int64_t cpu0;
	ssize_t r;
	size_t have;

	if (!cfg.unix_sock) {
		k->fd = tcp_connect(k->port);
		nodelay(k->fd);
	} else
		close(k->other);	/* or its EOF never comes */
	if ((buf = malloc((size_t)cfg.size)) == NULL)
		fatal("out of memory");
	cpu0 = cpu_self_ns();
	for (;;) {
		for (have = 0; have < (size_t)cfg.size; have += (size_t)r) {
			r = read(k->fd, buf + have, (size_t)cfg.size - have);
			if (r == 0 && have == 0)
				goto eof;
			if (r == 0)
				fatal("echo: message cut short");
			if (r == -1 && errno == EINTR) {
				r = 0;
				continue;
			}
			if (r == -1)
				fatal_sys("echo: read");
		}
		if (write_full(k->fd, buf, (size_t)cfg.size) == -1)
			fatal_sys("echo: write");
	}
eof:
	cpu0 = cpu_self_ns() - cpu0;
	if (write_full(k->rep, &cpu0, sizeof(cpu0)) == -1)
		fatal_sys("echo: report pipe");
	free(buf);
	return 0;
}

static int
run_pingpong(void)
{
	struct echo_kid k;
	int port;
	uint8_t *msg, *in;
	int64_t *samples, t, t0, cpu0, cpu_rx;
	long i, warm, total;
	int fd, lfd, sv[2], p[2];

	memset(&k, 0, sizeof(k));
	if (pipe2(p, O_CLOEXEC) == -1)
		fatal_sys("pipe");
	k.rep = p[1];
	if (cfg.unix_sock) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ==
		    -1)
			fatal_sys("socketpair");
		k.fd = sv[1];
		k.other = fd = sv[0];
		kid_start(echo_child, &k);
		close(sv[1]);
	} else {
		lfd = tcp_listen(&port, 1);
		k.port = port;
		kid_start(echo_child, &k);
		fd = tcp_accept(lfd);
		close(lfd);
		nodelay(fd);
	}
	close(p[1]);
	warm = warmup_count(cfg.count, 1000);
	total = warm + cfg.count;
	if ((msg = malloc((size_t)cfg.size)) == NULL ||
	    (in = malloc((size_t)cfg.size)) == NULL ||
	    (samples = calloc((size_t)cfg.count, sizeof(*samples))) == NULL)
		fatal("out of memory");
	bm_init(msg, (size_t)cfg.size, K_PING);
	cpu0 = cpu_self_ns();
	t0 = mono_ns();
	for (i = 0; i < total; i++) {
		if (i == warm) {
			cpu0 = cpu_self_ns();
			t0 = mono_ns();
		}
		put64(msg + 8, (uint64_t)i);
		t = mono_ns();
		if (write_full(fd, msg, (size_t)cfg.size) == -1)
			fatal_sys("ping %ld", i);
		if (read_full(fd, in, (size_t)cfg.size, TIMEOUT_MS) == -1)
			fatal_sys("pong %ld", i);
		if (i >= warm)
			samples[i - warm] = mono_ns() - t;
		if (memcmp(in, msg, (size_t)cfg.size) != 0)
			fatal("pong %ld is not the ping", i);
	}
	t0 = mono_ns() - t0;
	cpu0 = cpu_self_ns() - cpu0;
	close(fd);
	if (read_full(p[0], &cpu_rx, sizeof(cpu_rx), TIMEOUT_MS) == -1)
		fatal_sys("report of the echo process");
	close(p[0]);
	if (kids_reap(5000))
		fatal("the echo process failed");
	/* The echo's CPU covers its warm-up too: a slight overstatement. */
	json_samples(&cfg, "pingpong", cfg.unix_sock ? "unix" : "tcp", t0,
	    samples, cpu0 + cpu_rx, 1, NULL);
	free(msg);
	free(in);
	free(samples);
	return 0;
}

/* ---- connect ------------------------------------------------------------- */

static int
run_connect(void)
{
	int port;
	uint8_t *msg, *in;
	int64_t *samples, t0, cpu0, wall0;
	long i, warm, total;
	int lfd, c, a;
	size_t flen = 4 + (size_t)cfg.size;

	warm = warmup_count(cfg.count, 100);
	total = warm + cfg.count;
	if ((msg = malloc(flen)) == NULL || (in = malloc(flen)) == NULL ||
	    (samples = calloc((size_t)cfg.count, sizeof(*samples))) == NULL)
		fatal("out of memory");
	put32(msg, (uint32_t)cfg.size);
	bm_init(msg + 4, (size_t)cfg.size, K_DATA);
	cpu0 = cpu_self_ns();
	wall0 = mono_ns();
	for (i = 0; i < total; i++) {
		if (i == warm) {
			cpu0 = cpu_self_ns();
			wall0 = mono_ns();
		}
		/* A fresh listener each time, like a fresh receiver. */
		lfd = tcp_listen(&port, 1);
		t0 = mono_ns();
		c = tcp_connect(port);
		nodelay(c);
		put64(msg + 4 + 8, (uint64_t)i);
		if (write_full(c, msg, flen) == -1)
			fatal_sys("write");
		a = tcp_accept(lfd);
		if (read_full(a, in, flen, TIMEOUT_MS) == -1)
			fatal_sys("read the first message");
		if (i >= warm)
			samples[i - warm] = mono_ns() - t0;
		if (memcmp(in, msg, flen) != 0)
			fatal("message %ld damaged", i);
		close(c);
		close(a);
		close(lfd);
	}
	wall0 = mono_ns() - wall0;
	cpu0 = cpu_self_ns() - cpu0;
	json_samples(&cfg, "connect", "tcp", wall0, samples, cpu0, 0,
	    "from socket() to read() of the first frame on the accepted "
	    "socket");
	free(msg);
	free(in);
	free(samples);
	return 0;
}

/* ---- memcpy ------------------------------------------------------------- */

#define SPAN	(8L * 1024 * 1024)	/* the destination, at least */

static int
run_memcpy(void)
{
	size_t size = (size_t)cfg.size, slots, off;
	uint8_t *src, *dst;
	int64_t t0, cpu0;
	struct jout j;
	double ns;
	long m;

	slots = SPAN / (long)size < 2 ? 2 : (size_t)(SPAN / (long)size);
	if ((src = malloc(size)) == NULL ||
	    (dst = malloc(slots * size)) == NULL)
		fatal("out of memory");
	/* Every page faulted in, and one pass untimed. */
	memset(src, 0x5a, size);
	for (m = 0; m < (long)slots; m++)
		memcpy(dst + (size_t)m * size, src, size);
	memset(dst, 0, slots * size);
	cpu0 = cpu_self_ns();
	t0 = mono_ns();
	for (m = 0; m < cfg.count; m++) {
		off = (size_t)m % slots * size;
		memcpy(dst + off, src, size);
	}
	ns = (double)(mono_ns() - t0);
	cpu0 = cpu_self_ns() - cpu0;
	off = (size_t)(cfg.count - 1) % slots * size;
	if (memcmp(dst + off, src, size) != 0)
		fatal("memcpy: the copy differs");
	json_begin(&j, stdout);
	json_str(&j, "case", "memcpy");
	json_str(&j, "impl", "memcpy");
	json_int(&j, "size", cfg.size);
	json_int(&j, "count", cfg.count);
	json_int(&j, "span_bytes", (long long)(slots * size));
	json_num(&j, "seconds", ns / 1e9);
	json_num(&j, "messages_per_s", (double)cfg.count * 1e9 / ns);
	json_num(&j, "mb_per_s", (double)cfg.count * (double)size * 1e3 / ns);
	json_int(&j, "lost", 0);
	json_int(&j, "errors", 0);
	json_num(&j, "cpu_ns_per_message", (double)cpu0 / (double)cfg.count);
	json_end(&j);
	free(src);
	free(dst);
	return 0;
}

int
main(int argc, char **argv)
{
	prog = "bench-tcp";
	signal(SIGPIPE, SIG_IGN);
	cfg.size = 64;
	cfg.count = 100000;
	cfg.receivers = 1;
	case_opts_parse(argc, argv, &cfg, 1, "usage: bench-tcp "
	    "stream|pingpong|connect|memcpy [--size B] [--count N] "
	    "[--receivers N] [--unix]");
	if (!strcmp(cfg.mode, "stream"))
		return run_stream();
	if (!strcmp(cfg.mode, "pingpong")) {
		/* One sample of 8 bytes per round trip. */
		case_count_max(&cfg, 10000000);
		return run_pingpong();
	}
	if (!strcmp(cfg.mode, "connect")) {
		case_count_max(&cfg, 100000);
		return run_connect();
	}
	if (!strcmp(cfg.mode, "memcpy"))
		return run_memcpy();
	usage_error("unknown case '%s' (stream, pingpong, connect, memcpy)",
	    cfg.mode);
}
