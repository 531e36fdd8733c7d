/*
 * opts.c - what every subcommand of the sipc command parses alike:
 * numbers, the security flags, and the EPM from --broker.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libclient/include/sipc.h"
#include "opts.h"

int
cli_parse_long(const char *opt, const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno == ERANGE || v < min ||
	    v > max) {
		fprintf(stderr, "sipc: %s: '%s' is not a number from %ld to "
		    "%ld\n", opt, s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int
cli_receiver_opt(struct sipc_receiver_opts *o, const char *opt,
    const char *val)
{
	if (!strcmp(opt, "--listen"))
		o->listen_address = val;
	else if (!strcmp(opt, "--register-address"))
		o->register_address = val;
	else if (!strcmp(opt, "--ports"))
		o->allowed_ports = val;
	else
		return 0;
	return 1;
}

int
cli_security_opt(struct sipc_security *sec, const char *opt, const char *val,
    char *pw)
{
	FILE *fp;
	size_t n;

	if (!strcmp(opt, "--tls-verify-peer")) {
		sec->tls_verify_peer = 1;
		return 1;
	}
	if (strcmp(opt, "--tls-ca") && strcmp(opt, "--tls-cert") &&
	    strcmp(opt, "--tls-key") && strcmp(opt, "--tls-server-name") &&
	    strcmp(opt, "--password-file") && strcmp(opt, "--salt"))
		return 0;
	if (val == NULL) {
		fprintf(stderr, "sipc: %s needs a value\n", opt);
		return -1;
	}
	if (!strcmp(opt, "--tls-ca"))
		sec->tls_ca = val;
	else if (!strcmp(opt, "--tls-cert"))
		sec->tls_cert = val;
	else if (!strcmp(opt, "--tls-key"))
		sec->tls_key = val;
	else if (!strcmp(opt, "--tls-server-name"))
		sec->tls_server_name = val;
	else if (!strcmp(opt, "--salt"))
		sec->salt = val;
	else {
		if ((fp = fopen(val, "r")) == NULL) {
			fprintf(stderr, "sipc: %s: %s\n", val, strerror(errno));
			return -1;
		}
		if (fgets(pw, CLI_PASSWORD_MAX, fp) == NULL ||
		    (n = strcspn(pw, "\r\n")) == 0) {
			fclose(fp);
			fprintf(stderr, "sipc: %s: no password on the first "
			    "line\n", val);
			return -1;
		}
		fclose(fp);
		pw[n] = '\0';
		sec->password = pw;
	}
	return 2;
}

void
cli_security_env(struct sipc_security *sec)
{
	const char *env = getenv("SIPC_PASSWORD");

	if (sec->password == NULL && sec->tls_ca == NULL &&
	    sec->tls_cert == NULL && env && *env)
		sec->password = env;
}

int
cli_epm(const char *broker, int timeout_ms, sipc_epm **epm)
{
	return cli_epm_sec(broker, timeout_ms, NULL, epm);
}

int
cli_epm_sec(const char *broker, int timeout_ms,
    const struct sipc_security *sec, sipc_epm **epm)
{
	struct sipc_epm_opts o;
	int rc;

	sipc_epm_opts_init(&o);
	o.connect_timeout_ms = timeout_ms;
	if (sec)
		o.security = *sec;
	if ((rc = sipc_epm_connect(broker, &o, epm)) != 0)
		fprintf(stderr, "sipc: %s\n", *sipc_errmsg() ? sipc_errmsg() :
		    sipc_strerror(rc));
	return rc;
}
