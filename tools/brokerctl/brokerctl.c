/*
 * brokerctl.c - query a running sipc-epmd: ping, list, show, watch, stats.
 *
 * Tables for people by default, one JSON document with --json (for watch,
 * one JSON object per line and event).  Exit status: 0 ok, 1 the broker
 * failed or could not be reached (one line on stderr says which address and
 * why), 2 bad usage.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../common/jsonout.h"
#include "../../proto/addr.h"
#include "ctlconn.h"
#include "ctlcluster.h"

#define DEFAULT_BROKER	"127.0.0.1:4455"
#define DEFAULT_TIMEOUT	5000

static int	json;

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: brokerctl [--broker HOST:PORT] [--timeout MS] [--json]\n"
	    "                 [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]\n"
	    "                 [--password-file FILE [--salt SALT]] COMMAND\n"
	    "\n"
	    "commands:\n"
	    "  ping            check that the broker answers; print its "
	    "version and round trip\n"
	    "  list            handles with receivers, and how many\n"
	    "  show HANDLE     the receivers registered under HANDLE\n"
	    "  watch HANDLE    print receivers joining and leaving HANDLE "
	    "until interrupted\n"
	    "  stats           the broker's counters\n"
	    "  cluster         the brokers of its cluster (sipc-epmd --etcd)\n"
	    "\n"
	    "The broker is --broker, else $SIPC_BROKER, else %s.\n"
	    "--timeout bounds connecting and each answer (default %d ms).\n"
	    "TLS: --tls-ca verifies the broker's certificate against HOST;\n"
	    "--tls-cert/--tls-key present a client certificate.  Password\n"
	    "mode: --password-file (or $SIPC_PASSWORD) and --salt, as the\n"
	    "broker's.\n",
	    DEFAULT_BROKER, DEFAULT_TIMEOUT);
}

/* ---- Output helpers ------------------------------------------------------ */

/* Prints one JSON document (jsonout.c shapes it, json-c writes it) and
 * frees it: 0, or 1 after a message when memory or stdout failed. */
static int
emit(struct json_object *o)
{
	int rc = jo_write(stdout, o, JO_COMPACT);

	json_object_put(o);
	if (rc == -1) {
		fprintf(stderr, "brokerctl: cannot write the JSON output\n");
		return 1;
	}
	return 0;
}

static void
format_time(uint64_t ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char tmp[32];

	gmtime_r(&t, &tm);
	strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%03uZ", tmp, (unsigned)(ms % 1000));
}

/* One registration: a table row, or a JSON line. */
static int
print_record(const char *event, const struct wire_record *r)
{
	char host[128], when[40];
	unsigned port = r->ep.family == WIRE_AF_UNIX ? 0 : r->ep.port;

	if (json)
		return emit(jo_record(r, event));
	addr_format_host(&r->ep, host, sizeof(host));
	format_time(r->registered_ms, when, sizeof(when));
	if (event)
		printf("%-8s", event);
	printf("%-18llu %-39s %5u %-20.*s %7u %s\n", (unsigned long long)r->id,
	    host, port, (int)r->host.len, r->host.ptr, r->pid, when);
	return 0;
}

static void
print_table_head(int with_event)
{
	if (with_event)
		printf("%-8s", "EVENT");
	printf("%-18s %-39s %5s %-20s %7s %s\n", "ID", "ADDRESS", "PORT",
	    "HOST", "PID", "REGISTERED");
}

/* ---- Commands ------------------------------------------------------------ */

static int
fail(struct ctlconn *c)
{
	fprintf(stderr, "brokerctl: %s\n", c->err);
	return 1;
}

