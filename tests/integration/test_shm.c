/*
 * test_shm.c - the shared-memory path (PROTOCOL.md 6.7) between real
 * processes: every size from 0 B to 64 MiB, 1->1 and 1->8, content checked
 * by hash; SIGKILL of the sender and of a receiver mid-stream, with no
 * descriptor or mapping left behind; a receiver SIGSTOPped under each
 * policy; garbage rings from a raw peer written from the spec; idle CPU.
 *
 * Receivers (and the streaming sender) are this program run again:
 *   test_shm --receiver HANDLE FD      registers, writes "r" to FD, checks
 *                                      every message; SIGUSR1 writes its
 *                                      tally to FD; stays until killed
 *   test_shm --sender HANDLE           streams until killed
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../libclient/include/sipc.h"
#include "../../common/clock.h"
#include "../testutil.h"

/* Message i of a stream: 8 bytes of i, then a pattern of i (when there is
 * room); the size comes from the sizes table for the size test. */
static void
fill(uint8_t *p, size_t len, uint64_t i)
{
	size_t k;

	for (k = 0; k < len; k++)
		p[k] = (uint8_t)(i * 131 + k * 7 + (k >> 9));
	if (len >= 8)
		memcpy(p, &i, 8);
}

static uint64_t
fnv(const uint8_t *p, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	size_t k;

	for (k = 0; k < len; k++)
		h = (h ^ p[k]) * 1099511628211ULL;
	return h;
}

/* The size test's messages, twice over: across every boundary of an
 * entry, a ring's quarter (CHUNKs) and the ring itself. */
static const size_t sizes[] = {
	0, 1, 7, 8, 15, 16, 17, 63, 64, 1000, 4096, 65535, 65536,
	1 << 20, (4 << 20) - 16, (4 << 20) + 1, 9 << 20, 64 << 20, 3, 0
};
#define NSIZES	(sizeof(sizes) / sizeof(sizes[0]))

/* ---- The receiver process ------------------------------------------------ */

struct tally {
	atomic_long	 got;
	atomic_long	 bad;		/* content, order or size wrong */
	atomic_long	 gaps;
	atomic_long	 disconnects;
	atomic_ulong	 last_seq;
	int		 sized;		/* the size test's stream */
};

static struct tally rt;
static int rt_fd = -1;
static uint64_t rt_sender;	/* of the last message */

static void
r_message(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	long n = atomic_fetch_add(&rt.got, 1);
	uint8_t *want;
	uint64_t i;

	(void)rx;
	(void)arg;
	/* In order per sender (a new sender starts at 1). */
	if (m->sender_id != rt_sender)
		atomic_store(&rt.last_seq, 0);
	rt_sender = m->sender_id;
	if (m->seq <= atomic_load(&rt.last_seq))
		atomic_fetch_add(&rt.bad, 1);
	atomic_store(&rt.last_seq, m->seq);
	if (rt.sized) {
		i = (uint64_t)n;
		if (m->len != sizes[i % NSIZES]) {
			atomic_fetch_add(&rt.bad, 1);
			return;
		}
	} else {
		if (m->len < 8) {
			atomic_fetch_add(&rt.bad, 1);
			return;
		}
		memcpy(&i, m->data, 8);
	}
	if ((want = malloc(m->len ? m->len : 1)) == NULL)
		_exit(5);
	fill(want, m->len, i);
	if (fnv(want, m->len) != fnv(m->data, m->len))
		atomic_fetch_add(&rt.bad, 1);
	free(want);
}

static void
r_gap(sipc_receiver *rx, uint64_t id, uint64_t first, uint64_t count,
    void *arg)
{
	(void)rx;
	(void)id;
	(void)first;
	(void)arg;
	atomic_fetch_add(&rt.gaps, (long)count);
}

static void
r_disconnect(sipc_receiver *rx, uint64_t id, const char *peer, void *arg)
{
	(void)rx;
	(void)id;
	(void)peer;
	(void)arg;
	atomic_fetch_add(&rt.disconnects, 1);
}

static void
r_report(int sig)
{
	char line[128];
	int n;

	(void)sig;
	n = snprintf(line, sizeof(line), "%ld %ld %ld %ld\n",
	    atomic_load(&rt.got), atomic_load(&rt.bad),
	    atomic_load(&rt.gaps), atomic_load(&rt.disconnects));
	(void)write(rt_fd, line, (size_t)n);
}

