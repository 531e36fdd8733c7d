/*
 * bench_int.h - sipc bench's internal header: the benchmark message format,
 * the options and state of a bench, and the functions its files share
 * (bench.c, bench_serve.c, bench_run.c, bench_cases.c, bench_util.c).
 * Not an interface: sipc.c calls cmd_bench() through bench.h only.
 */
#ifndef SIPC_TOOLS_BENCH_INT_H
#define SIPC_TOOLS_BENCH_INT_H

#include <sys/types.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../../libclient/include/sipc.h"

/*
 * Every benchmark message starts with a 16-byte header: "SBn1", a kind
 * byte, three zero bytes, and a big-endian counter (data: 0, 1, 2, ...).
 * Control messages (BEGIN, END, READY, REPORT) carry big-endian u64 fields
 * after it at the offsets below.
 */
#define BM_MAGIC	"SBn1"
#define BM_HDR		16
#define K_DATA		'D'
#define K_PING		'P'
#define K_BEGIN		'B'
#define K_END		'E'
#define K_READY		'Y'
#define K_REPORT	'R'

#define F_RUN		16	/* BEGIN, END, READY, REPORT: run id */
#define F_COUNT		24	/* BEGIN, END: data messages in the run */
#define F_SIZE		32	/* BEGIN: bytes per data message */
#define F_MODE		40	/* BEGIN: MODE_* */
#define CTL_LEN		64

#define F_INST		24	/* READY, REPORT: the serve process */
#define F_GOT		32	/* REPORT: data messages in order */
#define F_BAD		40	/* out of order, duplicate, wrong size */
#define F_GAPS		48	/* reported missing by on_gap */
#define F_BYTES		56
#define F_CPU		64	/* CPU ns between BEGIN and END */
#define F_FIRST		72	/* CLOCK_MONOTONIC ns: first data message */
#define F_LAST		80	/* and the last one */
#define F_ECHOED	88
#define F_ECHOFAIL	96
#define F_FOREIGN	104	/* messages of other senders or runs */
#define REPORT_LEN	112

enum mode {
	MODE_THROUGHPUT = 1,
	MODE_FANOUT,
	MODE_LATENCY,
	MODE_CONNECT
};

#define DEF_HANDLE	"sipc-bench"
#define HANDLE_ROOM	(255 - 24)	/* for ".report", ".c<pid>.<i>" */
#define MAX_RECEIVERS	256
#define MAX_SIZE	(64L * 1024 * 1024)
#define SLICE_MS	100		/* wake-up period of every wait */
#define STATS_BYTES	(1024 * 1024)	/* send loop: sample the backlog */

struct opts {
	enum mode	 mode;
	long		 size;
	long		 count;
	long		 receivers;
	const char	*broker;	/* NULL: local */
	int		 spawn;		/* start our own serve children */
	int		 json;
	int		 loan;		/* zero-copy sending */
	int		 from_thread;	/* latency: pings from the main thread */
	int		 handoff_only;	/* sipc_sender_opts.handoff_only */
	const char	*handle;
	long		 timeout_ms;	/* each wait */
	long		 max_time_ms;	/* the whole measurement */
};

/* What the bench uses of a REPORT. */
struct report {
	uint64_t	got;
	uint64_t	bad;
	uint64_t	gaps;
	int64_t		cpu;
	int64_t		last_ns;
	int64_t		arrived_ns;
};

struct bench {
	struct opts	 o;
	char		 handle[256];
	char		 tmpdir[128];	/* local: private registry */
	pid_t		 kids[MAX_RECEIVERS];
	int		 nkids;
	sipc_epm	*epm;
	sipc_receiver	*rx_report;
	sipc_receiver	*rx_pong;
	uint64_t	 run;

	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	/* Under mu. */
	uint64_t	 ready[MAX_RECEIVERS];
	size_t		 nready;
	struct report	 rep[MAX_RECEIVERS];
	size_t		 nrep;
	uint64_t	 send_lost;

