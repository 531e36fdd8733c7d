/*
 * harness.c - processes, a broker and bounded I/O for the tests and the
 * benchmarks (see harness.h).
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- Children ------------------------------------------------------------ */

/*
 * fork() for both kinds of child: 0 in the child, which dies with us.
 * stdio is flushed first so that nothing buffered is written twice.
 */
static pid_t
fork_bound(void)
{
	pid_t parent = getpid(), pid;

	fflush(NULL);
	if ((pid = fork()) != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* The parent may have died before prctl(). */
	if (getppid() != parent)
		_exit(127);
	return 0;
}

pid_t
proc_spawn(char *const argv[], const char *out_path)
{
	pid_t pid;
	int fd;

	if ((pid = fork_bound()) != 0)
		return pid;
	if (out_path) {
		fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd != -1) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
	}
	execv(argv[0], argv);
	fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

pid_t
proc_fork(int (*fn)(void *), void *arg)
{
	pid_t pid;
	int rc;

	if ((pid = fork_bound()) != 0)
		return pid;
	rc = fn(arg);
	fflush(NULL);
	_exit(rc);
}

int
proc_wait(pid_t pid, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	int status;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r == -1 && errno != EINTR)
			return -1;
		if (mono_ms() >= end)
			return -1;
		sleep_ms(5);
	}
}

int
proc_stop(pid_t pid, int timeout_ms)
{
	int status;

	if (pid <= 0)
		return -1;
	/* A stopped process (SIGSTOP in a test) acts on SIGTERM only once
	 * it runs again. */
	kill(pid, SIGCONT);
	kill(pid, SIGTERM);
	if ((status = proc_wait(pid, timeout_ms)) != -1)
		return status;
	kill(pid, SIGKILL);
	return proc_wait(pid, 5000);
}

int
proc_ok(int status)
{
	return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

long
proc_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(fp);
	return kb;
}

int64_t
proc_cpu_ns(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *fp;
	int ok;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	ok = fgets(buf, sizeof(buf), fp) != NULL;
	fclose(fp);
	/* Fields 14 and 15 (utime, stime) follow the ")" of the name,
	 * which may itself hold spaces and parentheses. */
	if (!ok || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%llu %llu", &ut, &st) != 2)
		return -1;
	return (int64_t)((ut + st) * 1000000000ULL /
	    (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* ---- A broker ------------------------------------------------------------ */

static int
read_port(const char *path)
{
	FILE *fp = fopen(path, "r");
	unsigned v;
	int ok;

	if (fp == NULL)
		return -1;
	ok = fscanf(fp, "%u", &v) == 1 && v > 0 && v < 65536;
	fclose(fp);
	return ok ? (int)v : -1;
}

int
port_file_wait(const char *path, pid_t pid, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	int port;

	while ((port = read_port(path)) == -1) {
		if (mono_ms() > end || waitpid(pid, NULL, WNOHANG) != 0)
			return -1;
		sleep_ms(5);
	}
	return port;
}

pid_t
epmd_spawn(const char *path, const char *listen, const char *portfile,
    const char *log, char *const extra[], int timeout_ms, int *port)
{
	char *argv[64];
	pid_t pid;
	int n = 0;

	argv[n++] = (char *)path;
	argv[n++] = "--listen";
	argv[n++] = (char *)listen;
	argv[n++] = "--port-file";
	argv[n++] = (char *)portfile;
	while (extra && *extra && n < 63)
		argv[n++] = *extra++;
	argv[n] = NULL;
	/* A port file left from an earlier broker would be read at once. */
	unlink(portfile);
	if ((pid = proc_spawn(argv, log)) == -1)
		return -1;
	if ((*port = port_file_wait(portfile, pid, timeout_ms)) == -1) {
		/* Reaped already when it exited; else it is hanging. */
		if (waitpid(pid, NULL, WNOHANG) == 0)
			proc_stop(pid, 1000);
		return -1;
	}
	return pid;
}

/* ---- Sockets and bounded I/O --------------------------------------------- */

static void
loopback(struct sockaddr_in *sin, int port)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

int
listen_loopback(int backlog, int *port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	loopback(&sin, 0);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    (backlog > 0 && listen(fd, backlog) == -1) ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == -1) {
		close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

int
free_port(void)
{
	int fd, port;

	/* Bound, never listening: nobody can connect to it meanwhile. */
	if ((fd = listen_loopback(0, &port)) == -1)
		return -1;
	close(fd);
	return port;
}

int
connect_loopback(int port)
{
	struct sockaddr_in sin;
	int fd, on = 1;

	loopback(&sin, port);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int
read_full(int fd, void *buf, size_t n, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms, left;
	struct pollfd pfd;
	uint8_t *p = buf;
	ssize_t r;
	int rc;

	while (n > 0) {
		if ((left = end - mono_ms()) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		rc = poll(&pfd, 1, (int)left);
		if (rc == -1 && errno == EINTR)
			continue;
		if (rc == -1)
			return -1;
		if (rc == 0)
			continue;
		r = read(fd, p, n);
		if (r == 0) {
			errno = EPIPE;
			return -1;
		}
		if (r == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int
write_full(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	struct pollfd pfd;
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && errno == EAGAIN) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			pfd.revents = 0;
			/* The reader is ours and alive, or we get EPIPE. */
			if (poll(&pfd, 1, 10000) == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			continue;
		}
		return -1;
	}
	return 0;
}