static int
receiver_main(char **argv)
{
	struct sipc_receiver_opts o;
	sipc_receiver *rx;
	sipc_epm *epm;

	const char *b = getenv("SHM_BROKER");

	rt_fd = atoi(argv[3]);
	rt.sized = getenv("SHM_SIZED") != NULL;
	signal(SIGUSR1, r_report);
	if (b ? sipc_epm_connect(b, NULL, &epm) : sipc_epm_local(&epm))
		return 3;
	sipc_receiver_opts_init(&o);
	o.on_message = r_message;
	o.on_gap = r_gap;
	o.on_disconnect = r_disconnect;
	if (sipc_receiver_new(argv[2], epm, &o, &rx) != 0)
		return 4;
	(void)write(rt_fd, "r", 1);
	for (;;)
		pause();
}

static int
sender_main(char **argv)
{
	sipc_sender *tx;
	sipc_epm *epm;
	uint8_t buf[512];
	uint64_t i;

	if (sipc_epm_local(&epm) != 0 ||
	    sipc_sender_new(argv[2], epm, NULL, &tx) != 0 ||
	    sipc_sender_wait_receivers(tx, 1, 10000) != 0)
		return 3;
	for (i = 0;; i++) {
		fill(buf, 64 + i % 400, i);
		if (sipc_send(tx, buf, 64 + i % 400) != 0)
			return 4;
	}
}

/* ---- Helpers for the tests ----------------------------------------------- */

static void
local_registry(void)
{
	tu_local_registry();
	unsetenv("SIPC_TRANSPORT");
}

struct child {
	pid_t	 pid;
	int	 fd;		/* its reports */
};

static struct child
spawn_receiver(const char *handle)
{
	char f[16];
	char *argv[] = { "/proc/self/exe", "--receiver", (char *)handle, f,
	    NULL };
	struct child c;
	int p[2];
	char ch;

	ck_assert_int_eq(pipe(p), 0);
	snprintf(f, sizeof(f), "%d", p[1]);
	c.pid = proc_spawn(argv, NULL);
	close(p[1]);
	ck_assert_int_gt(c.pid, 0);
	c.fd = p[0];
	ck_assert_msg(read(c.fd, &ch, 1) == 1, "receiver did not start");
	return c;
}

/* The receiver's tally: got, bad, gaps, disconnects. */
static void
tally(struct child *c, long *got, long *bad, long *gaps, long *disc)
{
	char line[128];
	ssize_t n;

	kill(c->pid, SIGUSR1);
	n = read(c->fd, line, sizeof(line) - 1);
	ck_assert_int_gt(n, 0);
	line[n] = '\0';
	ck_assert_int_eq(sscanf(line, "%ld %ld %ld %ld", got, bad, gaps, disc),
	    4);
}

/* Waits until the receiver got n messages (within ms): its tally. */
static long
wait_got(struct child *c, long n, int ms, long *bad, long *gaps, long *disc)
{
	long got = 0;
	int64_t end = mono_ms() + ms;

	do {
		tally(c, &got, bad, gaps, disc);
		if (got >= n)
			break;
		sleep_ms(20);
	} while (mono_ms() < end);
	return got;
}

static void
stop_child(struct child *c)
{
	kill(c->pid, SIGCONT);
	kill(c->pid, SIGKILL);
	proc_wait(c->pid, 5000);
	close(c->fd);
}

/* Mappings and descriptors of pid naming what (memfd:sipc-ring, ...). */
static int
maps_count(pid_t pid, const char *what)
{
	char path[64], buf[1 << 16];
	size_t n;
	FILE *fp;
	int c = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf) - 1, fp)) > 0) {
		buf[n] = '\0';
		c += tu_count(buf, what);
	}
	fclose(fp);
	return c;
}

static int
fds_count(pid_t pid, const char *what)
{
	char path[300], link[300];
	struct dirent *de;
	ssize_t n;
	DIR *d;
	int c = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid,
		    de->d_name);
		if ((n = readlink(path, link, sizeof(link) - 1)) <= 0)
			continue;
		link[n] = '\0';
		c += strstr(link, what) != NULL;
	}
	closedir(d);
	return c;
}

/* Waits until pid holds no ring or cursor, mapped or open. */
static int
clean_within(pid_t pid, int ms)
{
	int64_t end = mono_ms() + ms;

	do {
		if (maps_count(pid, "sipc-ring") == 0 &&
		    maps_count(pid, "sipc-cursor") == 0 &&
		    fds_count(pid, "sipc-ring") == 0 &&
		    fds_count(pid, "sipc-cursor") == 0)
			return 1;
		sleep_ms(20);
	} while (mono_ms() < end);
	return 0;
}

