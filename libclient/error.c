/*
 * error.c - error codes and their names, and the per-thread detail string
 * behind sipc_errmsg(), filled where a failure is found (Redis's
 * anetSetError: the message says what failed and why).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char errmsg[512];

const char *
sipc_version(int *number)
{
	if (number)
		*number = SIPC_VERSION_NUMBER;
	return SIPC_VERSION;
}

const char *
sipc_strerror(int err)
{
	switch (err) {
	case SIPC_OK:		return "success";
	case SIPC_EINVAL:	return "invalid argument";
	case SIPC_ENOMEM:	return "out of memory";
	case SIPC_ESYS:		return "system call failed";
	case SIPC_ETIMEDOUT:	return "timed out";
	case SIPC_ECLOSED:	return "closed";
	case SIPC_EADDR:	return "bad or unresolvable address";
	case SIPC_ECONNECT:	return "cannot connect";
	case SIPC_EPROTO:	return "protocol error";
	case SIPC_EVERSION:	return "no common protocol version";
	case SIPC_EBROKER:	return "refused by the broker";
	case SIPC_ETOOBIG:	return "message too large";
	case SIPC_ENOPORT:	return "no allowed port is free";
	case SIPC_EPERM:	return "registry directory not safe";
	case SIPC_ENOTCONN:	return "no broker session";
	case SIPC_EPEERGONE:	return "peer gone";
	case SIPC_EDROPPED:	return "dropped at the high-water mark";
	case SIPC_ESLOW:	return "receiver cut off for being too slow";
	case SIPC_ENOTFOUND:	return "not found";
	case SIPC_EAUTH:	return "authentication failed";
	case SIPC_ETLS:		return "TLS failed";
	case SIPC_ENORESPONDER:	return "no responder";
	case SIPC_ENOREPLY:	return "the responder dropped the request";
	case SIPC_EREMOTE:	return "the responder answered with an error";
	default:		return "unknown error";
	}
}

const char *
sipc_errmsg(void)
{
	return errmsg;
}

void
clearerr_sipc(void)
{
	errmsg[0] = '\0';
}

int
seterr(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	return code;
}

int
seterr_sys(int code, const char *fmt, ...)
{
	int saved = errno;
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	n = strlen(errmsg);
	snprintf(errmsg + n, sizeof(errmsg) - n, ": %s", strerror(saved));
	errno = saved;
	return code;
}