static int
cmd_ping(struct ctlconn *c)
{
	struct timespec t0, t1;
	struct wire_header h;
	struct wire_error e;
	const uint8_t *p;
	uint64_t token;
	uint32_t reqid = ctl_reqid(c);
	double ms;

	wbuf_reset(&c->out);
	wire_enc_u64(&c->out, WIRE_PING, reqid, 42);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (ctl_request(c, reqid, &h, &p, &e) != 0)
		return fail(c);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (h.type != WIRE_PONG || wire_dec_u64(p, h.len, &token) != 0 ||
	    token != 42) {
		fprintf(stderr, "brokerctl: %s: bad answer to PING\n",
		    c->addr);
		return 1;
	}
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	if (json) {
		struct json_object *o = json_object_new_object();
		int err = 0;

		err |= jo_add(o, "broker", jo_cstr(c->addr));
		err |= jo_add(o, "software", jo_cstr(c->software));
		err |= jo_add(o, "protocol", jo_u64(c->hello.version));
		err |= jo_add(o, "session", jo_u64(c->hello.session_id));
		err |= jo_add(o, "rtt_ms", jo_num(ms, "%.3f"));
		return emit(err ? NULL : o);
	} else
		printf("%s: %s, protocol %u, round trip %.3f ms\n", c->addr,
		    c->software, c->hello.version, ms);
	return 0;
}

static int
cmd_list(struct ctlconn *c)
{
	char after[SIPC_HANDLE_MAX + 1] = "";
	struct wire_list_entry ent;
	struct wire_list_ok ok;
	struct wire_header h;
	struct wire_error e;
	struct wire_list m;
	const uint8_t *p;
	struct json_object *all = NULL;
	uint32_t reqid;
	int err = 0, more = 1;

	if (json)
		all = json_object_new_array();
	else
		printf("%-40s %s\n", "HANDLE", "RECEIVERS");
	while (more) {
		m.after.ptr = after;
		m.after.len = (uint16_t)strlen(after);
		m.limit = 0;
		reqid = ctl_reqid(c);
		wbuf_reset(&c->out);
		wire_enc_list(&c->out, reqid, &m);
		if (ctl_request(c, reqid, &h, &p, &e) != 0) {
			json_object_put(all);
			return fail(c);
		}
		if (wire_dec_ok_list(p, h.len, &ok) != 0) {
			fprintf(stderr, "brokerctl: %s: malformed LIST answer\n",
			    c->addr);
			json_object_put(all);
			return 1;
		}
		more = ok.more && ok.entries.count > 0;
		while (wire_next_list_entry(&ok.entries, &ent)) {
			if (json)
				err |= jo_push(all, jo_handle(ent.handle.ptr,
				    ent.handle.len, ent.receivers));
			else
				printf("%-40.*s %u\n", (int)ent.handle.len,
				    ent.handle.ptr, ent.receivers);
			memcpy(after, ent.handle.ptr, ent.handle.len);
			after[ent.handle.len] = '\0';
		}
	}
	if (json)
		return emit(err ? (json_object_put(all), NULL) : all);
	return 0;
}

static int
handle_request(struct ctlconn *c, uint8_t type, const char *handle,
    struct wire_seq *recs)
{
	struct wire_header h;
	struct wire_error e;
	const uint8_t *p;
	uint32_t reqid = ctl_reqid(c);

	wbuf_reset(&c->out);
	if (wire_enc_handle(&c->out, type, reqid, handle,
	    strlen(handle)) != 0) {
		fprintf(stderr, "brokerctl: invalid handle '%s': 1 to %d "
		    "bytes of UTF-8 without control characters\n", handle,
		    SIPC_HANDLE_MAX);
		return 2;
	}
	if (ctl_request(c, reqid, &h, &p, &e) != 0)
		return fail(c);
	if (wire_dec_ok_records(p, h.len, type, recs) != 0) {
		fprintf(stderr, "brokerctl: %s: malformed %s answer\n",
		    c->addr, wire_type_name(type));
		return 1;
	}
	return 0;
}

static int
cmd_show(struct ctlconn *c, const char *handle)
{
	struct json_object *all;
	struct wire_record r;
	struct wire_seq recs;
	int rc, err = 0;

	if ((rc = handle_request(c, WIRE_LOOKUP, handle, &recs)) != 0)
		return rc;
	if (!json) {
		print_table_head(0);
		while (wire_next_record(&recs, &r))
			print_record(NULL, &r);
		return 0;
	}
	all = json_object_new_array();
	while (wire_next_record(&recs, &r))
		err |= jo_push(all, jo_record(&r, NULL));
	return emit(err ? (json_object_put(all), NULL) : all);
}