/* A sender of handle; hwm 0: the default mark.  Under BLOCK it waits
 * 60 s for room (a loaded machine hashes 64 MiB messages slowly), except
 * with a mark of its own (where the test wants a stopped receiver to make
 * it give up). */
static sipc_sender *
new_sender(sipc_epm *epm, const char *handle, int policy, size_t hwm,
    sipc_sender **out)
{
	struct sipc_sender_opts so;

	sipc_sender_opts_init(&so);
	so.policy = policy;
	if (hwm)
		so.hwm_bytes = hwm;
	else
		so.send_timeout_ms = 60000;
	ck_assert_msg(sipc_sender_new(handle, epm, &so, out) == 0,
	    "sender: %s", sipc_errmsg());
	return *out;
}

/* ---- Every size, 1->1 and 1->8 -------------------------------------------- */

START_TEST(test_sizes)
{
	const int nrx = _i == 1 ? 8 : 1, loan = _i == 2;
	struct child c[8];
	long got, bad, gaps, disc;
	sipc_sender *tx;
	sipc_epm *epm;
	uint8_t *buf;
	size_t i;
	int k;

	local_registry();
	setenv("SHM_SIZED", "1", 1);
	for (k = 0; k < nrx; k++)
		c[k] = spawn_receiver("sizes");
	unsetenv("SHM_SIZED");
	ck_assert_int_eq(sipc_epm_local(&epm), 0);
	new_sender(epm, "sizes", SIPC_POLICY_BLOCK, 0, &tx);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, (size_t)nrx, 10000),
	    0);
	ck_assert_ptr_nonnull(buf = malloc(64 << 20));
	for (i = 0; i < 2 * NSIZES && !loan; i++) {
		fill(buf, sizes[i % NSIZES], i);
		ck_assert_msg(sipc_send(tx, buf, sizes[i % NSIZES]) == 0,
		    "send %zu bytes: %s", sizes[i % NSIZES], sipc_errmsg());
	}
	free(buf);
	/* The zero-copy API: written in place, loaned 16 bytes more than
	 * sent; one loan given back unsent on the way. */
	for (i = 0; i < 2 * NSIZES && loan; i++) {
		void *p;

		ck_assert_int_eq(sipc_send_loan(tx, 100, &p), 0);
		sipc_send_abort(tx, p);
		ck_assert_int_eq(sipc_send_loan(tx, sizes[i % NSIZES] +
		    (sizes[i % NSIZES] < (64 << 20) ? 16 : 0), &p), 0);
		fill(p, sizes[i % NSIZES], i);
		ck_assert_int_eq(sipc_send_commit(tx, p, sizes[i % NSIZES]),
		    0);
	}
	ck_assert_msg(sipc_sender_flush(tx, 60000) == 0, "flush: %s",
	    sipc_errmsg());
	/* It went through the ring: each receiver maps one. */
	for (k = 0; k < nrx; k++)
		ck_assert_int_ge(maps_count(c[k].pid, "sipc-ring"), 1);
	ck_assert_int_eq(maps_count(getpid(), "sipc-cursor"), nrx);
	for (k = 0; k < nrx; k++) {
		got = wait_got(&c[k], (long)(2 * NSIZES), 10000, &bad, &gaps,
		    &disc);
		ck_assert_int_eq(got, (long)(2 * NSIZES));
		ck_assert_int_eq(bad, 0);
		ck_assert_int_eq(gaps, 0);
	}
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	sipc_epm_close(epm);
	/* The sender gone: no ring left with the receivers, nothing here. */
	for (k = 0; k < nrx; k++) {
		ck_assert_msg(clean_within(c[k].pid, 5000), "receiver %d keeps "
		    "a ring or cursor", k);
		stop_child(&c[k]);
	}
	ck_assert(clean_within(getpid(), 1000));
}
END_TEST

/* ---- SIGKILL mid-stream --------------------------------------------------- */

