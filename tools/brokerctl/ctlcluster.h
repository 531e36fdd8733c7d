/*
 * ctlcluster.h - brokerctl cluster: the brokers of a cluster on etcd, as
 * one of them sees them.
 */
#ifndef SIPC_CTLCLUSTER_H
#define SIPC_CTLCLUSTER_H

#include "ctlconn.h"

/*
 * Asks the broker of c for STATS and prints its cluster state and one line
 * per broker of the cluster (listen address, sessions, registrations, etcd
 * state); as one JSON document when json is set.  Returns the exit status:
 * 0, or 1 (said on stderr) when the broker failed or is not clustered.
 */
int	cmd_cluster(struct ctlconn *c, int json);

#endif
