/*
 * cli.h - helpers shared by the sipc command's subcommands.
 */
#ifndef SIPC_CLI_H
#define SIPC_CLI_H

#include "include/sipc.h"

/* Parses a decimal in [min, max] for option opt; 0, or -1 after saying
 * what is wrong on standard error. */
int	cli_parse_long(const char *opt, const char *s, long min, long max,
	    long *out);
/* An EPM for --broker (NULL: $SIPC_BROKER, else local), waiting up to
 * timeout_ms for the session; 0, or a SIPC_E* code after a message. */
int	cli_epm(const char *broker, int timeout_ms, sipc_epm **epm);

/* sipc bench ARGS (bench.c). */
int	cmd_bench(int argc, char **argv);

#endif
