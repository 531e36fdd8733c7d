/*
 * opts.h - option helpers shared by the sipc command's subcommands
 * (opts.c).
 */
#ifndef SIPC_TOOLS_OPTS_H
#define SIPC_TOOLS_OPTS_H

#include "../../libclient/include/sipc.h"

/* Parses a decimal in [min, max] for option opt; 0, or -1 after saying
 * what is wrong on standard error. */
int	cli_parse_long(const char *opt, const char *s, long min, long max,
	    long *out);
/* An EPM for --broker (NULL: $SIPC_BROKER, else local), waiting up to
 * timeout_ms for the session; 0, or a SIPC_E* code after a message. */
int	cli_epm(const char *broker, int timeout_ms, sipc_epm **epm);
/* The same with TLS or password mode as sec says (NULL: plain text). */
int	cli_epm_sec(const char *broker, int timeout_ms,
	    const struct sipc_security *sec, sipc_epm **epm);

/* The receiving side's address options, for recv and reply:
 * --listen, --register-address, --ports.  1 when opt was one of them
 * (val stored in o), else 0. */
int	cli_receiver_opt(struct sipc_receiver_opts *o, const char *opt,
	    const char *val);

/* Password buffer size for cli_security_opt. */
#define CLI_PASSWORD_MAX	1024

/*
 * The security flags every subcommand takes: --tls-ca, --tls-cert,
 * --tls-key, --tls-server-name, --password-file, --salt (with a value)
 * and --tls-verify-peer (without).  Returns 2 when opt was one taking val,
 * 1 when it was the flag, 0 when it is not a security flag, -1 after an
 * error message.  pw (CLI_PASSWORD_MAX bytes) holds a password read from a
 * file.
 */
int	cli_security_opt(struct sipc_security *sec, const char *opt,
	    const char *val, char *pw);
/* After parsing: $SIPC_PASSWORD when no password or certificate was
 * given. */
void	cli_security_env(struct sipc_security *sec);

#endif
