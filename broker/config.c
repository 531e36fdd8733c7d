/*
 * config.c - sipc-epmd's settings: defaults, the config file, the command
 * line, in that order of precedence (last wins).
 *
 * One table describes every setting; the config-file key and the long option
 * are the same name ("heartbeat_ms" and "--heartbeat-ms"), so every option
 * has a key and they cannot drift apart.  Errors name the file and line or
 * the option, the value, and what was expected.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/tls.h"
#include "../proto/addr.h"
#include "epmd.h"

enum opt_type {
	T_STR,
	T_BOOL,
	T_U32,
	T_LIST,
	T_LEVEL,
	T_PORT
};

struct opt {
	const char	*key;
	enum opt_type	 type;
	size_t		 off;
	uint32_t	 min;
	uint32_t	 max;
	const char	*metavar;
	const char	*help;
};

#define OFF(f)	offsetof(struct config, f)

static const struct opt opts[] = {
	{ "listen", T_LIST, OFF(listen), 0, 0, "ADDR:PORT",
	    "listen on ADDR:PORT (repeat for more; port 0 is ephemeral)" },
	{ "port", T_PORT, OFF(port), 1, 65535, "PORT",
	    "port of the default listeners 127.0.0.1 and [::1]" },
	{ "listen_backlog", T_U32, OFF(listen_backlog), 1,
	    SIPC_MAX_LISTEN_BACKLOG, "N",
	    "connections the kernel queues before they are accepted" },
	{ "port_file", T_STR, OFF(port_file), 0, 0, "FILE",
	    "write the bound port here once accepting" },
	{ "daemon", T_BOOL, OFF(daemon), 0, 1, NULL,
	    "detach and log to syslog (needs --pidfile)" },
	{ "pidfile", T_STR, OFF(pidfile), 0, 0, "FILE",
	    "write the process id here" },
	{ "log_level", T_LEVEL, OFF(log_level), 0, 0, "LEVEL",
	    "debug, info, warn or error" },
	{ "heartbeat_ms", T_U32, OFF(heartbeat_ms), SIPC_MIN_HEARTBEAT_MS,
	    SIPC_MAX_HEARTBEAT_MS, "MS",
	    "heartbeat interval; 3 missed intervals end a session" },
	{ "handshake_timeout_ms", T_U32, OFF(handshake_ms),
	    SIPC_MIN_HANDSHAKE_MS, SIPC_MAX_HANDSHAKE_MS, "MS",
	    "close connections that send no HELLO within this time" },
	{ "idle_timeout_ms", T_U32, OFF(idle_ms), 0, SIPC_MAX_IDLE_MS, "MS",
	    "close sessions without registrations or watches idle this long "
	    "(0: never)" },
	{ "max_sessions", T_U32, OFF(max_sessions), 1, SIPC_MAX_SESSIONS, "N",
	    "concurrent sessions" },
	{ "max_sessions_per_peer", T_U32, OFF(max_sessions_per_peer), 1,
	    SIPC_MAX_SESSIONS, "N", "concurrent sessions from one address" },
	{ "max_registrations", T_U32, OFF(max_registrations), 1,
	    SIPC_MAX_REGS_PER_SESSION, "N", "registrations per session" },
	{ "max_watches", T_U32, OFF(max_watches), 1,
	    SIPC_MAX_WATCHES_PER_SESSION, "N", "watches per session" },
	{ "max_frame", T_U32, OFF(max_frame), SIPC_MIN_BROKER_FRAME,
	    SIPC_MAX_BROKER_FRAME, "BYTES", "largest frame payload accepted" },
	{ "compression", T_BOOL, OFF(compression), 0, 1, "yes|no",
	    "zlib for large frames when a client offers it" },
	{ "tls_cert", T_STR, OFF(tls_cert), 0, 0, "FILE",
	    "TLS certificate chain (PEM); with tls_key enables TLS" },
	{ "tls_key", T_STR, OFF(tls_key), 0, 0, "FILE",
	    "TLS private key (PEM)" },
	{ "tls_ca", T_STR, OFF(tls_ca), 0, 0, "FILE",
	    "CA certificates (PEM) for verifying clients" },
	{ "tls_verify_client", T_BOOL, OFF(tls_verify_client), 0, 1, NULL,
	    "require client certificates signed by tls_ca" },
	{ "tls12", T_BOOL, OFF(tls12), 0, 1, NULL,
	    "also accept TLS 1.2 (default: TLS 1.3 only)" },
	{ "password_file", T_STR, OFF(password_file), 0, 0, "FILE",
	    "password mode: first line of FILE ($SIPC_PASSWORD also read)" },
	{ "salt", T_STR, OFF(salt), 0, 0, "SALT",
	    "password mode salt: hex 010203 or {0x01,0x02,0x03}" },
	{ "insecure", T_BOOL, OFF(insecure), 0, 1, NULL,
	    "allow non-loopback addresses without TLS or a password" },
	{ "user", T_STR, OFF(user), 0, 0, "NAME",
	    "drop root privileges to NAME after binding and loading keys" },
	{ "metrics", T_STR, OFF(metrics), 0, 0, "ADDR:PORT",
	    "serve /metrics, a status page at / and JSON at /v1 on ADDR:PORT" },
	{ "summary_ms", T_U32, OFF(summary_ms), 0, SIPC_MAX_IDLE_MS, "MS",
	    "log a summary line this often (0: never)" },
	{ "etcd", T_STR, OFF(etcd), 0, 0, "URL[,URL...]",
	    "cluster mode: keep registrations in this etcd cluster" },
	{ "etcd_prefix", T_STR, OFF(etcd_prefix), 0, 0, "PREFIX",
	    "etcd key prefix of the cluster (default /sipc/v1/)" },
	{ "etcd_ttl_s", T_U32, OFF(etcd_ttl_s), 1, 3600, "S",
	    "lease TTL: a dead broker's registrations go after this long" },
	{ "etcd_timeout_ms", T_U32, OFF(etcd_timeout_ms), 100, 60000, "MS",
	    "an etcd request unanswered this long counts as a failure" },
	{ "etcd_ca", T_STR, OFF(etcd_ca), 0, 0, "FILE",
	    "CA certificates (PEM) for https:// etcd endpoints" },
	{ "etcd_cert", T_STR, OFF(etcd_cert), 0, 0, "FILE",
	    "client certificate (PEM) for etcd" },
	{ "etcd_key", T_STR, OFF(etcd_key), 0, 0, "FILE",
	    "its private key (PEM)" },
};
#define NOPTS	(sizeof(opts) / sizeof(opts[0]))

void
config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->port = EPMD_DEFAULT_PORT;
	c->listen_backlog = SIPC_DEF_LISTEN_BACKLOG;
	c->log_level = LOG_LEVEL_INFO;
	c->heartbeat_ms = SIPC_DEF_HEARTBEAT_MS;
	c->handshake_ms = SIPC_DEF_HANDSHAKE_MS;
	c->idle_ms = SIPC_DEF_IDLE_MS;
	c->max_sessions = SIPC_DEF_SESSIONS;
	c->max_sessions_per_peer = SIPC_DEF_SESSIONS_PER_PEER;
	c->max_registrations = SIPC_DEF_REGS_PER_SESSION;
	c->max_watches = SIPC_DEF_WATCHES_PER_SESSION;
	c->max_frame = SIPC_DEF_BROKER_FRAME;
	c->compression = 1;
	c->summary_ms = 60000;
	c->etcd_ttl_s = 10;
	c->etcd_timeout_ms = 2000;
}

/* Frees what opt_apply allocated: the strings of the table, the list. */
void
config_free(struct config *c)
{
	size_t i;
	int j;

	for (i = 0; i < NOPTS; i++)
		if (opts[i].type == T_STR)
			free(*(char **)((char *)c + opts[i].off));
	for (j = 0; j < c->nlisten; j++)
		free(c->listen[j]);
	memset(c, 0, sizeof(*c));
}