static void
on_signal(int sig)
{
	(void)sig;
	_exit(0);	/* output is flushed after every event */
}

static int
cmd_watch(struct ctlconn *c, const char *handle)
{
	static const char *const reasons[] = { "?", "unregistered",
	    "closed", "expired" };
	struct wire_record r;
	struct wire_header h;
	struct wire_join j;
	struct wire_leave l;
	struct wire_seq recs;
	const uint8_t *p;
	int rc;

	if ((rc = handle_request(c, WIRE_WATCH, handle, &recs)) != 0)
		return rc;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (!json)
		print_table_head(1);
	while (wire_next_record(&recs, &r))
		if (print_record("present", &r) != 0)
			return 1;
	fflush(stdout);
	for (;;) {
		if (ctl_next_event(c, -1, &h, &p) != 0)
			return fail(c);
		if (h.type == WIRE_JOIN && wire_dec_join(p, h.len, &j) == 0) {
			if (print_record("join", &j.rec) != 0)
				return 1;
		} else if (h.type == WIRE_LEAVE &&
		    wire_dec_leave(p, h.len, &l) == 0) {
			if (json) {
				struct json_object *o = json_object_new_object();
				int err = 0;

				err |= jo_add(o, "event", jo_cstr("leave"));
				err |= jo_add(o, "id", jo_u64(l.id));
				err |= jo_add(o, "reason",
				    jo_cstr(reasons[l.reason]));
				if (emit(err ? (json_object_put(o), NULL) : o))
					return 1;
			} else
				printf("%-8s%-18llu (%s)\n", "leave",
				    (unsigned long long)l.id,
				    reasons[l.reason]);
		} else if (h.type == WIRE_ERROR) {
			struct wire_error e;

			if (wire_dec_error(p, h.len, &e) == 0)
				fprintf(stderr, "brokerctl: %s: %s: %.*s\n",
				    c->addr, wire_errcode_name(e.code),
				    (int)e.text.len, e.text.ptr);
			return 1;
		}
		fflush(stdout);
	}
}

static int
cmd_stats(struct ctlconn *c)
{
	struct wire_header h;
	struct wire_error e;
	struct wire_stat st;
	struct wire_seq seq;
	const uint8_t *p;
	struct jo_stat js[SIPC_STATS_MAX];
	uint32_t reqid = ctl_reqid(c);
	size_t n = 0;

	wbuf_reset(&c->out);
	wire_enc_empty(&c->out, WIRE_STATS, reqid);
	if (ctl_request(c, reqid, &h, &p, &e) != 0)
		return fail(c);
	if (wire_dec_ok_stats(p, h.len, &seq) != 0) {
		fprintf(stderr, "brokerctl: %s: malformed STATS answer\n",
		    c->addr);
		return 1;
	}
	while (wire_next_stat(&seq, &st)) {
		if (json && n < SIPC_STATS_MAX) {
			js[n].name = st.name.ptr;
			js[n].len = st.name.len;
			js[n++].value = st.value;
		} else if (!json)
			printf("%-24.*s %llu\n", (int)st.name.len, st.name.ptr,
			    (unsigned long long)st.value);
	}
	if (json)
		return emit(jo_stats(js, n));
	return 0;
}

