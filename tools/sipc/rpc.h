/*
 * rpc.h - the sipc command's request/reply subcommands (rpc.c).
 */
#ifndef SIPC_TOOLS_RPC_H
#define SIPC_TOOLS_RPC_H

/* sipc reply HANDLE [options]: exit status as sipc(1) says. */
int	cmd_reply(int argc, char **argv);
/* sipc request HANDLE [DATA] [options]: 0 reply, 3 no responder,
 * 4 timeout, 5 error reply, 6 connection lost, 1 other, 2 usage. */
int	cmd_request(int argc, char **argv);

#endif