START_TEST(test_kill_sender)
{
	char *argv[] = { "/proc/self/exe", "--sender", "killtx", NULL };
	long got, got2, bad, gaps, disc;
	struct child c;
	pid_t tx;

	local_registry();
	c = spawn_receiver("killtx");
	ck_assert_int_gt(tx = proc_spawn(argv, NULL), 0);
	got = wait_got(&c, 200000, 20000, &bad, &gaps, &disc);
	ck_assert_int_ge(got, 200000);
	ck_assert_int_ge(maps_count(c.pid, "sipc-ring"), 1);
	kill(tx, SIGKILL);
	proc_wait(tx, 5000);
	/* Every whole message, then the disconnect; nothing torn, nothing
	 * left mapped or open. */
	ck_assert_msg(clean_within(c.pid, 5000), "receiver keeps the ring of "
	    "a dead sender");
	tally(&c, &got2, &bad, &gaps, &disc);
	ck_assert_int_eq(disc, 1);
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(gaps, 0);
	fprintf(stderr, "killed sender: receiver got %ld messages, none "
	    "damaged, then the disconnect; no ring left\n", got2);
	stop_child(&c);
}
END_TEST

START_TEST(test_kill_receiver)
{
	struct child c[2];
	long got, bad, gaps, disc, before;
	sipc_sender *tx;
	sipc_epm *epm;
	uint8_t buf[256];
	uint64_t i;

	local_registry();
	c[0] = spawn_receiver("killrx");
	c[1] = spawn_receiver("killrx");
	ck_assert_int_eq(sipc_epm_local(&epm), 0);
	new_sender(epm, "killrx", SIPC_POLICY_BLOCK, 256 * 1024, &tx);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 2, 10000), 0);
	for (i = 0; i < 50000; i++) {
		fill(buf, sizeof(buf), i);
		ck_assert_int_eq(sipc_send(tx, buf, sizeof(buf)), 0);
	}
	kill(c[1].pid, SIGKILL);
	proc_wait(c[1].pid, 5000);
	close(c[1].fd);
	/* The survivor goes on at once, far past the ring's size, and the
	 * dead one's cursor page leaves this process. */
	for (; i < 250000; i++) {
		fill(buf, sizeof(buf), i);
		ck_assert_int_eq(sipc_send(tx, buf, sizeof(buf)), 0);
	}
	ck_assert_msg(sipc_sender_flush(tx, 20000) == 0, "flush: %s",
	    sipc_errmsg());
	got = wait_got(&c[0], 250000, 10000, &bad, &gaps, &disc);
	ck_assert_int_eq(got, 250000);
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(gaps, 0);
	before = maps_count(getpid(), "sipc-cursor");
	ck_assert_int_eq(before, 1);
	ck_assert_int_eq(fds_count(getpid(), "sipc-cursor"), 0);
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	sipc_epm_close(epm);
	ck_assert(clean_within(getpid(), 1000));
	stop_child(&c[0]);
}
END_TEST

/* ---- A SIGSTOPped receiver under each policy ------------------------------ */

START_TEST(test_stopped_receiver)
{
	static const int policies[] = { SIPC_POLICY_BLOCK, SIPC_POLICY_DROP,
	    SIPC_POLICY_DISCONNECT };
	struct sipc_sender_stats st;
	struct child c[2];
	long got0, got1, bad, gaps, disc, during;
	sipc_sender *tx;
	sipc_epm *epm;
	uint8_t buf[1024];
	uint64_t i, n = 0;
	int64_t end;

	local_registry();
	c[0] = spawn_receiver("stopped");
	c[1] = spawn_receiver("stopped");
	ck_assert_int_eq(sipc_epm_local(&epm), 0);
	new_sender(epm, "stopped", policies[_i], 256 * 1024, &tx);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 2, 10000), 0);
	kill(c[1].pid, SIGSTOP);
	/* 1 s of sending with one receiver stopped, at a pace the other
	 * keeps up with (its checks cost microseconds a message). */
	end = mono_ms() + 1000;
	for (i = 0; mono_ms() < end; i++) {
		fill(buf, sizeof(buf), i);
		if (sipc_send(tx, buf, sizeof(buf)) != 0)
			break;
		if (++n % 5 == 0)
			sleep_ms(1);
	}
	tally(&c[0], &during, &bad, &gaps, &disc);
	kill(c[1].pid, SIGCONT);
	for (; i < n + 1000; i++) {
		fill(buf, sizeof(buf), i);
		ck_assert_int_eq(sipc_send(tx, buf, sizeof(buf)), 0);
		if (i % 5 == 0)
			sleep_ms(1);
	}
	n += 1000;
	sipc_sender_flush(tx, 20000);
	got0 = wait_got(&c[0], (long)n, 10000, &bad, &gaps, &disc);
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(sipc_sender_stats(tx, &st), 0);
	if (policies[_i] == SIPC_POLICY_BLOCK) {
		/* Everyone waits for the slowest: nothing lost anywhere. */
		ck_assert_int_eq(got0, (long)n);
		got1 = wait_got(&c[1], (long)n, 10000, &bad, &gaps, &disc);
		ck_assert_int_eq(got1, (long)n);
		ck_assert_int_eq(bad, 0);
		ck_assert_int_eq(gaps, 0);
	} else {
		/* The other receiver never waited on the stopped one: it got
		 * everything, and got most of it while the other slept. */
		ck_assert_int_eq(got0, (long)n);
		ck_assert_int_eq(gaps, 0);
		ck_assert_int_gt(during, (long)(n - 1000) / 2);
		got1 = wait_got(&c[1], (long)n, 3000, &bad, &gaps, &disc);
		ck_assert_int_eq(bad, 0);
		ck_assert_int_lt(got1, (long)n);
	}
	fprintf(stderr, "stopped receiver, %s: %llu sent, the other got %ld "
	    "(%ld while it slept), the stopped one %ld\n",
	    _i == 0 ? "block" : _i == 1 ? "drop" : "disconnect",
	    (unsigned long long)n, got0, during, got1);
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	sipc_epm_close(epm);
	stop_child(&c[0]);
	stop_child(&c[1]);
}
END_TEST