int
main(int argc, char **argv)
{
	const char *broker = getenv("SIPC_BROKER"), *cmd = NULL, *arg = NULL;
	const char *pwfile = NULL, *salt = NULL, *password;
	struct tls_conf tc, *tcp = NULL;
	struct ctlconn c;
	char *end, pw[TLS_PASSWORD_MAX], err[512];
	long timeout = DEFAULT_TIMEOUT;
	int i, rc, nargs = 0;

	memset(&tc, 0, sizeof(tc));

	if (broker == NULL || *broker == '\0')
		broker = DEFAULT_BROKER;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "--broker") ||
		    !strcmp(argv[i], "-b")) {
			if (++i >= argc)
				goto usage;
			broker = argv[i];
		} else if (!strcmp(argv[i], "--timeout")) {
			if (++i >= argc)
				goto usage;
			timeout = strtol(argv[i], &end, 10);
			if (*end != '\0' || timeout < 1 || timeout > 3600000) {
				fprintf(stderr, "brokerctl: --timeout: '%s' is "
				    "not 1 to 3600000 ms\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--tls-ca") ||
		    !strcmp(argv[i], "--tls-cert") ||
		    !strcmp(argv[i], "--tls-key") ||
		    !strcmp(argv[i], "--password-file") ||
		    !strcmp(argv[i], "--salt")) {
			if (++i >= argc)
				goto usage;
			if (!strcmp(argv[i - 1], "--tls-ca"))
				tc.ca = argv[i];
			else if (!strcmp(argv[i - 1], "--tls-cert"))
				tc.cert = argv[i];
			else if (!strcmp(argv[i - 1], "--tls-key"))
				tc.key = argv[i];
			else if (!strcmp(argv[i - 1], "--password-file"))
				pwfile = argv[i];
			else
				salt = argv[i];
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "brokerctl: unknown option '%s'\n",
			    argv[i]);
			goto usage;
		} else if (nargs == 0) {
			cmd = argv[i];
			nargs++;
		} else if (nargs == 1) {
			arg = argv[i];
			nargs++;
		} else {
			fprintf(stderr, "brokerctl: unexpected argument '%s'\n",
			    argv[i]);
			goto usage;
		}
	}
	if (cmd == NULL)
		goto usage;
	if (!strcmp(cmd, "show") || !strcmp(cmd, "watch")) {
		if (arg == NULL) {
			fprintf(stderr, "brokerctl: %s needs a HANDLE\n", cmd);
			goto usage;
		}
	} else if (strcmp(cmd, "ping") && strcmp(cmd, "list") &&
	    strcmp(cmd, "stats") && strcmp(cmd, "cluster")) {
		fprintf(stderr, "brokerctl: unknown command '%s'\n", cmd);
		goto usage;
	} else if (arg != NULL) {
		fprintf(stderr, "brokerctl: %s takes no argument\n", cmd);
		goto usage;
	}

	password = getenv("SIPC_PASSWORD");
	if (pwfile) {
		if (tls_password_read(pwfile, pw, sizeof(pw), err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "brokerctl: %s\n", err);
			return 1;
		}
		password = pw;
	}
	if (password && *password) {
		if (tc.ca || tc.cert || tc.key) {
			fprintf(stderr, "brokerctl: use either TLS "
			    "certificates or a password, not both\n");
			return 2;
		}
		if (tls_conf_password(&tc, password, salt, err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "brokerctl: %s\n", err);
			return 2;
		}
		tcp = &tc;
	} else if (tc.ca || tc.cert || tc.key)
		tcp = &tc;
	signal(SIGPIPE, SIG_IGN);
	if (ctl_open(&c, broker, (int)timeout, tcp) == -1) {
		fprintf(stderr, "brokerctl: %s\n", c.err);
		ctl_close(&c);
		return 1;
	}
	if (!strcmp(cmd, "ping"))
		rc = cmd_ping(&c);
	else if (!strcmp(cmd, "list"))
		rc = cmd_list(&c);
	else if (!strcmp(cmd, "show"))
		rc = cmd_show(&c, arg);
	else if (!strcmp(cmd, "watch"))
		rc = cmd_watch(&c, arg);
	else if (!strcmp(cmd, "cluster"))
		rc = cmd_cluster(&c, json);
	else
		rc = cmd_stats(&c);
	ctl_close(&c);
	if (fflush(stdout) != 0 && rc == 0)
		rc = 1;
	return rc;
usage:
	usage(stderr);
	return 2;
}