static const struct opt *
opt_find(const char *key)
{
	size_t i;

	for (i = 0; i < NOPTS; i++)
		if (strcmp(opts[i].key, key) == 0)
			return &opts[i];
	return NULL;
}

static int
parse_bool(const char *v, int *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") ||
	    !strcmp(v, "1"))
		*out = 1;
	else if (!strcmp(v, "no") || !strcmp(v, "false") ||
	    !strcmp(v, "off") || !strcmp(v, "0"))
		*out = 0;
	else
		return -1;
	return 0;
}

/*
 * Applies key = val to c.  where names the source for errors ("--listen",
 * "epmd.conf:12").  Returns 0 or -1 after printing the error.
 */
static int
opt_apply(struct config *c, const struct opt *o, const char *val,
    const char *where)
{
	char *p = (char *)c + o->off, *end, host[256], *dup;
	const char *why;
	unsigned long v;
	uint16_t port;

	switch (o->type) {
	case T_STR:
		if (*val == '\0') {
			log_errorx("%s: %s needs a value", where, o->key);
			return -1;
		}
		if ((dup = strdup(val)) == NULL)
			return -1;
		free(*(char **)p);
		*(char **)p = dup;
		return 0;
	case T_BOOL:
		if (parse_bool(val, (int *)p) == -1) {
			log_errorx("%s: %s: '%s' is not yes or no",
			    where, o->key, val);
			return -1;
		}
		return 0;
	case T_LEVEL:
		if (log_level_parse(val, (enum log_level *)p) == -1) {
			log_errorx("%s: %s: '%s' is not debug, info, "
			    "warn or error", where, o->key, val);
			return -1;
		}
		return 0;
	case T_U32:
	case T_PORT:
		errno = 0;
		v = strtoul(val, &end, 10);
		if (!isdigit((unsigned char)*val) || *end != '\0' ||
		    errno == ERANGE || v < o->min || v > o->max) {
			log_errorx("%s: %s: '%s' is not a number from "
			    "%u to %u", where, o->key, val, o->min, o->max);
			return -1;
		}
		if (o->type == T_PORT)
			*(uint16_t *)p = (uint16_t)v;
		else
			*(uint32_t *)p = (uint32_t)v;
		return 0;
	case T_LIST:
		if (addr_parse(val, host, sizeof(host), &port,
		    ADDR_ALLOW_PORT0, &why) == -1) {
			log_errorx("%s: %s: '%s': %s", where, o->key,
			    val, why);
			return -1;
		}
		if (c->nlisten >= EPMD_MAX_LISTEN) {
			log_errorx("%s: %s: at most %d addresses",
			    where, o->key, EPMD_MAX_LISTEN);
			return -1;
		}
		if ((c->listen[c->nlisten] = strdup(val)) == NULL)
			return -1;
		c->nlisten++;
		return 0;
	}
	return -1;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int
config_file_load(const char *path, struct config *c)
{
	char line[1024], where[512], *k, *v, *eq, *hash;
	const struct opt *o;
	unsigned lineno = 0;
	int rc = 0;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		log_errorx("%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			log_errorx("%s: line too long", where);
			rc = -1;
			break;
		}
		if ((hash = strchr(line, '#')) != NULL)
			*hash = '\0';
		k = trim(line);
		if (*k == '\0')
			continue;
		if ((eq = strchr(k, '=')) == NULL) {
			log_errorx("%s: expected 'key = value'", where);
			rc = -1;
			continue;
		}
		*eq = '\0';
		k = trim(k);
		v = trim(eq + 1);
		if ((o = opt_find(k)) == NULL) {
			log_errorx("%s: unknown key '%s'", where, k);
			rc = -1;
			continue;
		}
		if (opt_apply(c, o, v, where) == -1)
			rc = -1;
	}
	if (ferror(fp)) {
		log_errorx("%s: %s", path, strerror(errno));
		rc = -1;
	}
	fclose(fp);
	return rc;
}

