/*
 * main.c - sipc-epmd, the sipc end point manager daemon: settings, binding,
 * daemonizing, signals and the event loop.  Everything else happens in
 * listen.c (accept), session.c (connections), dispatch.c (messages) and
 * registry.c (the data).
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stddef.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "../common/tls.h"
#include "epmd.h"
#include "monitor.h"

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

/* Makes a relative path absolute against dir: the daemon changes to /. */
static int
absolutize(char **path, const char *dir)
{
	char *abs;
	size_t n;

	if (*path == NULL || (*path)[0] == '/')
		return 0;
	if (dir[0] == '\0')
		return -1;
	n = strlen(dir) + strlen(*path) + 2;
	if ((abs = malloc(n)) == NULL)
		return -1;
	snprintf(abs, n, "%s/%s", dir, *path);
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

/*
 * Tells systemd about state changes when it started us with Type=notify
 * ($NOTIFY_SOCKET, a datagram socket; the protocol of sd_notify(3)).
 */
static void
notify_systemd(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t sl;
	size_t n;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    (n = strlen(path)) >= sizeof(sun.sun_path))
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, n);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';	/* abstract namespace */
	sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, sl) == -1)
		log_warn("sd_notify %s", state);
	close(fd);
}

/*
 * TLS with certificates, password mode (TLS 1.3 PSK), or plain text.
 * Returns 0, or -1 after logging why.
 */
static int
setup_security(struct broker *b)
{
	struct tls_conf tc;
	char pw[TLS_PASSWORD_MAX], err[512];
	const char *password = NULL;

	memset(&tc, 0, sizeof(tc));
	if (b->cfg.password_file) {
		if (tls_password_read(b->cfg.password_file, pw, sizeof(pw), err,
		    sizeof(err)) == -1) {
			log_errorx("%s", err);
			return -1;
		}
		password = pw;
	} else if (b->cl.password) {
		log_warnx("the password given on the command line shows in "
		    "the process list; use --password-file or $SIPC_PASSWORD");
		password = b->cl.password;
	} else if (getenv("SIPC_PASSWORD") && *getenv("SIPC_PASSWORD"))
		password = getenv("SIPC_PASSWORD");
	if (password && (b->cfg.tls_cert || b->cfg.tls_key)) {
		log_errorx("use either a certificate (tls_cert, tls_key) or a "
		    "password, not both");
		return -1;
	}
	if (password) {
		if (tls_conf_password(&tc, password, b->cfg.salt, err,
		    sizeof(err)) == -1) {
			log_errorx("%s", err);
			return -1;
		}
		explicit_bzero(pw, sizeof(pw));
		b->psk = 1;
	} else if (b->cfg.tls_cert || b->cfg.tls_key) {
		tc.cert = b->cfg.tls_cert;
		tc.key = b->cfg.tls_key;
		tc.ca = b->cfg.tls_ca;
		tc.verify_peer = b->cfg.tls_verify_client;
		tc.tls12 = b->cfg.tls12;
	} else {
		if (b->cfg.tls_ca || b->cfg.tls_verify_client || b->cfg.salt)
			log_warnx("tls_ca, tls_verify_client and salt do "
			    "nothing without tls_cert or a password");
		return 0;
	}
	if ((b->tls = tls_ctx_new(1, &tc, err, sizeof(err))) == NULL) {
		log_errorx("%s", err);
		return -1;
	}
	explicit_bzero(&tc, sizeof(tc));
	log_info("%s", b->psk ? "password mode: TLS 1.3 with a pre-shared key "
	    "from PBKDF2" : b->cfg.tls_verify_client ? "TLS with client "
	    "certificates" : "TLS");
	return 0;
}

