/*
 * etcdutil.h - real etcd servers for tests and benchmarks: one node or a
 * cluster of three, on free loopback ports, each with a data directory of
 * its own under dir; started with /usr/bin/etcd (or $SIPC_ETCD) and
 * stopped by pid.  Needs nothing but harness.h.
 */
#ifndef SIPC_TESTS_ETCDUTIL_H
#define SIPC_TESTS_ETCDUTIL_H

#include <sys/types.h>

#define ETU_MAX_NODES	3

struct etu_node {
	pid_t	pid;
	int	client_port;
	int	peer_port;
	char	name[16];
	char	data[300];
	char	log[300];
	char	url[64];	/* "http://127.0.0.1:PORT" */
};

struct etu_cluster {
	int		 n;
	char		 certdir[256];	/* "": plain http */
	char		 dir[256];
	char		 endpoints[256];	/* comma-separated URLs */
	char		 initial[512];		/* --initial-cluster */
	struct etu_node	 nodes[ETU_MAX_NODES];
};

/*
 * Starts n (1..3) etcd nodes under dir (which must exist) and waits up to
 * timeout_ms until each serves clients.  Returns 0, or -1 with every node
 * stopped.
 */
int	etu_start(struct etu_cluster *c, const char *dir, int n, int timeout_ms);
/*
 * The same with TLS on the client port: certdir holds tests/certs.sh's
 * files (server.pem for 127.0.0.1, ca.pem); clients must present a
 * certificate signed by ca.pem.  The URLs are https://.
 */
int	etu_start_tls(struct etu_cluster *c, const char *dir, int n,
	    int timeout_ms, const char *certdir);
/* Starts node i again (same ports, same data): 0 or -1. */
int	etu_restart_node(struct etu_cluster *c, int i, int timeout_ms);
/* SIGKILLs node i and reaps it. */
void	etu_kill_node(struct etu_cluster *c, int i);
/* Stops every node still running (SIGTERM, then SIGKILL). */
void	etu_stop(struct etu_cluster *c);
/* The index of the node that is leader now, or -1 (asks etcdctl). */
int	etu_leader(struct etu_cluster *c);

#endif
