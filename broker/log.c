/*
 * log.c - logging for sipc-epmd (see log.h).  One line per call; the level
 * filter is the only state.  Not thread-safe: the broker has one thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static int		to_syslog;
static int		initialized;	/* before log_init: "ident: msg" */
static enum log_level	cur_level = LOG_LEVEL_INFO;
static const char	*log_ident = "sipc-epmd";

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
log_init(const char *ident, int use_syslog, enum log_level level)
{
	log_ident = ident;
	cur_level = level;
	initialized = 1;
	if (to_syslog)
		closelog();
	to_syslog = use_syslog;
	if (to_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(enum log_level level)
{
	cur_level = level;
}

enum log_level
log_get_level(void)
{
	return cur_level;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	return level_names[level];
}

static void
vlog(enum log_level level, const char *fmt, va_list ap, int with_errno)
{
	static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };
	int saved = errno;
	char msg[1024], ts[32];
	struct timespec now;
	struct tm tm;

	if (level < cur_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		size_t n = strlen(msg);

		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
	}
	if (to_syslog) {
		syslog(prio[level], "%s", msg);
	} else if (!initialized) {
		fprintf(stderr, "%s: %s\n", log_ident, msg);
	} else {
		clock_gettime(CLOCK_REALTIME, &now);
		localtime_r(&now.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s %s: %s\n", ts,
		    now.tv_nsec / 1000000, log_ident, level_names[level], msg);
	}
	errno = saved;
}

/* Each logs at its level; a fatal one exits after. */
#define LOGFN(name, level, with_errno, last)		\
void							\
name(const char *fmt, ...)				\
{							\
	va_list ap;					\
							\
	va_start(ap, fmt);				\
	vlog(level, fmt, ap, with_errno);		\
	va_end(ap);					\
	last;						\
}

LOGFN(log_debug, LOG_LEVEL_DEBUG, 0, (void)0)
LOGFN(log_info, LOG_LEVEL_INFO, 0, (void)0)
LOGFN(log_warn, LOG_LEVEL_WARN, 1, (void)0)
LOGFN(log_warnx, LOG_LEVEL_WARN, 0, (void)0)
LOGFN(log_errorx, LOG_LEVEL_ERROR, 0, (void)0)
LOGFN(fatal, LOG_LEVEL_ERROR, 1, exit(1))
LOGFN(fatalx, LOG_LEVEL_ERROR, 0, exit(1))