void
config_usage(FILE *fp)
{
	char opt[64];
	size_t i, j;

	fprintf(fp,
	    "usage: sipc-epmd [options] [PORT [PASSWORD [SALT]]]\n"
	    "\n"
	    "The sipc end point manager: keeps handle -> endpoint registrations\n"
	    "for sipc senders and receivers.\n"
	    "\n"
	    "  -c, --config FILE               read settings from FILE "
	    "(key = value)\n"
	    "      --check-config              print the effective settings, "
	    "exit\n"
	    "  -h, --help                      this text\n"
	    "  -V, --version                   print the version\n");
	for (i = 0; i < NOPTS; i++) {
		snprintf(opt, sizeof(opt), "--%s%s%s", opts[i].key,
		    opts[i].metavar ? " " : "",
		    opts[i].metavar ? opts[i].metavar : "");
		for (j = 2; opt[j] && opt[j] != ' '; j++)
			if (opt[j] == '_')
				opt[j] = '-';
		/* Long options get their text on a line of its own. */
		if (strlen(opt) >= 28)
			fprintf(fp, "      %s\n      %-28s%s\n", opt, "",
			    opts[i].help);
		else
			fprintf(fp, "      %-28s%s\n", opt, opts[i].help);
	}
	fprintf(fp, "\nEvery option is also a config-file key: "
	    "--heartbeat-ms 500 is heartbeat_ms = 500.\n");
}

static int
cmdline_set(struct cmdline *cl, const char *key, const char *val)
{
	if (cl->nset >= (int)(sizeof(cl->set_key) / sizeof(cl->set_key[0]))) {
		log_errorx("too many options");
		return -1;
	}
	cl->set_key[cl->nset] = key;
	cl->set_val[cl->nset] = val;
	cl->nset++;
	return 0;
}

