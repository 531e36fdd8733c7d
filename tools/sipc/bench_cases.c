/*
 * bench_cases.c - sipc bench: the measurements.  throughput and fanout
 * (--count messages from one sender to every receiver), latency (ping-pong
 * round trips) and connect (a new sender until its first message arrives);
 * each fills a struct result.
 *
 * Not the set-up and the handshake around them (bench_run.c), nor the
 * output (bench.c).
 */
#include <sys/resource.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_int.h"

/* ---- Small helpers ------------------------------------------------------- */

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static long
peak_rss_kb(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

static long
rss_kb(void)
{
	FILE *fp;
	long pages = 0, resident = 0;

	if ((fp = fopen("/proc/self/statm", "r")) == NULL)
		return 0;
	if (fscanf(fp, "%ld %ld", &pages, &resident) != 2)
		resident = 0;
	fclose(fp);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- throughput and fanout ----------------------------------------------- */

int
bench_run_throughput(struct bench *b, struct result *r)
{
	struct sipc_sender_opts so;
	struct sipc_sender_stats st;
	sipc_sender *tx = NULL;
	uint8_t *buf = NULL;
	int64_t t0, t1, cpu0, deadline;
	size_t want, i;
	long n, every, left;
	int rc, ret = -1;

	if (b->o.spawn && bench_kids_spawn(b, (int)b->o.receivers) == -1)
		goto out;
	if (bench_sender(b, "", &tx) == -1 ||
	    bench_wait_receivers(b, tx, (size_t)b->o.receivers) == -1)
		goto out;
	want = sipc_sender_receivers(tx);
	if (want > MAX_RECEIVERS) {
		fprintf(stderr, "sipc bench: %zu receivers of '%s'; at most %d "
		    "can be measured\n", want, b->handle, MAX_RECEIVERS);
		goto out;
	}
	if (want != (size_t)b->o.receivers)
		fprintf(stderr, "sipc bench: %zu receivers of '%s' (not %ld); "
		    "measuring with all of them\n", want, b->handle,
		    b->o.receivers);
	if (bench_handshake(b, tx, want, b->o.mode, (uint64_t)b->o.count) == -1)
		goto out;
	if ((buf = malloc((size_t)b->o.size)) == NULL) {
		fprintf(stderr, "sipc bench: out of memory\n");
		goto out;
	}
	bench_msg_init(buf, (size_t)b->o.size, K_DATA);
	r->receivers = want;
	sipc_sender_opts_init(&so);
	r->hwm = so.hwm_bytes;	/* bench_sender() keeps the default */
	r->rss_before_kb = rss_kb();
	every = STATS_BYTES / b->o.size < 1 ? 1 : STATS_BYTES / b->o.size;
	left = every;
	deadline = bench_now_ns() + b->o.max_time_ms * 1000000;
	cpu0 = bench_cpu_ns(RUSAGE_SELF);
	t0 = bench_now_ns();
	for (n = 0; n < b->o.count; n++) {
		if (b->o.loan) {
			void *p;

			/* Written in place, as a zero-copy sender does: the
			 * header's fields, not a copy of a whole buffer. */
			if ((rc = sipc_send_loan(tx, (size_t)b->o.size,
			    &p)) == 0) {
				memcpy(p, buf, BM_HDR);
				bench_put64((uint8_t *)p + 8, (uint64_t)n);
				rc = sipc_send_commit(tx, p,
				    (size_t)b->o.size);
			}
		} else {
			bench_put64(buf + 8, (uint64_t)n);
			rc = sipc_send(tx, buf, (size_t)b->o.size);
		}
		if (rc != 0) {
			fprintf(stderr, "sipc bench: message %ld: %s\n", n,
			    bench_errtext(rc));
			goto out;
		}
		/* Each `every` messages (counted down: no division per
		 * message in the timed loop). */
		if (--left == 0) {
			left = every;
			if (sipc_sender_stats(tx, &st) == 0 &&
			    st.queued_bytes > r->queued_max)
				r->queued_max = st.queued_bytes;
			if (bench_check_interrupted())
				goto out;
			if (bench_now_ns() > deadline) {
				fprintf(stderr, "sipc bench: only %ld of %ld "
				    "messages sent within --max-time %ld ms\n",
				    n + 1, b->o.count, b->o.max_time_ms);
				goto out;
			}
		}
	}
	if ((rc = sipc_sender_flush(tx, (int)b->o.timeout_ms)) != 0) {
		fprintf(stderr, "sipc bench: flush: %s\n", bench_errtext(rc));
		goto out;
	}
	if (sipc_sender_stats(tx, &st) == 0) {
		if (st.queued_bytes > r->queued_max)
			r->queued_max = st.queued_bytes;
		r->sender_lost = st.lost;
		r->sent_direct = st.sent_direct;
	}
	if (bench_send_end(b, tx, (uint64_t)b->o.count) == -1 ||
	    bench_collect(b, want) == -1)
		goto out;
	r->cpu_self = bench_cpu_ns(RUSAGE_SELF) - cpu0;
	r->peak_rss_kb = peak_rss_kb();
	/* Done when the last receiver had the last message: its own clock
	 * when it runs on this host, else when its report came in. */
	r->rx_clock = b->o.spawn;
	t1 = t0;
	pthread_mutex_lock(&b->mu);
	for (i = 0; i < b->nrep; i++) {
		int64_t t = r->rx_clock ? b->rep[i].last_ns :
		    b->rep[i].arrived_ns;

		if (r->rx_clock && t == 0)
			t = b->rep[i].arrived_ns;	/* lost the last */
		if (t > t1)
			t1 = t;
	}
	bench_sum_reports(b, r);
	r->sender_lost += b->send_lost;
	pthread_mutex_unlock(&b->mu);
	r->messages = (uint64_t)b->o.count;
	r->lost = r->messages * want > r->deliveries ?
	    r->messages * want - r->deliveries : 0;
	r->seconds = (double)(t1 - t0) / 1e9;
	ret = 0;
out:
	if (tx && sipc_sender_close(tx) != 0 && ret == 0)
		fprintf(stderr, "sipc bench: some messages were not "
		    "acknowledged at close\n");
	free(buf);
	return ret;
}

/* ---- latency ------------------------------------------------------------- */

static void
lat_finish(struct bench *b, int error)
{
	pthread_mutex_lock(&b->mu);
	b->lat_error = error;
	b->done = 1;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

/* HANDLE.pong, on the I/O thread: time the round trip, send the next. */
static void
bench_pong_cb(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	struct bench *b = arg;
	const uint8_t *p = m->data;
	size_t len = m->len;
	int64_t now = bench_now_ns();
	int rc;

	(void)rx;
	if (b->seq < 0 || b->seq >= b->total ||
	    bench_msg_kind(p, len) != K_PING || len != (size_t)b->o.size ||
	    bench_get64(p + 8) != (uint64_t)b->seq) {
		b->stray++;
		return;
	}
	if (++b->pongs < b->echoers)
		return;
	if (b->seq >= b->warmup)
		b->samples[b->seq - b->warmup] = now - b->t_ping;
	if (++b->seq == b->total) {
		lat_finish(b, 0);
		return;
	}
	if ((b->seq & 1023) == 0) {
		pthread_mutex_lock(&b->mu);
		b->progress = b->seq;
		pthread_mutex_unlock(&b->mu);
	}
	b->pongs = 0;
	if (b->o.from_thread) {
		pthread_mutex_lock(&b->mu);
		b->go = 1;
		pthread_cond_broadcast(&b->cv);
		pthread_mutex_unlock(&b->mu);
		return;
	}
	bench_put64(b->ping + 8, (uint64_t)b->seq);
	b->t_ping = bench_now_ns();
	if ((rc = sipc_send(b->tx_ping, b->ping, (size_t)b->o.size)) != 0)
		lat_finish(b, rc);
}

int
bench_run_latency(struct bench *b, struct result *r)
{
	sipc_sender *ctl = NULL;
	int64_t t0, cpu0, end, stall_end;
	size_t want;
	long last = -1;
	int rc, ret = -1, done, go;

	if (bench_receiver(b, ".pong", bench_pong_cb, &b->rx_pong) == -1)
		return -1;
	if (b->o.spawn && bench_kids_spawn(b, (int)b->o.receivers) == -1)
		goto out;
	if (bench_sender(b, "", &ctl) == -1 ||
	    bench_sender(b, ".ping", &b->tx_ping) == -1 ||
	    bench_wait_receivers(b, ctl, (size_t)b->o.receivers) == -1)
		goto out;
	want = sipc_sender_receivers(ctl);
	if (want > MAX_RECEIVERS) {
		fprintf(stderr, "sipc bench: %zu receivers of '%s'; at most %d "
		    "can be measured\n", want, b->handle, MAX_RECEIVERS);
		goto out;
	}
	if (bench_wait_receivers(b, b->tx_ping, want) == -1 ||
	    bench_handshake(b, ctl, want, MODE_LATENCY, 0) == -1)
		goto out;
	b->warmup = b->o.count / 10;
	if (b->warmup > 1000)
		b->warmup = 1000;
	if (b->warmup < 10)
		b->warmup = 10;
	b->total = b->warmup + b->o.count;
	b->echoers = want;
	r->receivers = want;
	if ((b->samples = calloc((size_t)b->o.count, sizeof(int64_t))) ==
	    NULL || (b->ping = malloc((size_t)b->o.size)) == NULL) {
		fprintf(stderr, "sipc bench: out of memory\n");
		goto out;
	}
	bench_msg_init(b->ping, (size_t)b->o.size, K_PING);
	b->seq = 0;
	b->pongs = 0;
	cpu0 = bench_cpu_ns(RUSAGE_SELF);
	t0 = bench_now_ns();
	end = t0 + b->o.max_time_ms * 1000000;
	stall_end = t0 + b->o.timeout_ms * 1000000;
	b->t_ping = bench_now_ns();
	if ((rc = sipc_send(b->tx_ping, b->ping, (size_t)b->o.size)) != 0) {
		fprintf(stderr, "sipc bench: ping: %s\n", bench_errtext(rc));
		b->seq = -1;
		goto out;
	}
	/* From here the ping-pong runs on the I/O thread by itself, or
	 * (--from-thread) each pong wakes this thread for the next ping. */
	for (;;) {
		pthread_mutex_lock(&b->mu);
		if (!b->done && !b->go)
			bench_cond_wait_ms(&b->cv, &b->mu, SLICE_MS);
		done = b->done;
		go = b->go;
		b->go = 0;
		if (go && !done) {
			pthread_mutex_unlock(&b->mu);
			bench_put64(b->ping + 8, (uint64_t)b->seq);
			b->t_ping = bench_now_ns();
			if ((rc = sipc_send(b->tx_ping, b->ping,
			    (size_t)b->o.size)) != 0) {
				lat_finish(b, rc);
				continue;
			}
			if ((b->seq & 1023) != 0)
				continue;
			pthread_mutex_lock(&b->mu);
		}
		if (b->progress != last) {
			last = b->progress;
			stall_end = bench_now_ns() + b->o.timeout_ms * 1000000;
		}
		pthread_mutex_unlock(&b->mu);
		if (done)
			break;
		if (bench_check_interrupted() || (b->nkids &&
		    bench_kids_check(b) == -1))
			goto out;
		if (bench_now_ns() > stall_end || bench_now_ns() > end) {
			fprintf(stderr, "sipc bench: no echo for %ld ms "
			    "(round trip %ld of %ld)\n", b->o.timeout_ms,
			    last, b->total);
			goto out;
		}
	}
	r->seconds = (double)(bench_now_ns() - t0) / 1e9;
	r->cpu_self = bench_cpu_ns(RUSAGE_SELF) - cpu0;
	if (b->lat_error) {
		fprintf(stderr, "sipc bench: ping: %s\n",
		    sipc_strerror(b->lat_error));
		goto out;
	}
	if (bench_send_end(b, ctl, 0) == -1 || bench_collect(b, want) == -1)
		goto out;
	pthread_mutex_lock(&b->mu);
	bench_sum_reports(b, r);
	r->sender_lost = b->send_lost;
	pthread_mutex_unlock(&b->mu);
	r->messages = (uint64_t)b->o.count;
	r->bad = b->stray;
	qsort(b->samples, (size_t)b->o.count, sizeof(int64_t), cmp_i64);
	r->samples = b->samples;
	r->nsamples = (size_t)b->o.count;
	b->samples = NULL;
	r->peak_rss_kb = peak_rss_kb();
	ret = 0;
out:
	/* After a failure, stop the ping-pong before its sender goes; after
	 * success it has stopped, and the receiver stays until the echoing
	 * children are gone, so that their last pongs are acknowledged. */
	if (ret != 0) {
		sipc_receiver_close(b->rx_pong);
		b->rx_pong = NULL;
	}
	sipc_sender_close(b->tx_ping);
	b->tx_ping = NULL;
	sipc_sender_close(ctl);
	free(b->samples);
	b->samples = NULL;
	free(b->ping);
	b->ping = NULL;
	return ret;
}

/* ---- connect ------------------------------------------------------------- */

static void
connect_msg_cb(sipc_receiver *rx, const struct sipc_message *m, void *arg)
{
	struct bench *b = arg;
	int64_t t = bench_now_ns();

	(void)rx;
	(void)m;
	pthread_mutex_lock(&b->mu);
	if (b->arrived++ == 0)
		b->t_arrived = t;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static int
have_arrived(struct bench *b, size_t want)
{
	return (size_t)b->arrived >= want;
}

int
bench_run_connect(struct bench *b, struct result *r)
{
	struct sipc_receiver_opts ro;
	struct sipc_sender_opts so;
	sipc_epm *epm_tx = NULL;
	sipc_receiver *rx = NULL;
	sipc_sender *tx = NULL;
	uint8_t *msg = NULL;
	char name[300];
	int64_t t0, t_ready, cpu0, wall0, end;
	long i, warm, total;
	int rc, ret = -1;

	/* The receivers on b->epm, the senders on an EPM of their own: two
	 * I/O threads and two broker sessions, as two processes have. */
	if (bench_epm(b, &epm_tx) == -1)
		return -1;
	warm = b->o.count / 10 < 10 ? 10 : b->o.count / 10;
	if (warm > 100)
		warm = 100;
	total = warm + b->o.count;
	if ((r->samples = calloc((size_t)b->o.count, sizeof(int64_t))) ==
	    NULL || (r->ready = calloc((size_t)b->o.count,
	    sizeof(int64_t))) == NULL || (msg = malloc((size_t)b->o.size)) ==
	    NULL) {
		fprintf(stderr, "sipc bench: out of memory\n");
		goto out;
	}
	bench_msg_init(msg, (size_t)b->o.size, K_DATA);
	sipc_receiver_opts_init(&ro);
	ro.on_message = connect_msg_cb;
	ro.arg = b;
	sipc_sender_opts_init(&so);
	so.on_send_failed = bench_send_failed;
	so.arg = b;
	so.linger_ms = (int)b->o.timeout_ms;
	end = bench_now_ns() + b->o.max_time_ms * 1000000;
	cpu0 = bench_cpu_ns(RUSAGE_SELF);
	wall0 = bench_now_ns();
	for (i = 0; i < total; i++) {
		if (i == warm) {
			cpu0 = bench_cpu_ns(RUSAGE_SELF);
			wall0 = bench_now_ns();
		}
		if (bench_now_ns() > end) {
			fprintf(stderr, "sipc bench: only %ld of %ld connects "
			    "within --max-time %ld ms\n", i, total,
			    b->o.max_time_ms);
			goto out;
		}
		if (bench_check_interrupted())
			goto out;
		snprintf(name, sizeof(name), "%s.c%ld", b->handle, i);
		if ((rc = sipc_receiver_new(name, b->epm, &ro, &rx)) != 0) {
			fprintf(stderr, "sipc bench: receiver %s: %s\n", name,
			    bench_errtext(rc));
			goto out;
		}
		pthread_mutex_lock(&b->mu);
		b->arrived = 0;
		pthread_mutex_unlock(&b->mu);
		t0 = bench_now_ns();
		if ((rc = sipc_sender_new(name, epm_tx, &so, &tx)) != 0) {
			fprintf(stderr, "sipc bench: sender %s: %s\n", name,
			    bench_errtext(rc));
			goto out;
		}
		if ((rc = sipc_sender_wait_receivers(tx, 1,
		    (int)b->o.timeout_ms)) != 0) {
			fprintf(stderr, "sipc bench: sender %s found no "
			    "receiver: %s\n", name, bench_errtext(rc));
			goto out;
		}
		t_ready = bench_now_ns();
		bench_put64(msg + 8, (uint64_t)i);
		if ((rc = sipc_send(tx, msg, (size_t)b->o.size)) != 0) {
			fprintf(stderr, "sipc bench: send: %s\n",
			    bench_errtext(rc));
			goto out;
		}
		if (bench_wait_for(b, have_arrived, 1, b->o.timeout_ms) != 0) {
			fprintf(stderr, "sipc bench: the first message on %s "
			    "did not arrive within %ld ms\n", name,
			    b->o.timeout_ms);
			r->lost++;
			goto out;
		}
		if (i >= warm) {
			r->samples[i - warm] = b->t_arrived - t0;
			r->ready[i - warm] = t_ready - t0;
		}
		if ((rc = sipc_sender_flush(tx, (int)b->o.timeout_ms)) != 0) {
			fprintf(stderr, "sipc bench: flush: %s\n",
			    bench_errtext(rc));
			goto out;
		}
		sipc_sender_close(tx);
		tx = NULL;
		sipc_receiver_close(rx);
		rx = NULL;
		pthread_mutex_lock(&b->mu);
		if (b->arrived != 1)
			r->bad += (uint64_t)(b->arrived > 1 ? b->arrived - 1 :
			    1);
		pthread_mutex_unlock(&b->mu);
	}
	r->seconds = (double)(bench_now_ns() - wall0) / 1e9;
	r->cpu_self = bench_cpu_ns(RUSAGE_SELF) - cpu0;
	r->messages = (uint64_t)b->o.count;
	r->deliveries = r->messages;
	r->receivers = 1;
	r->nsamples = (size_t)b->o.count;
	qsort(r->samples, r->nsamples, sizeof(int64_t), cmp_i64);
	qsort(r->ready, r->nsamples, sizeof(int64_t), cmp_i64);
	pthread_mutex_lock(&b->mu);
	r->sender_lost = b->send_lost;
	pthread_mutex_unlock(&b->mu);
	r->peak_rss_kb = peak_rss_kb();
	ret = 0;
out:
	sipc_sender_close(tx);
	sipc_receiver_close(rx);
	sipc_epm_close(epm_tx);
	free(msg);
	return ret;
}

