/*
 * monitor.h - sipc-epmd's JSON endpoints and status page on the metrics
 * port (monitor.c, monitor_page.c).  Called on the broker's one thread.
 */
#ifndef SIPC_BROKER_MONITOR_H
#define SIPC_BROKER_MONITOR_H

#include <stddef.h>

#include "../common/jsonout.h"
#include "epmd.h"

struct evhttp;

/*
 * The broker's counters, the ones STATS answers and /v1/varz shows, in
 * that order: fills st[0..max) and returns how many it filled.
 */
size_t	monitor_counters(struct broker *b, struct jo_stat *st, size_t max);

/*
 * Protected mode for the metrics port (cfg.metrics), after the broker's
 * TLS is set up: an address that is not loopback needs b->tls (the port
 * then speaks TLS with it) or cfg.insecure.  0, or -1 when refused or the
 * address does not resolve (logged).
 */
int	monitor_check_protected(struct broker *b);

/* 1 when the metrics port speaks TLS. */
int	monitor_tls_on(void);

/* Adds /v1/varz, /v1/handles, /v1/sessions and / to http, and TLS when
 * monitor_check_protected() asked for it: 0 or -1 (logged). */
int	monitor_start(struct broker *b, struct evhttp *http);

/* The status page, in the order it is sent; the script and the style are
 * apart so that the Content-Security-Policy can name them by hash. */
extern const char monitor_page_head[];
extern const char monitor_page_style[];
extern const char monitor_page_mid[];
extern const char monitor_page_script[];
extern const char monitor_page_tail[];

#endif
