#!/bin/sh
# socket_path.sh - the data-path tests again with SIPC_TRANSPORT=unix:
# local senders and receivers use the shared-memory ring by default
# (PROTOCOL.md 6.7), so this keeps the Unix-socket path under the same
# tests (delivery, ACKs, gaps, policies, quick leavers, faults).
set -u
b=${SIPC_BUILD:?is unset: run this through make check}
rc=0
for t in test_dataconn test_client; do
	echo "--- $t, SIPC_TRANSPORT=unix"
	SIPC_TRANSPORT=unix "$b/tests/$t" || rc=1
done
exit $rc
