/*
 * log.h - sipc-epmd's logging, after OpenBSD's log.c: standard error in the
 * foreground, syslog when daemonized.  log_warn() appends strerror(errno),
 * log_warnx() does not; fatal() and fatalx() log and exit(1).  Before
 * log_init() lines go to standard error as "sipc-epmd: message", the way a
 * command-line tool reports bad options.
 */
#ifndef SIPC_BROKER_LOG_H
#define SIPC_BROKER_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR
};

void	log_init(const char *ident, int to_syslog, enum log_level level);
void	log_set_level(enum log_level level);
enum log_level log_get_level(void);
int	log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

void	log_debug(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
void	log_warn(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
void	log_errorx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
void	fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