/* Drops root for user name, once listening sockets and keys are ours. */
static int
drop_privileges(const char *name)
{
	struct passwd *pw;

	if ((pw = getpwnam(name)) == NULL) {
		log_errorx("--user: no user '%s'", name);
		return -1;
	}
	if (geteuid() != 0) {
		if (pw->pw_uid == geteuid())
			return 0;
		log_errorx("--user %s: only root can change user", name);
		return -1;
	}
	if (setgroups(1, &pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1) {
		log_warn("--user %s", name);
		return -1;
	}
	if (setuid(0) != -1) {
		log_errorx("--user %s: still able to regain root", name);
		return -1;
	}
	log_info("running as user %s (uid %u)", name, (unsigned)pw->pw_uid);
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
	notify_systemd("STOPPING=1");
	b->shutting_down = 1;
	listen_close(b);
	cluster_shutdown(b);
	session_close_all(b, WIRE_ERR_SHUTDOWN, "broker shutting down");
	if (b->nsessions == 0 && b->shutdown_hold == 0)
		event_base_loopbreak(b->base);
	else
		event_base_loopexit(b->base, &tv);	/* time to flush */
}

static int
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/*
 * SIGHUP: re-read the config file.  Limits, timeouts, the listen backlog,
 * the log level and compression take effect at once (for what comes next: nothing open is
 * cut); listeners, paths, keys and the user only on restart.  A file with
 * errors keeps the running settings.
 */
static void
on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct broker *b = arg;
	struct config nc, *c = &b->cfg;
	int i, same;

	(void)sig;
	(void)what;
	notify_systemd("RELOADING=1");
	if (config_load(&b->cl, &nc) == -1) {
		log_warnx("SIGHUP: config has errors; keeping the running "
		    "settings");
		notify_systemd("READY=1");
		return;
	}
	/* The running paths were made absolute at start; so are these, or
	 * an unchanged relative path would count as a change.  Where that
	 * fails, the paths differ and the warning below says so. */
	(void)absolutize(&nc.pidfile, b->cwd);
	(void)absolutize(&nc.port_file, b->cwd);
	same = nc.nlisten == c->nlisten && nc.port == c->port;
	for (i = 0; same && i < nc.nlisten; i++)
		same = strcmp(nc.listen[i], c->listen[i]) == 0;
	if (!same || nc.max_frame != c->max_frame ||
	    !same_str(nc.port_file, c->port_file) ||
	    !same_str(nc.pidfile, c->pidfile) ||
	    !same_str(nc.tls_cert, c->tls_cert) ||
	    !same_str(nc.tls_key, c->tls_key) ||
	    !same_str(nc.tls_ca, c->tls_ca) ||
	    !same_str(nc.password_file, c->password_file) ||
	    !same_str(nc.salt, c->salt) || !same_str(nc.user, c->user) ||
	    !same_str(nc.metrics, c->metrics) ||
	    nc.tls_verify_client != c->tls_verify_client ||
	    nc.tls12 != c->tls12 || nc.insecure != c->insecure ||
	    !same_str(nc.etcd, c->etcd) ||
	    !same_str(nc.etcd_prefix, c->etcd_prefix) ||
	    !same_str(nc.etcd_ca, c->etcd_ca) ||
	    !same_str(nc.etcd_cert, c->etcd_cert) ||
	    !same_str(nc.etcd_key, c->etcd_key) ||
	    nc.etcd_ttl_s != c->etcd_ttl_s ||
	    nc.etcd_timeout_ms != c->etcd_timeout_ms)
		log_warnx("SIGHUP: listen addresses, max_frame, files, TLS, "
		    "password, user, insecure, metrics and etcd settings "
		    "change only on restart");
	c->log_level = nc.log_level;
	c->heartbeat_ms = nc.heartbeat_ms;
	c->handshake_ms = nc.handshake_ms;
	c->idle_ms = nc.idle_ms;
	c->max_sessions = nc.max_sessions;
	c->max_sessions_per_peer = nc.max_sessions_per_peer;
	c->max_registrations = nc.max_registrations;
	c->max_watches = nc.max_watches;
	c->compression = nc.compression;
	if (nc.listen_backlog != c->listen_backlog) {
		c->listen_backlog = nc.listen_backlog;
		listen_set_backlog(b);
	}
	if (nc.summary_ms != c->summary_ms) {
		c->summary_ms = nc.summary_ms;
		summary_start(b);
	}
	config_free(&nc);
	log_set_level(c->log_level);
	log_info("SIGHUP: settings reloaded, log level %s",
	    log_level_name(c->log_level));
	notify_systemd("READY=1");
}

/*
 * Accepts clients, writes the pid and port files, drops privileges and
 * says "ready": at once on a standalone broker, once the mirror is in
 * sync in cluster mode.  Returns 0 or -1 (logged).
 */