/* ---- Garbage rings from a raw sender --------------------------------------- */

static atomic_long g_got;

static void
g_message(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	(void)rx;
	(void)m;
	(void)arg;
	atomic_fetch_add(&g_got, 1);
}

/* A raw sender offering SHM on path: the fd, after an OK granting it. */
static int
raw_shm_sender(const char *path, uint64_t id)
{
	struct wire_dhello_ok ok;
	int fd;

	fd = tu_raw_sender(path, "garbage", WIRE_FEAT_SHM, id, 1, 5000, 0,
	    &ok);
	ck_assert_uint_eq(ok.features & WIRE_FEAT_SHM, WIRE_FEAT_SHM);
	return fd;
}

/* A ring as PROTOCOL.md 6.7 lays it out, of size bytes of entries, with
 * seals (or not): its fd, *map its writable mapping. */
static int
make_ring(uint64_t size, uint64_t gen, int seal, uint8_t **map)
{
	int fd = memfd_create("test-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	uint32_t u32;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)(4096 + size)), 0);
	*map = mmap(NULL, 4096 + size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	    0);
	ck_assert(*map != MAP_FAILED);
	u32 = 0x53495052;
	memcpy(*map, &u32, 4);
	u32 = 1;
	memcpy(*map + 4, &u32, 4);
	memcpy(*map + 8, &size, 8);
	memcpy(*map + 16, &gen, 8);
	if (seal)
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK |
		    F_SEAL_GROW | F_SEAL_FUTURE_WRITE), 0);
	return fd;
}

/* Sends SHM_RING with fds (n of them). */
static void
send_ring(int fd, uint64_t gen, uint64_t size, const int *fds, int n)
{
	struct wire_shm_ring m = { gen, size, 0 };
	union {
		struct cmsghdr	 h;
		char		 b[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	struct wbuf w;
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *cm;

	wbuf_init(&w, 256);
	ck_assert_int_eq(wire_enc_shm_ring(&w, &m), 0);
	iov.iov_base = w.data;
	iov.iov_len = w.len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (n > 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.b;
		mh.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)n * sizeof(int));
	}
	ck_assert_int_eq(sendmsg(fd, &mh, 0), (ssize_t)w.len);
	wbuf_free(&w);
}

/* The receiver answers ERROR code and closes. */
static void
expect_error(int fd, uint16_t code)
{
	struct wire_header h;
	struct wire_error e;
	uint8_t buf[4096];

	ck_assert_int_eq(tu_recv_type(fd, WIRE_ERROR, &h, buf, sizeof(buf),
	    5000), 0);
	ck_assert_int_eq(wire_dec_error(buf, h.len, &e), 0);
	ck_assert_int_eq(e.code, code);
	ck_assert(tu_closed(fd, 5000));
	close(fd);
}

