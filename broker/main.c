/*
 * main.c - sipc-epmd, the sipc end point manager daemon: settings, binding,
 * daemonizing, signals and the event loop.  Everything else happens in
 * listen.c (accept), session.c (connections), dispatch.c (messages) and
 * registry.c (the data).
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "epmd.h"

uint64_t
now_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
now_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Uses the hard limit of descriptors: each session needs one. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Makes a relative path absolute: the daemon changes to /. */
static int
absolutize(char **path)
{
	char cwd[PATH_MAX], *abs;
	size_t n;

	if (*path == NULL || (*path)[0] == '/')
		return 0;
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	n = strlen(cwd) + strlen(*path) + 2;
	if ((abs = malloc(n)) == NULL)
		return -1;
	snprintf(abs, n, "%s/%s", cwd, *path);
	free(*path);
	*path = abs;
	return 0;
}

/*
 * Detaches.  The original process waits until the daemon reports through
 * a pipe that it is accepting, so that "sipc-epmd --daemon && brokerctl
 * ping" works, and exits 1 when the daemon failed.  Returns the pipe's
 * write end in the daemon.
 */
static int
daemonize(void)
{
	int pfd[2], fd, status;
	char c;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) == -1)
		fatal("pipe");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid > 0) {
		close(pfd[1]);
		if (read(pfd[0], &c, 1) == 1 && c == 'y')
			_exit(0);
		waitpid(pid, &status, WNOHANG);
		_exit(1);
	}
	close(pfd[0]);
	if (setsid() == -1)
		fatal("setsid");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid > 0)
		_exit(0);
	if (chdir("/") == -1)
		fatal("chdir /");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	return pfd[1];
}

static int
write_pidfile(const char *path)
{
	FILE *fp;

	if ((fp = fopen(path, "w")) == NULL) {
		log_warn("pidfile %s", path);
		return -1;
	}
	fprintf(fp, "%ld\n", (long)getpid());
	if (fclose(fp) != 0) {
		log_warn("pidfile %s", path);
		return -1;
	}
	return 0;
}

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct broker *b = arg;
	struct timeval tv = { 0, 500 * 1000 };

	(void)what;
	if (b->shutting_down)
		return;
	log_info("%s: shutting down, %u sessions open",
	    sig == SIGTERM ? "SIGTERM" : "SIGINT", b->nsessions);
	b->shutting_down = 1;
	listen_close(b);
	session_close_all(b, WIRE_ERR_SHUTDOWN, "broker shutting down");
	if (b->nsessions == 0)
		event_base_loopbreak(b->base);
	else
		event_base_loopexit(b->base, &tv);	/* time to flush */
}

/* SIGHUP: re-read the config file; keep the old settings if it is bad. */
static void
on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct broker *b = arg;
	struct config nc;
	int i, same;

	(void)sig;
	(void)what;
	if (config_load(&b->cl, &nc) == -1) {
		log_warnx("SIGHUP: config has errors; keeping the running "
		    "settings");
		config_free(&nc);
		return;
	}
	same = nc.nlisten == b->cfg.nlisten && nc.port == b->cfg.port;
	for (i = 0; same && i < nc.nlisten; i++)
		same = strcmp(nc.listen[i], b->cfg.listen[i]) == 0;
	if (!same)
		log_warnx("SIGHUP: listen addresses change only on restart");
	/* Listeners and paths stay; everything else takes effect now (new
	 * limits apply to what comes next, nothing is cut). */
	for (i = 0; i < nc.nlisten; i++)
		free(nc.listen[i]);
	memcpy(nc.listen, b->cfg.listen, sizeof(nc.listen));
	nc.nlisten = b->cfg.nlisten;
	nc.port = b->cfg.port;
	free(nc.port_file);
	nc.port_file = b->cfg.port_file;
	free(nc.pidfile);
	nc.pidfile = b->cfg.pidfile;
	nc.daemon = b->cfg.daemon;
	nc.max_frame = b->cfg.max_frame;	/* sized buffers */
	b->cfg = nc;
	log_set_level(b->cfg.log_level);
	log_info("SIGHUP: settings reloaded, log level %s",
	    log_level_name(b->cfg.log_level));
}