static int
serve(struct broker *b)
{
	if (listen_start(b) == -1) {
		log_errorx("cannot start listening");
		return -1;
	}
	if ((b->cfg.metrics && metrics_start(b, b->cfg.metrics) == -1) ||
	    summary_start(b) == -1)
		return -1;
	if (b->cfg.pidfile && write_pidfile(b->cfg.pidfile) == -1)
		return -1;
	if (b->cfg.port_file &&
	    listen_write_port_file(b, b->cfg.port_file) == -1)
		return -1;
	if (b->cfg.user && drop_privileges(b->cfg.user) == -1)
		return -1;
	log_info("%s ready: heartbeat %u ms, frame limit %u bytes%s",
	    EPMD_SOFTWARE, b->cfg.heartbeat_ms, b->cfg.max_frame,
	    b->cluster ? ", cluster mode" : "");
	if (b->ready_fd != -1) {
		if (write(b->ready_fd, "y", 1) != 1)
			log_warn("cannot tell the parent we are ready");
		close(b->ready_fd);
		b->ready_fd = -1;
	}
	notify_systemd("READY=1");
	return 0;
}

static int serve_failed;

/* cluster_start's ready callback. */
static void
serve_cluster(struct broker *b)
{
	if (serve(b) == -1) {
		serve_failed = 1;
		event_base_loopbreak(b->base);
	}
}

int
main(int argc, char **argv)
{
	struct broker b;
	uint8_t seed[16], gen[3];
	uint64_t first_id;
	char *abs_config = NULL;
	int i;

	memset(&b, 0, sizeof(b));
	TAILQ_INIT(&b.sessions);
	b.reserve_fd = -1;
	b.ready_fd = -1;
	for (i = 0; i < EPMD_MAX_LISTEN; i++)
		b.listeners[i].fd = -1;

	if (config_cmdline(argc, argv, &b.cl) == -1) {
		fprintf(stderr, "usage: sipc-epmd [options] [PORT [PASSWORD "
		    "[SALT]]] (see --help)\n");
		return 2;
	}
	if (config_load(&b.cl, &b.cfg) == -1)
		return 1;
	if (b.cl.check_config) {
		config_print(&b.cfg, stdout);
		if (b.cl.password)
			printf("# password: given on the command line (not "
			    "shown, but visible in the process list)\n");
		config_free(&b.cfg);
		return 0;
	}
	if (getcwd(b.cwd, sizeof(b.cwd)) == NULL)
		b.cwd[0] = '\0';	/* only relative paths need it */
	if (absolutize(&b.cfg.pidfile, b.cwd) == -1 ||
	    absolutize(&b.cfg.port_file, b.cwd) == -1)
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

	if (setup_security(&b) == -1) {
		config_free(&b.cfg);
		return 1;
	}
	if (listen_bind(&b) == -1 || listen_check_protected(&b) == -1 ||
	    monitor_check_protected(&b) == -1) {
		listen_close(&b);
		config_free(&b.cfg);
		return 1;
	}
	if (b.cfg.daemon) {
		b.ready_fd = daemonize();
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
	if ((b.reg = reg_new(dispatch_notify, &b, first_id, seed)) == NULL ||
	    session_init(&b) == -1)
		fatalx("out of memory");
	wbuf_init(&b.out, SIPC_HEADER_SIZE + (size_t)b.cfg.max_frame);
	wbuf_init(&b.evout, SIPC_HEADER_SIZE + 2 + SIPC_HANDLE_MAX +
	    SIPC_RECORD_MAX + 16);
	b.started_mono_ms = (uint64_t)mono_ms();
	b.sig_term = evsignal_new(b.base, SIGTERM, on_stop, &b);
	b.sig_int = evsignal_new(b.base, SIGINT, on_stop, &b);
	b.sig_hup = evsignal_new(b.base, SIGHUP, on_reload, &b);
	if (!b.sig_term || !b.sig_int || !b.sig_hup ||
	    evsignal_add(b.sig_term, NULL) || evsignal_add(b.sig_int, NULL) ||
	    evsignal_add(b.sig_hup, NULL))
		fatalx("cannot install signal handlers");
	if (b.cfg.etcd) {
		if (cluster_start(&b, serve_cluster) == -1)
			return 1;
	} else if (serve(&b) == -1)
		return 1;

	event_base_dispatch(b.base);

	listen_close(&b);
	cluster_free(&b);
	metrics_stop(&b);
	session_free_all(&b);
	reg_free(b.reg);
	wbuf_free(&b.out);
	wbuf_free(&b.evout);
	if (b.tls)
		SSL_CTX_free(b.tls);
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
	return serve_failed;
}