START_TEST(test_garbage_ring)
{
	const uint64_t size = 65536;
	struct sipc_receiver_opts o;
	struct wire_header h;
	uint8_t buf[4096], *map;
	sipc_receiver *rx;
	sipc_sender *tx;
	sipc_epm *epm;
	char ep[256];
	uint32_t u32;
	uint64_t u64;
	int fd, fds[2], efd;

	local_registry();
	ck_assert_int_eq(sipc_epm_local(&epm), 0);
	sipc_receiver_opts_init(&o);
	o.on_message = g_message;
	ck_assert_int_eq(sipc_receiver_new("garbage", epm, &o, &rx), 0);
	ck_assert_int_eq(sipc_receiver_endpoint(rx, ep, sizeof(ep)), 0);
	efd = eventfd(0, EFD_CLOEXEC);

	/* SHM_RING without its descriptors. */
	fd = raw_shm_sender(ep + 5, 0x1001);
	send_ring(fd, 1, size, NULL, 0);
	expect_error(fd, WIRE_ERR_BAD_MESSAGE);

	/* A ring without seals: anyone could write or shrink it. */
	fd = raw_shm_sender(ep + 5, 0x1002);
	fds[0] = make_ring(size, 1, 0, &map);
	fds[1] = efd;
	send_ring(fd, 1, size, fds, 2);
	expect_error(fd, WIRE_ERR_BAD_MESSAGE);
	munmap(map, 4096 + size);
	close(fds[0]);

	/* A size the memfd does not have. */
	fd = raw_shm_sender(ep + 5, 0x1003);
	fds[0] = make_ring(size, 1, 1, &map);
	send_ring(fd, 1, size * 2, fds, 2);
	expect_error(fd, WIRE_ERR_BAD_MESSAGE);
	munmap(map, 4096 + size);
	close(fds[0]);

	/* Entries that lie: a length past the head, then past the ring,
	 * an unknown type, a PAD in the middle. */
	for (int k = 0; k < 4; k++) {
		fd = raw_shm_sender(ep + 5, 0x2000 + (uint64_t)k);
		fds[0] = make_ring(size, 1, 1, &map);
		u32 = k == 0 ? 100 : k == 1 ? 0x7fffffff : 8;
		memcpy(map + 4096, &u32, 4);
		u32 = k == 2 ? 77 : k == 3 ? 2 : 1;
		memcpy(map + 4096 + 4, &u32, 2);
		u64 = 1;
		memcpy(map + 4096 + 8, &u64, 8);
		u64 = 32;	/* head: one small entry's worth */
		memcpy(map + 64, &u64, 8);
		send_ring(fd, 1, size, fds, 2);
		/* The receiver answers SHM_CURSOR, then finds the garbage. */
		ck_assert_int_eq(tu_recv_type(fd, WIRE_SHM_CURSOR, &h, buf,
		    sizeof(buf), 5000), 0);
		expect_error(fd, WIRE_ERR_BAD_MESSAGE);
		munmap(map, 4096 + size);
		close(fds[0]);
	}
	ck_assert_int_eq(atomic_load(&g_got), 0);
	ck_assert(clean_within(getpid(), 2000));

	/* The receiver is fine: a real sender still gets through. */
	new_sender(epm, "garbage", SIPC_POLICY_BLOCK, 0, &tx);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 5000), 0);
	ck_assert_int_eq(sipc_send(tx, "ok", 2), 0);
	ck_assert_int_eq(sipc_sender_flush(tx, 5000), 0);
	ck_assert_int_eq(atomic_load(&g_got), 1);
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	sipc_receiver_close(rx);
	sipc_epm_close(epm);
	close(efd);
}
END_TEST

/* ---- Receivers with different limits on one ring ------------------------- */

struct lim {
	atomic_long	 got;
	atomic_long	 gaps;
	atomic_long	 bytes;
};

static void
l_message(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	struct lim *l = arg;

	(void)rx;
	atomic_fetch_add(&l->got, 1);
	atomic_fetch_add(&l->bytes, (long)m->len);
}

static void
l_gap(sipc_receiver *rx, uint64_t id, uint64_t first, uint64_t count,
    void *arg)
{
	struct lim *l = arg;

	(void)rx;
	(void)id;
	(void)first;
	atomic_fetch_add(&l->gaps, (long)count);
}

static atomic_long l_lost;

static void
l_failed(sipc_sender *tx, int error, const char *ep, uint64_t n, void *arg)
{
	(void)tx;
	(void)ep;
	(void)arg;
	if (error == SIPC_ETOOBIG)
		atomic_fetch_add(&l_lost, (long)n);
}

