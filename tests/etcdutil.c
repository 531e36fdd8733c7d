/*
 * etcdutil.c - real etcd servers for tests (see etcdutil.h).
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etcdutil.h"
#include "harness.h"

static const char *
etcd_path(void)
{
	const char *p = getenv("SIPC_ETCD");

	return p ? p : "/usr/bin/etcd";
}

/* 1 when the node's log says it serves clients. */
static int
node_ready(const struct etu_node *nd)
{
	char line[4096];
	FILE *fp;
	int ok = 0;

	if ((fp = fopen(nd->log, "r")) == NULL)
		return 0;
	while (!ok && fgets(line, sizeof(line), fp))
		ok = strstr(line, "ready to serve client requests") != NULL ||
		    strstr(line, "serving client traffic") != NULL;
	fclose(fp);
	return ok;
}

static int
node_spawn(struct etu_cluster *c, int i, const char *state)
{
	struct etu_node *nd = &c->nodes[i];
	char lc[64], lp[64], *argv[48];
	char cert[300], key[300], ca[300];
	int n = 0;

	snprintf(lc, sizeof(lc), "%s://127.0.0.1:%d", c->certdir[0] ?
	    "https" : "http", nd->client_port);
	snprintf(lp, sizeof(lp), "http://127.0.0.1:%d", nd->peer_port);
	argv[n++] = (char *)etcd_path();
	argv[n++] = "--name";
	argv[n++] = nd->name;
	argv[n++] = "--data-dir";
	argv[n++] = nd->data;
	argv[n++] = "--listen-client-urls";
	argv[n++] = lc;
	argv[n++] = "--advertise-client-urls";
	argv[n++] = lc;
	argv[n++] = "--listen-peer-urls";
	argv[n++] = lp;
	argv[n++] = "--initial-advertise-peer-urls";
	argv[n++] = lp;
	argv[n++] = "--initial-cluster";
	argv[n++] = c->initial;
	argv[n++] = "--initial-cluster-state";
	argv[n++] = (char *)state;
	argv[n++] = "--initial-cluster-token";
	argv[n++] = "sipc-test";
	/* Quick elections: tests kill leaders. */
	argv[n++] = "--heartbeat-interval";
	argv[n++] = "50";
	argv[n++] = "--election-timeout";
	argv[n++] = "500";
	argv[n++] = "--log-level";
	argv[n++] = "info";
	argv[n++] = "--logger";
	argv[n++] = "zap";
	if (c->certdir[0]) {
		snprintf(cert, sizeof(cert), "%s/server.pem", c->certdir);
		snprintf(key, sizeof(key), "%s/server.key", c->certdir);
		snprintf(ca, sizeof(ca), "%s/ca.pem", c->certdir);
		argv[n++] = "--cert-file";
		argv[n++] = cert;
		argv[n++] = "--key-file";
		argv[n++] = key;
		argv[n++] = "--trusted-ca-file";
		argv[n++] = ca;
		argv[n++] = "--client-cert-auth";
	}
	argv[n] = NULL;
	nd->pid = proc_spawn(argv, nd->log);
	return nd->pid > 0 ? 0 : -1;
}

static int
node_wait(struct etu_cluster *c, int i, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;

	while (!node_ready(&c->nodes[i])) {
		if (mono_ms() > end || proc_wait(c->nodes[i].pid, 0) != -1)
			return -1;
		sleep_ms(20);
	}
	return 0;
}

static int	start(struct etu_cluster *c, const char *dir, int n,
		    int timeout_ms, const char *certdir);

int
etu_start(struct etu_cluster *c, const char *dir, int n, int timeout_ms)
{
	return start(c, dir, n, timeout_ms, NULL);
}

int
etu_start_tls(struct etu_cluster *c, const char *dir, int n, int timeout_ms,
    const char *certdir)
{
	return start(c, dir, n, timeout_ms, certdir);
}

static int
start(struct etu_cluster *c, const char *dir, int n, int timeout_ms,
    const char *certdir)
{
	size_t off = 0;
	int i;

	memset(c, 0, sizeof(*c));
	if (certdir)
		snprintf(c->certdir, sizeof(c->certdir), "%s", certdir);
	if (n < 1 || n > ETU_MAX_NODES)
		return -1;
	c->n = n;
	snprintf(c->dir, sizeof(c->dir), "%s", dir);
	for (i = 0; i < n; i++) {
		struct etu_node *nd = &c->nodes[i];

		nd->client_port = free_port();
		do
			nd->peer_port = free_port();
		while (nd->peer_port == nd->client_port);
		snprintf(nd->name, sizeof(nd->name), "n%d", i);
		snprintf(nd->data, sizeof(nd->data), "%s/etcd-%d-%d.data",
		    dir, (int)getpid(), nd->client_port);
		snprintf(nd->log, sizeof(nd->log), "%s/etcd-%d.log", dir,
		    nd->client_port);
		snprintf(nd->url, sizeof(nd->url), "%s://127.0.0.1:%d",
		    certdir ? "https" : "http", nd->client_port);
		off += (size_t)snprintf(c->initial + off, sizeof(c->initial) -
		    off, "%s%s=http://127.0.0.1:%d", i ? "," : "", nd->name,
		    nd->peer_port);
		snprintf(c->endpoints + strlen(c->endpoints),
		    sizeof(c->endpoints) - strlen(c->endpoints), "%s%s",
		    i ? "," : "", nd->url);
	}
	for (i = 0; i < n; i++)
		if (node_spawn(c, i, "new") == -1)
			goto fail;
	for (i = 0; i < n; i++)
		if (node_wait(c, i, timeout_ms) == -1)
			goto fail;
	return 0;
fail:
	etu_stop(c);
	return -1;
}

int
etu_restart_node(struct etu_cluster *c, int i, int timeout_ms)
{
	/* A new log, so that "ready" means this run. */
	unlink(c->nodes[i].log);
	if (node_spawn(c, i, "existing") == -1)
		return -1;
	return node_wait(c, i, timeout_ms);
}

void
etu_kill_node(struct etu_cluster *c, int i)
{
	if (c->nodes[i].pid > 0) {
		kill(c->nodes[i].pid, SIGKILL);
		proc_wait(c->nodes[i].pid, 5000);
	}
	c->nodes[i].pid = 0;
}

void
etu_stop(struct etu_cluster *c)
{
	int i;

	for (i = 0; i < c->n; i++) {
		if (c->nodes[i].pid > 0)
			proc_stop(c->nodes[i].pid, 5000);
		c->nodes[i].pid = 0;
	}
}

int
etu_leader(struct etu_cluster *c)
{
	char cmd[512], line[1024];
	FILE *fp;
	int i, leader = -1;

	for (i = 0; i < c->n && leader == -1; i++) {
		if (c->nodes[i].pid <= 0)
			continue;
		snprintf(cmd, sizeof(cmd), "ETCDCTL_API=3 timeout 5 etcdctl "
		    "--endpoints=%s endpoint status -w simple 2>/dev/null",
		    c->nodes[i].url);
		if ((fp = popen(cmd, "r")) == NULL)
			continue;
		/* url, id, version, size, is leader, ... */
		if (fgets(line, sizeof(line), fp) &&
		    strstr(line, ", true,") != NULL)
			leader = i;
		pclose(fp);
	}
	return leader;
}