	/* Ping-pong: the I/O thread only, from the first ping to done. */
	sipc_sender	*tx_ping;
	uint8_t		*ping;
	size_t		 echoers;
	size_t		 pongs;		/* for the ping in flight */
	long		 seq;		/* ping in flight */
	long		 warmup;
	long		 total;
	int64_t		 t_ping;
	int64_t		*samples;
	uint64_t	 stray;
	int		 lat_error;	/* under mu with done */
	int		 done;		/* under mu */
	long		 progress;	/* under mu */
	int		 go;		/* under mu: from_thread, ping now */

	/* connect: under mu. */
	int		 arrived;
	int64_t		 t_arrived;
};

struct result {
	double		 seconds;
	uint64_t	 messages;
	uint64_t	 deliveries;
	uint64_t	 lost;
	uint64_t	 bad;
	uint64_t	 gaps;
	uint64_t	 sender_lost;
	int64_t		 cpu_self;
	int64_t		 cpu_rx;
	long		 rss_before_kb;
	long		 peak_rss_kb;
	size_t		 queued_max;
	uint64_t	 sent_direct;	/* sipc_sender_stats.sent_direct */
	size_t		 hwm;
	size_t		 receivers;
	int		 rx_clock;	/* end time from the receivers' clock */
	int64_t		*samples;	/* latency, connect: sorted, ns */
	size_t		 nsamples;
	int64_t		*ready;		/* connect: to sender ready, sorted */
};

/* ---- bench.c ------------------------------------------------------------- */

int	bench_check_interrupted(void);
void	bench_usage(FILE *fp);
int	bench_broker_choice(const char *who, int local, const char **broker);

/* ---- bench_util.c -------------------------------------------------------- */

int64_t	bench_now_ns(void);
int64_t	bench_cpu_ns(int who);
void	bench_put64(uint8_t *p, uint64_t v);
uint64_t bench_get64(const uint8_t *p);
void	bench_msg_init(uint8_t *buf, size_t len, int kind);
int	bench_msg_kind(const void *data, size_t len);
uint64_t bench_random64(void);
const char *bench_errtext(int rc);
void	bench_cond_init_mono(pthread_cond_t *cv);
void	bench_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int ms);

/* ---- bench_serve.c ------------------------------------------------------- */

/* Runs "sipc bench serve ARGS"; returns the exit status. */
int	bench_serve(int argc, char **argv);

/* ---- bench_run.c --------------------------------------------------------- */

void	bench_report_cb(sipc_receiver *rx, const struct sipc_message *m,
	    void *arg);
void	bench_send_failed(sipc_sender *tx, int error, const char *endpoint,
	    uint64_t lost, void *arg);
int	bench_kids_spawn(struct bench *b, int n);
int	bench_kids_check(struct bench *b);
void	bench_kids_reap(struct bench *b, int grace_ms);
int	bench_tmpdir_make(struct bench *b);
void	bench_tmpdir_remove(struct bench *b);
int	bench_epm(struct bench *b, sipc_epm **epm);
int	bench_receiver(struct bench *b, const char *suffix, sipc_message_fn fn,
	    sipc_receiver **rx);
int	bench_sender(struct bench *b, const char *suffix, sipc_sender **tx);
int	bench_wait_receivers(struct bench *b, sipc_sender *tx, size_t want);
int	bench_wait_for(struct bench *b, int (*pred)(struct bench *, size_t),
	    size_t want, long ms);
int	bench_handshake(struct bench *b, sipc_sender *ctl, size_t want,
	    int mode, uint64_t count);
int	bench_send_end(struct bench *b, sipc_sender *ctl, uint64_t count);
int	bench_collect(struct bench *b, size_t want);
void	bench_sum_reports(struct bench *b, struct result *r);

/* ---- bench_cases.c ------------------------------------------------------- */

/* Each: 0 and *r filled, or -1 after a message. */
int	bench_run_throughput(struct bench *b, struct result *r);
int	bench_run_latency(struct bench *b, struct result *r);
int	bench_run_connect(struct bench *b, struct result *r);

/* bench_rpc.c: sipc bench rpc ARGS. */
int	bench_rpc(int argc, char **argv);
/* sipc bench rpc-clients ARGS: one process of its clients case. */
int	bench_rpc_clients(int argc, char **argv);

#endif