/*
 * One ring, two receivers: one takes at most 1,000 bytes a message.  The
 * larger messages (one whole entry, one in CHUNKs) reach the other; the
 * small one skips them, its sender counts them as too large for it, and
 * it sees them as a gap.
 */
START_TEST(test_max_message)
{
	static const size_t lens[] = { 500, 5000, 6 << 20, 500 };
	struct sipc_receiver_opts o;
	struct sipc_sender_opts so;
	struct lim small, big;
	sipc_receiver *rs, *rb;
	sipc_epm *e1, *e2, *e3;
	sipc_sender *tx;
	uint8_t *buf;
	size_t i;

	local_registry();
	memset(&small, 0, sizeof(small));
	memset(&big, 0, sizeof(big));
	ck_assert_int_eq(sipc_epm_local(&e1), 0);
	ck_assert_int_eq(sipc_epm_local(&e2), 0);
	ck_assert_int_eq(sipc_epm_local(&e3), 0);
	sipc_receiver_opts_init(&o);
	o.on_message = l_message;
	o.on_gap = l_gap;
	o.arg = &small;
	o.max_message = 1000;
	ck_assert_int_eq(sipc_receiver_new("limits", e1, &o, &rs), 0);
	o.arg = &big;
	o.max_message = 64 << 20;
	ck_assert_int_eq(sipc_receiver_new("limits", e2, &o, &rb), 0);
	sipc_sender_opts_init(&so);
	so.on_send_failed = l_failed;
	ck_assert_int_eq(sipc_sender_new("limits", e3, &so, &tx), 0);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 2, 5000), 0);
	ck_assert_ptr_nonnull(buf = calloc(1, 6 << 20));
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(sipc_send(tx, buf, lens[i]), 0);
	free(buf);
	ck_assert_int_eq(sipc_sender_flush(tx, 10000), 0);
	/* Each receiver maps its page, the sender each of them. */
	ck_assert_int_eq(maps_count(getpid(), "sipc-cursor"), 4);
	for (i = 0; i < 500 && (atomic_load(&big.got) < 4 ||
	    atomic_load(&small.got) < 2); i++)
		sleep_ms(10);
	ck_assert_int_eq(atomic_load(&big.got), 4);
	ck_assert_int_eq(atomic_load(&big.bytes), 500 + 5000 + (6 << 20) +
	    500);
	ck_assert_int_eq(atomic_load(&small.got), 2);
	ck_assert_int_eq(atomic_load(&small.bytes), 1000);
	ck_assert_int_eq(atomic_load(&small.gaps), 2);
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	ck_assert_int_eq(atomic_load(&l_lost), 2);
	sipc_receiver_close(rs);
	sipc_receiver_close(rb);
	sipc_epm_close(e1);
	sipc_epm_close(e2);
	sipc_epm_close(e3);
}
END_TEST

/* ---- Broker mode on one host ---------------------------------------------- */

/* Listening Unix sockets whose name starts with prefix and holds part
 * (/proc/net/unix: "@" for abstract names). */
static int
unix_names(const char *prefix, const char *part)
{
	char line[512], *p;
	FILE *fp = fopen("/proc/net/unix", "r");
	int n = 0;

	if (fp == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp))
		if ((p = strchr(line, '@')) && strncmp(p, prefix,
		    strlen(prefix)) == 0 && strstr(p, part) &&
		    strstr(line, " 00010000 "))
			n++;
	fclose(fp);
	return n;
}

/*
 * Registered at a broker with a TCP endpoint, a receiver still gets the
 * messages of a sender of its own host through the ring; with
 * SIPC_TRANSPORT=tcp at the sender, over TCP.  The same-host socket goes
 * with the receiver.
 */