int
main(int argc, char **argv)
{
	struct broker b;
	uint8_t seed[16], gen[3];
	uint64_t first_id;
	char *abs_config = NULL;
	int i, ready_fd = -1;

	memset(&b, 0, sizeof(b));
	TAILQ_INIT(&b.sessions);
	b.reserve_fd = -1;
	for (i = 0; i < EPMD_MAX_LISTEN; i++)
		b.listeners[i].fd = -1;

	if (config_cmdline(argc, argv, &b.cl) == -1) {
		fprintf(stderr, "usage: sipc-epmd [options] [PORT] "
		    "(see --help)\n");
		return 2;
	}
	if (config_load(&b.cl, &b.cfg) == -1)
		return 1;
	if (b.cl.check_config) {
		config_print(&b.cfg, stdout);
		config_free(&b.cfg);
		return 0;
	}
	if (absolutize(&b.cfg.pidfile) == -1 ||
	    absolutize(&b.cfg.port_file) == -1)
		fatal("cannot resolve a relative path");
	if (b.cl.config_file && b.cl.config_file[0] != '/') {
		/* SIGHUP re-reads it after the daemon moved to /. */
		if ((abs_config = realpath(b.cl.config_file, NULL)) == NULL)
			fatal("%s", b.cl.config_file);
		b.cl.config_file = abs_config;
	}
	log_init("sipc-epmd", 0, b.cfg.log_level);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	if (listen_bind(&b) == -1) {
		listen_close(&b);
		config_free(&b.cfg);
		return 1;
	}
	if (b.cfg.daemon) {
		ready_fd = daemonize();
		log_init("sipc-epmd", 1, b.cfg.log_level);
	}

	if (RAND_bytes(seed, sizeof(seed)) != 1 ||
	    RAND_bytes(gen, sizeof(gen)) != 1)
		fatalx("no random numbers from OpenSSL");
	/* Registration ids: a random 21-bit generation above a 32-bit
	 * counter, so ids of a restarted broker differ from the old ones and
	 * stay below 2^53, exact in every JSON parser. */
	first_id = (uint64_t)((((uint32_t)gen[0] << 16 |
	    (uint32_t)gen[1] << 8 | gen[2]) & 0x1fffff) | 1) << 32 | 1;
	if ((b.base = event_base_new()) == NULL)
		fatalx("cannot create the event loop");
	if ((b.reg = reg_new(dispatch_notify, &b, first_id, seed)) == NULL)
		fatalx("out of memory");
	wbuf_init(&b.out, SIPC_HEADER_SIZE + (size_t)b.cfg.max_frame);
	wbuf_init(&b.evout, SIPC_HEADER_SIZE + 2 + SIPC_HANDLE_MAX +
	    SIPC_RECORD_MAX + 16);
	b.started_mono_ms = now_mono_ms();
	if (listen_start(&b) == -1)
		fatalx("cannot start listening");
	b.sig_term = evsignal_new(b.base, SIGTERM, on_stop, &b);
	b.sig_int = evsignal_new(b.base, SIGINT, on_stop, &b);
	b.sig_hup = evsignal_new(b.base, SIGHUP, on_reload, &b);
	if (!b.sig_term || !b.sig_int || !b.sig_hup ||
	    evsignal_add(b.sig_term, NULL) || evsignal_add(b.sig_int, NULL) ||
	    evsignal_add(b.sig_hup, NULL))
		fatalx("cannot install signal handlers");
	if (b.cfg.pidfile && write_pidfile(b.cfg.pidfile) == -1)
		return 1;
	if (b.cfg.port_file &&
	    listen_write_port_file(&b, b.cfg.port_file) == -1)
		return 1;
	log_info("%s ready: heartbeat %u ms, frame limit %u bytes",
	    EPMD_SOFTWARE, b.cfg.heartbeat_ms, b.cfg.max_frame);
	if (ready_fd != -1) {
		if (write(ready_fd, "y", 1) != 1)
			log_warn("cannot tell the parent we are ready");
		close(ready_fd);
	}

	event_base_dispatch(b.base);

	listen_close(&b);
	session_free_all(&b);
	reg_free(b.reg);
	wbuf_free(&b.out);
	wbuf_free(&b.evout);
	event_free(b.sig_term);
	event_free(b.sig_int);
	event_free(b.sig_hup);
	event_base_free(b.base);
	libevent_global_shutdown();
	if (b.cfg.pidfile)
		unlink(b.cfg.pidfile);
	config_free(&b.cfg);
	free(abs_config);
	log_info("stopped");
	return 0;
}