int
config_cmdline(int argc, char **argv, struct cmdline *cl)
{
	char key[64], *eq;
	const struct opt *o;
	const char *val, *arg;
	size_t i;
	int a, npos = 0;

	memset(cl, 0, sizeof(*cl));
	for (a = 1; a < argc; a++) {
		arg = argv[a];
		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			config_usage(stdout);
			exit(0);
		}
		if (!strcmp(arg, "-V") || !strcmp(arg, "--version")) {
			printf("%s\n", EPMD_SOFTWARE);
			exit(0);
		}
		if (!strcmp(arg, "--check-config")) {
			cl->check_config = 1;
			continue;
		}
		if (!strcmp(arg, "-c") || !strcmp(arg, "--config")) {
			if (++a >= argc)
				goto missing;
			cl->config_file = argv[a];
			continue;
		}
		if (strncmp(arg, "--", 2) != 0) {
			/* The original's start parameters: PORT [PASSWORD
			 * [SALT]]. */
			switch (npos++) {
			case 0:
				if (cmdline_set(cl, "port", arg) == -1)
					return -1;
				break;
			case 1:
				cl->password = arg;
				break;
			case 2:
				if (cmdline_set(cl, "salt", arg) == -1)
					return -1;
				break;
			default:
				log_errorx("unexpected argument '%s'", arg);
				return -1;
			}
			continue;
		}
		snprintf(key, sizeof(key), "%s", arg + 2);
		val = NULL;
		if ((eq = strchr(key, '=')) != NULL) {
			*eq = '\0';
			val = strchr(arg, '=') + 1;
		}
		for (i = 0; key[i]; i++)
			if (key[i] == '-')
				key[i] = '_';
		if ((o = opt_find(key)) == NULL) {
			log_errorx("unknown option '%s' "
			    "(see --help)", arg);
			return -1;
		}
		if (val == NULL) {
			if (o->type == T_BOOL)
				val = "yes";
			else if (++a >= argc)
				goto missing;
			else
				val = argv[a];
		}
		if (cmdline_set(cl, o->key, val) == -1)
			return -1;
	}
	return 0;
missing:
	log_errorx("option '%s' needs a value", arg);
	return -1;
}

int
config_load(const struct cmdline *cl, struct config *c)
{
	char where[80];
	const struct opt *o;
	int i, rc = 0, cli_listen = 0;

	config_defaults(c);
	if (cl->config_file && config_file_load(cl->config_file, c) == -1)
		rc = -1;
	for (i = 0; i < cl->nset; i++) {
		o = opt_find(cl->set_key[i]);
		if (o->type == T_LIST && !cli_listen) {
			/* The command line's addresses replace the file's. */
			while (c->nlisten > 0)
				free(c->listen[--c->nlisten]);
			cli_listen = 1;
		}
		snprintf(where, sizeof(where), "--%s", o->key);
		if (opt_apply(c, o, cl->set_val[i], where) == -1)
			rc = -1;
	}
	if (rc == 0 && c->metrics) {
		char host[256];
		const char *why;
		uint16_t port;

		if (addr_parse(c->metrics, host, sizeof(host), &port, 0,
		    &why) == -1) {
			log_errorx("metrics: '%s': %s", c->metrics, why);
			rc = -1;
		}
	}
	if (rc == 0 && c->salt) {
		uint8_t salt[TLS_SALT_MAX];
		size_t n;

		if (tls_salt_parse(c->salt, salt, sizeof(salt), &n) == -1) {
			log_errorx("salt: '%s': write it as hex (010203) or as "
			    "{0x01,0x02,0x03}, 1 to %d bytes", c->salt,
			    TLS_SALT_MAX);
			rc = -1;
		}
	}
	if (rc == 0 && c->daemon && c->pidfile == NULL) {
		log_errorx("--daemon needs --pidfile");
		rc = -1;
	}
	if (rc == -1)
		config_free(c);
	return rc;
}

void
config_print(const struct config *c, FILE *fp)
{
	const char *p;
	size_t i;
	int j;

	for (i = 0; i < NOPTS; i++) {
		p = (const char *)c + opts[i].off;
		switch (opts[i].type) {
		case T_STR:
			if (*(char *const *)p)
				fprintf(fp, "%s = %s\n", opts[i].key,
				    *(char *const *)p);
			else
				fprintf(fp, "# %s: not set\n", opts[i].key);
			break;
		case T_BOOL:
			fprintf(fp, "%s = %s\n", opts[i].key,
			    *(const int *)p ? "yes" : "no");
			break;
		case T_LEVEL:
			fprintf(fp, "%s = %s\n", opts[i].key,
			    log_level_name(*(const enum log_level *)p));
			break;
		case T_U32:
			fprintf(fp, "%s = %u\n", opts[i].key,
			    *(const uint32_t *)p);
			break;
		case T_PORT:
			fprintf(fp, "%s = %u\n", opts[i].key,
			    *(const uint16_t *)p);
			break;
		case T_LIST:
			for (j = 0; j < c->nlisten; j++)
				fprintf(fp, "%s = %s\n", opts[i].key,
				    c->listen[j]);
			if (c->nlisten == 0)
				fprintf(fp, "# %s: not set: 127.0.0.1:%u, and "
				    "[::1]:%u where the host has IPv6\n",
				    opts[i].key, c->port, c->port);
			break;
		}
	}
}