START_TEST(test_broker_same_host)
{
	struct tu_broker b;
	struct child c;
	long got, bad, gaps, disc;
	sipc_sender *tx;
	sipc_epm *epm;
	uint8_t buf[300];
	char name[64];
	uint64_t i;
	int round;

	local_registry();
	ck_assert_int_eq(tu_broker_start(&b, NULL), 0);
	setenv("SHM_BROKER", b.addr, 1);
	c = spawn_receiver("samehost");
	unsetenv("SHM_BROKER");
	for (round = 0; round < 2; round++) {
		if (round == 1)
			setenv("SIPC_TRANSPORT", "tcp", 1);
		ck_assert_int_eq(sipc_epm_connect(b.addr, NULL, &epm), 0);
		new_sender(epm, "samehost", SIPC_POLICY_BLOCK, 0, &tx);
		ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 10000), 0);
		for (i = 0; i < 10000; i++) {
			fill(buf, sizeof(buf), i);
			ck_assert_int_eq(sipc_send(tx, buf, sizeof(buf)), 0);
		}
		ck_assert_int_eq(sipc_sender_flush(tx, 10000), 0);
		/* Through the ring (the receiver maps it, we map its
		 * cursor), or not at all. */
		ck_assert_int_eq(maps_count(getpid(), "sipc-cursor"),
		    round == 0 ? 1 : 0);
		ck_assert_int_eq(maps_count(c.pid, "sipc-ring") > 0,
		    round == 0);
		ck_assert_int_eq(sipc_sender_close(tx), 0);
		sipc_epm_close(epm);
		got = wait_got(&c, 10000 * (round + 1), 10000, &bad, &gaps,
		    &disc);
		ck_assert_int_eq(got, 10000 * (round + 1));
		ck_assert_int_eq(bad, 0);
		ck_assert_int_eq(gaps, 0);
	}
	unsetenv("SIPC_TRANSPORT");
	/* Its same-host socket is abstract: it goes with the process. */
	snprintf(name, sizeof(name), ".%d.", (int)c.pid);
	ck_assert_int_eq(unix_names("@sipc/h/", name), 1);
	stop_child(&c);
	ck_assert_int_eq(unix_names("@sipc/h/", name), 0);
	tu_broker_stop(&b);
}
END_TEST

/* ---- Idle ------------------------------------------------------------------ */

START_TEST(test_idle_cpu)
{
	struct child c;
	long got, bad, gaps, disc;
	int64_t rx0, rx1, tx0, tx1;
	sipc_sender *tx;
	sipc_epm *epm;
	uint8_t buf[64];

	/* A connected pair on the ring, at rest after one message: both
	 * asleep on their eventfds, only heartbeats between them. */
	local_registry();
	c = spawn_receiver("idle");
	ck_assert_int_eq(sipc_epm_local(&epm), 0);
	new_sender(epm, "idle", SIPC_POLICY_BLOCK, 0, &tx);
	ck_assert_int_eq(sipc_sender_wait_receivers(tx, 1, 5000), 0);
	fill(buf, sizeof(buf), 0);
	ck_assert_int_eq(sipc_send(tx, buf, sizeof(buf)), 0);
	ck_assert_int_eq(sipc_sender_flush(tx, 5000), 0);
	got = wait_got(&c, 1, 5000, &bad, &gaps, &disc);
	ck_assert_int_eq(got, 1);
	ck_assert_int_ge(maps_count(c.pid, "sipc-ring"), 1);
	sleep_ms(200);
	rx0 = proc_cpu_ns(c.pid);
	tx0 = proc_cpu_ns(getpid());
	sleep_ms(2000);
	rx1 = proc_cpu_ns(c.pid);
	tx1 = proc_cpu_ns(getpid());
	fprintf(stderr, "idle pair over 2 s: receiver %.2f ms CPU, sender "
	    "%.2f ms\n", (rx1 - rx0) / 1e6, (tx1 - tx0) / 1e6);
	/* Under 1 % of a CPU: 20 ms in 2 s. */
	ck_assert_int_lt(rx1 - rx0, 20000000);
	ck_assert_int_lt(tx1 - tx0, 20000000);
	ck_assert_int_eq(sipc_sender_close(tx), 0);
	sipc_epm_close(epm);
	stop_child(&c);
}
END_TEST

int
main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;

	if (argc == 4 && strcmp(argv[1], "--receiver") == 0)
		return receiver_main(argv);
	if (argc == 3 && strcmp(argv[1], "--sender") == 0)
		return sender_main(argv);
	signal(SIGPIPE, SIG_IGN);
	s = suite_create("shm");
	tc = tcase_create("shm");
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, NULL, tu_cleanup);
	tcase_add_loop_test(tc, test_sizes, 0, 3);
	tcase_add_test(tc, test_kill_sender);
	tcase_add_test(tc, test_kill_receiver);
	tcase_add_loop_test(tc, test_stopped_receiver, 0, 3);
	tcase_add_test(tc, test_garbage_ring);
	tcase_add_test(tc, test_max_message);
	tcase_add_test(tc, test_broker_same_host);
	tcase_add_test(tc, test_idle_cpu);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
