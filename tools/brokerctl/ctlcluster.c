/*
 * ctlcluster.c - brokerctl cluster (see ctlcluster.h).
 *
 * A clustered sipc-epmd adds to its STATS answer its cluster counters
 * ("cluster_*", "etcd_*") and, per broker it knows from etcd, three
 * entries "broker/ADDR/sessions", "broker/ADDR/registrations" and
 * "broker/ADDR/etcd_ok" (ADDR: the broker's first listen address).  This
 * gathers them into a table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/jsonout.h"
#include "ctlcluster.h"

#define MAX_ROWS	128

struct row {
	char		addr[64];
	uint64_t	sessions;
	uint64_t	regs;
	uint64_t	etcd_ok;
};

static struct row *
row_get(struct row *rows, int *n, const char *addr, size_t len)
{
	int i;

	for (i = 0; i < *n; i++)
		if (strlen(rows[i].addr) == len &&
		    memcmp(rows[i].addr, addr, len) == 0)
			return &rows[i];
	if (*n == MAX_ROWS || len >= sizeof(rows[0].addr))
		return NULL;
	memset(&rows[*n], 0, sizeof(rows[*n]));
	memcpy(rows[*n].addr, addr, len);
	return &rows[(*n)++];
}

static int
row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct row *)a)->addr,
	    ((const struct row *)b)->addr);
}

int
cmd_cluster(struct ctlconn *c, int json)
{
	static struct row rows[MAX_ROWS];
	struct wire_header h;
	struct wire_error e;
	struct wire_stat st;
	struct wire_seq seq;
	const uint8_t *p;
	uint32_t reqid = ctl_reqid(c);
	long long degraded = -1, revision = 0, nbrokers = 0, remote = 0;
	long long errors = 0;
	int n = 0, i;

	wbuf_reset(&c->out);
	wire_enc_empty(&c->out, WIRE_STATS, reqid);
	if (ctl_request(c, reqid, &h, &p, &e) != 0) {
		fprintf(stderr, "brokerctl: %s\n", c->err);
		return 1;
	}
	if (wire_dec_ok_stats(p, h.len, &seq) != 0) {
		fprintf(stderr, "brokerctl: %s: malformed STATS answer\n",
		    c->addr);
		return 1;
	}
	while (wire_next_stat(&seq, &st)) {
		const char *name = st.name.ptr, *slash;
		size_t len = st.name.len;
		struct row *r;

#define IS(s)	(len == strlen(s) && memcmp(name, s, len) == 0)
		if (IS("cluster_degraded"))
			degraded = (long long)st.value;
		else if (IS("cluster_revision"))
			revision = (long long)st.value;
		else if (IS("cluster_brokers"))
			nbrokers = (long long)st.value;
		else if (IS("cluster_remote_registrations"))
			remote = (long long)st.value;
		else if (IS("etcd_errors"))
			errors = (long long)st.value;
#undef IS
		if (len < 8 || memcmp(name, "broker/", 7) != 0 ||
		    (slash = memchr(name + 7, '/', len - 7)) == NULL)
			continue;
		if ((r = row_get(rows, &n, name + 7,
		    (size_t)(slash - name - 7))) == NULL)
			continue;
		len -= (size_t)(slash + 1 - name);
		name = slash + 1;
		if (len == 8 && !memcmp(name, "sessions", 8))
			r->sessions = st.value;
		else if (len == 13 && !memcmp(name, "registrations", 13))
			r->regs = st.value;
		else if (len == 7 && !memcmp(name, "etcd_ok", 7))
			r->etcd_ok = st.value;
	}
	if (degraded < 0) {
		fprintf(stderr, "brokerctl: %s is not in a cluster (started "
		    "without --etcd)\n", c->addr);
		return 1;
	}
	qsort(rows, (size_t)n, sizeof(rows[0]), row_cmp);
	if (json) {
		struct json_object *o, *a, *b;

		/* json-c writes it (issue 17): a broker's address comes
		 * from etcd, any bytes. */
		if ((o = json_object_new_object()) == NULL ||
		    (a = json_object_new_array()) == NULL) {
			json_object_put(o);
			fprintf(stderr, "brokerctl: out of memory\n");
			return 1;
		}
		jo_add(o, "broker", jo_cstr(c->addr));
		jo_add(o, "etcd", jo_cstr(degraded ? "degraded" : "ok"));
		jo_add(o, "revision", jo_i64(revision));
		jo_add(o, "brokers_known", jo_i64(nbrokers));
		jo_add(o, "remote_registrations", jo_i64(remote));
		jo_add(o, "etcd_errors", jo_i64(errors));
		for (i = 0; i < n; i++) {
			if ((b = json_object_new_object()) == NULL)
				break;
			jo_add(b, "listen", jo_cstr(rows[i].addr));
			jo_add(b, "sessions", jo_u64(rows[i].sessions));
			jo_add(b, "registrations", jo_u64(rows[i].regs));
			jo_add(b, "etcd", jo_cstr(rows[i].etcd_ok ? "ok" :
			    "degraded"));
			jo_push(a, b);
		}
		jo_add(o, "brokers", a);
		i = jo_write(stdout, o, JO_COMPACT);
		json_object_put(o);
		if (i == -1) {
			fprintf(stderr, "brokerctl: cannot write the JSON "
			    "output\n");
			return 1;
		}
		return 0;
	}
	printf("as seen by %s: etcd %s, revision %lld, %lld brokers, %lld "
	    "etcd errors\n\n", c->addr, degraded ? "DEGRADED (read-only)" :
	    "ok", revision, nbrokers, errors);
	printf("%-24s %10s %14s  %s\n", "BROKER", "SESSIONS", "REGISTRATIONS",
	    "ETCD");
	for (i = 0; i < n; i++)
		printf("%-24s %10llu %14llu  %s\n", rows[i].addr,
		    (unsigned long long)rows[i].sessions,
		    (unsigned long long)rows[i].regs,
		    rows[i].etcd_ok ? "ok" : "degraded");
	if (nbrokers > n)
		printf("(%lld more not shown: STATS holds 256 counters)\n",
		    nbrokers - n);
	return 0;
}
