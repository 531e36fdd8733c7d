/*
 * testutil.c - process, broker and raw-protocol helpers for the tests.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static char tmpdir[64];

const char *
tu_bin(const char *name)
{
	static char path[4][PATH_MAX];
	static int slot;
	const char *b = getenv("SIPC_BUILD");
	char *p = path[slot++ % 4];

	snprintf(p, PATH_MAX, "%s/bin/%s", b ? b : "build", name);
	return p;
}

static pid_t tmpdir_owner;

static void
cleanup_at_exit(void)
{
	/* A failed check ends the test process with exit(): the fixture's
	 * teardown does not run then, this does.  Forked children that
	 * exit() must not remove their parent's directory. */
	if (getpid() == tmpdir_owner)
		tu_cleanup();
}

const char *
tu_tmpdir(void)
{
	static int registered;

	if (tmpdir[0] == '\0') {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/sipc-test.XXXXXX");
		if (mkdtemp(tmpdir) == NULL) {
			perror("mkdtemp");
			abort();
		}
		tmpdir_owner = getpid();
		if (!registered++)
			atexit(cleanup_at_exit);
	}
	return tmpdir;
}

void
tu_cleanup(void)
{
	char cmd[128];
	int rc;

	if (tmpdir[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	rc = system(cmd);
	(void)rc;
	tmpdir[0] = '\0';
}

pid_t
tu_spawn_recv(const char *addr, const char *handle, long count,
    const char *outf, const char *errf)
{
	char cnt[32], *argv[16];
	int n = 0;

	snprintf(cnt, sizeof(cnt), "%ld", count);
	argv[n++] = (char *)tu_bin("sipc");
	argv[n++] = "recv";
	argv[n++] = (char *)handle;
	if (addr) {
		argv[n++] = "--broker";
		argv[n++] = (char *)addr;
		argv[n++] = "--listen";
		argv[n++] = "127.0.0.1";
	}
	argv[n++] = "--count";
	argv[n++] = cnt;
	argv[n++] = "--output";
	argv[n++] = (char *)outf;
	argv[n] = NULL;
	return proc_spawn(argv, errf);
}

static int
broker_startv(struct tu_broker *b, const char *listen, va_list ap)
{
	static int nbrokers;
	char *extra[60], portfile[300];
	const char *a;
	int n = 0, port;

	memset(b, 0, sizeof(*b));
	snprintf(portfile, sizeof(portfile), "%s/broker%d.port", tu_tmpdir(),
	    nbrokers);
	snprintf(b->log, sizeof(b->log), "%s/broker%d.log", tu_tmpdir(),
	    nbrokers++);
	while ((a = va_arg(ap, const char *)) != NULL && n < 59)
		extra[n++] = (char *)a;
	extra[n] = NULL;
	b->pid = epmd_spawn(tu_bin("sipc-epmd"), listen, portfile, b->log,
	    extra, 10000, &port);
	if (b->pid == -1) {
		b->pid = 0;
		return -1;
	}
	b->port = (uint16_t)port;
	snprintf(b->addr, sizeof(b->addr), "127.0.0.1:%u", b->port);
	return 0;
}

int
tu_broker_start(struct tu_broker *b, ...)
{
	va_list ap;
	int rc;

	va_start(ap, b);
	rc = broker_startv(b, "127.0.0.1:0", ap);
	va_end(ap);
	return rc;
}

int
tu_broker_start_port(struct tu_broker *b, uint16_t port, ...)
{
	char listen[32];
	va_list ap;
	int rc;

	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	va_start(ap, port);
	rc = broker_startv(b, listen, ap);
	va_end(ap);
	return rc;
}

void
tu_broker_stop(struct tu_broker *b)
{
	if (b->pid > 0)
		proc_stop(b->pid, 5000);
	b->pid = 0;
}

int
tu_sh(int timeout_s, char *out, size_t size, const char *fmt, ...)
{
	char cmd[8192], secs[16], buf[4096];
	char *argv[] = { "timeout", "-k", "2", secs, "sh", "-c", cmd, NULL };
	size_t n = 0;
	ssize_t r;
	va_list ap;
	pid_t pid;
	int pfd[2], status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(secs, sizeof(secs), "%d", timeout_s);
	fflush(stdout);
	fflush(stderr);
	if (pipe(pfd) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	while ((r = read(pfd[0], buf, sizeof(buf))) != 0) {
		if (r == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (out && n + 1 < size) {
			size_t take = (size_t)r < size - 1 - n ?
			    (size_t)r : size - 1 - n;

			memcpy(out + n, buf, take);
			n += take;
		}
	}
	close(pfd[0]);
	if (out && size)
		out[n] = '\0';
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

int
tu_file_count(const char *path, const char *needle)
{
	char line[4096];
	FILE *fp = fopen(path, "r");
	int n = 0;

	if (fp == NULL)
		return 0;
	while (fgets(line, sizeof(line), fp))
		if (strstr(line, needle))
			n++;
	fclose(fp);
	return n;
}

int
tu_wait_file(const char *path, const char *needle, int n, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;

	while (tu_file_count(path, needle) < n) {
		if (mono_ms() >= end)
			return 0;
		sleep_ms(10);
	}
	return 1;
}

long
tu_file_lines(const char *path)
{
	FILE *fp = fopen(path, "r");
	long n = 0;
	int ch;

	if (fp == NULL)
		return -1;
	while ((ch = fgetc(fp)) != EOF)
		if (ch == '\n')
			n++;
	fclose(fp);
	return n;
}

int
tu_count(const char *s, const char *needle)
{
	size_t len = strlen(needle);
	int n = 0;

	while ((s = strstr(s, needle)) != NULL) {
		n++;
		s += len;
	}
	return n;
}

int
tu_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

/* ---- Raw protocol client ------------------------------------------------- */

int
tu_connect_unix(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int
tu_send(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;
	ssize_t w;

	while (n > 0) {
		w = send(fd, q, n, MSG_NOSIGNAL);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

int
tu_send_wbuf(int fd, struct wbuf *w)
{
	int rc = tu_send(fd, w->data, w->len);

	wbuf_reset(w);
	return rc;
}

/* read_full() with an end on the monotonic clock: 0, 1 on timeout, -1. */
static int
read_by(int fd, void *p, size_t n, int64_t end)
{
	int64_t left = end - mono_ms();

	if (n == 0)
		return 0;
	if (left <= 0)
		return 1;
	if (read_full(fd, p, n, (int)left) == 0)
		return 0;
	return errno == ETIMEDOUT ? 1 : -1;
}

int
tu_recv(int fd, struct wire_header *h, uint8_t *payload, size_t cap,
    int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	uint8_t hdr[SIPC_HEADER_SIZE], sink[4096];
	size_t left, n;
	int rc;

	if ((rc = read_by(fd, hdr, sizeof(hdr), end)) != 0)
		return rc;
	if (wire_header_decode(hdr, UINT32_MAX, h) != 0)
		return -1;
	if (h->len <= cap)
		return read_by(fd, payload, h->len, end + 5000) == 0 ? 0 : -1;
	/* Too large for the caller: read it away, report an error. */
	for (left = h->len; left > 0; left -= n) {
		n = left < sizeof(sink) ? left : sizeof(sink);
		if (read_by(fd, sink, n, end + 5000) != 0)
			return -1;
	}
	return -1;
}

int
tu_recv_type(int fd, uint8_t type, struct wire_header *h, uint8_t *payload,
    size_t cap, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	struct wbuf w;
	uint64_t token;

	while (mono_ms() < end) {
		if (tu_recv(fd, h, payload, cap,
		    (int)(end - mono_ms())) != 0)
			return -1;
		if (h->type == type)
			return 0;
		if (h->type == WIRE_PING &&
		    wire_dec_u64(payload, h->len, &token) == 0) {
			wbuf_init(&w, 64);
			wire_enc_u64(&w, WIRE_PONG, h->reqid, token);
			tu_send_wbuf(fd, &w);
			wbuf_free(&w);
		}
	}
	return -1;
}

int
tu_closed(int fd, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	struct pollfd pfd = { fd, POLLIN, 0 };
	uint8_t buf[4096];
	ssize_t r;

	while (mono_ms() < end) {
		if (poll(&pfd, 1, (int)(end - mono_ms())) <= 0)
			continue;
		r = recv(fd, buf, sizeof(buf), 0);
		if (r == 0 || (r == -1 && errno == ECONNRESET))
			return 1;
	}
	return 0;
}

int
tu_hello(int fd, uint32_t heartbeat_ms)
{
	struct wire_hello m;
	struct wire_header h;
	struct wire_hello_ok ok;
	uint8_t buf[4096];
	struct wbuf w;
	int rc;

	memset(&m, 0, sizeof(m));
	m.min_version = m.max_version = 1;
	m.heartbeat_ms = heartbeat_ms;
	m.software.ptr = "testutil";
	m.software.len = 8;
	m.host.ptr = "testhost";
	m.host.len = 8;
	m.pid = (uint32_t)getpid();
	wbuf_init(&w, 4096);
	wire_enc_hello(&w, 1, &m);
	rc = tu_send_wbuf(fd, &w);
	wbuf_free(&w);
	if (rc != 0 || tu_recv_type(fd, WIRE_OK, &h, buf, sizeof(buf),
	    5000) != 0)
		return -1;
	return wire_dec_ok_hello(buf, h.len, &ok) == 0 ? 0 : -1;
}

uint64_t
tu_register(int fd, uint32_t reqid, const char *handle, uint16_t port,
    uint64_t instance)
{
	struct wire_register m;
	struct wire_header h;
	uint8_t buf[4096];
	struct wbuf w;
	uint64_t id;
	int rc;

	memset(&m, 0, sizeof(m));
	m.handle.ptr = handle;
	m.handle.len = (uint16_t)strlen(handle);
	m.instance = instance;
	m.ep.family = WIRE_AF_INET;
	m.ep.port = port;
	m.ep.addr[0] = 127;
	m.ep.addr[3] = 1;
	wbuf_init(&w, 4096);
	wire_enc_register(&w, reqid, &m);
	rc = tu_send_wbuf(fd, &w);
	wbuf_free(&w);
	if (rc != 0)
		return 0;
	for (;;) {
		if (tu_recv(fd, &h, buf, sizeof(buf), 5000) != 0)
			return 0;
		if (h.reqid != reqid)
			continue;
		if (h.type != WIRE_OK ||
		    wire_dec_ok_register(buf, h.len, &id) != 0)
			return 0;
		return id;
	}
}

int
tu_register_at(uint16_t bport, const char *handle, uint16_t port,
    uint64_t instance)
{
	int fd;

	if ((fd = connect_loopback(bport)) == -1)
		return -1;
	if (tu_hello(fd, 5000) != 0 ||
	    tu_register(fd, 2, handle, port, instance) == 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int
tu_accept_dhello(int lfd, struct wire_header *h, struct wire_dhello *m,
    uint8_t *buf, size_t cap)
{
	int fd;

	if ((fd = accept(lfd, NULL, NULL)) == -1)
		return -1;
	if (tu_recv(fd, h, buf, cap, 10000) != 0 || h->type != WIRE_DHELLO ||
	    wire_dec_dhello(buf, h->len, m) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int
tu_raw_sender(const char *path, const char *handle, uint32_t features,
    uint64_t sender_id, uint64_t first_seq, uint32_t heartbeat_ms,
    uint32_t ack_bytes, struct wire_dhello_ok *ok)
{
	struct wire_dhello m;
	struct wire_header h;
	uint8_t buf[4096];
	struct wbuf w;
	int fd;

	ck_assert_int_ge(fd = tu_connect_unix(path), 0);
	memset(&m, 0, sizeof(m));
	m.min_version = m.max_version = 1;
	m.features = features;
	m.sender_id = sender_id;
	m.first_seq = first_seq;
	m.heartbeat_ms = heartbeat_ms;
	m.ack_bytes = ack_bytes;
	m.handle.ptr = handle;
	m.handle.len = (uint16_t)strlen(handle);
	wbuf_init(&w, 4096);
	ck_assert_int_eq(wire_enc_dhello(&w, 1, &m), 0);
	ck_assert_int_eq(tu_send_wbuf(fd, &w), 0);
	wbuf_free(&w);
	ck_assert_int_eq(tu_recv(fd, &h, buf, sizeof(buf), 5000), 0);
	ck_assert_int_eq(h.type, WIRE_OK);
	ck_assert_int_eq(wire_dec_ok_dhello(buf, h.len, ok), 0);
	return fd;
}

void
tu_local_registry(void)
{
	char xdg[300];

	snprintf(xdg, sizeof(xdg), "%s/xdg", tu_tmpdir());
	mkdir(xdg, 0700);
	setenv("XDG_RUNTIME_DIR", xdg, 1);
	unsetenv("SIPC_BROKER");
}

void
tu_mode_setup(struct tu_broker *b, int mode)
{
	tu_local_registry();
	memset(b, 0, sizeof(*b));
	if (mode == 1)
		ck_assert_int_eq(tu_broker_start(b, NULL), 0);
}

void
tu_mode_teardown(struct tu_broker *b)
{
	if (b->pid > 0)
		tu_broker_stop(b);
	b->pid = 0;
}
