# bench.mk - `make bench`: sipc side by side with ZeroMQ and plain
# sockets, the sipc-epmd broker, and (shared memory) iceoryx; see
# scripts/bench/README.md.
# Included by the top-level Makefile, whose variables it uses ($(B),
# $(CC), $(XCFLAGS), $(DEP_LIBS), the "deps" prerequisite).
#
#   make bench                      every case, 5 rounds; table + JSON
#   make bench BENCH_ARGS=--quick   1 round, short runs (a smoke test)
#   make bench BENCH_ARGS=--shm-only   the shared-memory section alone
#   make bench BENCH_BEFORE=REV     also "sipc tcp before": git revision
#                                   REV built under $(B)/before-REV, run
#                                   in the same rounds (old code, same
#                                   sitting)
#
# libzmq is linked into bench-zmq only, libnats into bench-nats only,
# iceoryx's C binding into bench-iox only, never into libsipc or sipc.

BENCH_BIN	= $(B)/bench/bin
# With the helpers the tests use too (tests/harness.c, common/clock.c,
# whose random numbers come from OpenSSL: hence $(DEP_LIBS) below).
BENCH_COMMON	= $(call obj,scripts/bench/common.c) $(HARNESS_OBJ) \
		  $(call obj,$(JSON_SRC)) $(B)/lib/libsipcproto.a
BENCH_PROGS	= $(BENCH_BIN)/bench-run $(BENCH_BIN)/bench-tcp \
		  $(BENCH_BIN)/bench-zmq $(BENCH_BIN)/bench-broker \
		  $(BENCH_BIN)/bench-nats $(BENCH_BIN)/bench-iox \
		  $(BENCH_BIN)/bench-cluster
# Recursive on purpose: expanded after bench-deps has run.
ZMQ_CFLAGS	= $(shell pkg-config --cflags libzmq)
ZMQ_LIBS	= $(shell pkg-config --libs libzmq)
NATS_CFLAGS	= $(shell pkg-config --cflags libnats)
NATS_LIBS	= $(shell pkg-config --libs libnats)
# iceoryx has no pkg-config file; its headers are under a versioned
# directory (Debian 12: /usr/include/iceoryx/v2.0.3).  -isystem: they
# are not -Wstrict-prototypes clean.
IOX_CFLAGS	= $(addprefix -isystem ,$(lastword $(sort $(wildcard \
		    /usr/include/iceoryx/v*))))
IOX_LIBS	= -liceoryx_binding_c -lstdc++
BENCH_ARGS	?=

.PHONY: bench-deps bench-progs

# Then the Python rows: bindings/python against pyzmq (bench.py); then
# the broker cluster on etcd (bench-cluster).
BENCH_BEFORE	?=
BEFORE_DIR	= $(B)/before-$(BENCH_BEFORE)

bench: all $(BENCH_PROGS) $(if $(BENCH_BEFORE),$(BEFORE_DIR)/bin/sipc)
	@$(BENCH_BIN)/bench-run --build $(B) \
	    --roudi-config scripts/bench/roudi.toml $(BENCH_ARGS) \
	    $(if $(BENCH_BEFORE),--before $(BEFORE_DIR))
	@/usr/bin/python3 bindings/python/bench/bench.py --build $(B) \
	    --out $(B)/bench/python.json \
	    $(if $(filter --quick,$(BENCH_ARGS)),--quick)
	@echo
	@echo "== broker cluster on etcd (issue 16): standalone, 3 brokers on 1 etcd, etcd directly"
	@$(BENCH_BIN)/bench-cluster --build $(B)

bench-progs: $(BENCH_PROGS)

# The revision's own makefile builds it, from a copy of its tree.
$(B)/before-%/bin/sipc:
	@rm -rf $(B)/before-$* && mkdir -p $(B)/before-$*/src
	git archive --format=tar $* | tar -x -C $(B)/before-$*/src
	$(MAKE) -C $(B)/before-$*/src B=$(abspath $(B)/before-$*) all

bench-deps: | deps
	@pkg-config --exists libzmq libnats 2>/dev/null && \
	    command -v nats-server >/dev/null 2>&1 && \
	    command -v iox-roudi >/dev/null 2>&1 && \
	    test -d /usr/include/iceoryx || \
	    sh scripts/install-deps.sh

$(call obj,scripts/bench/zmqbench.c): XCFLAGS += $(ZMQ_CFLAGS)
$(call obj,scripts/bench/zmqbench.c): | bench-deps

$(call obj,scripts/bench/natsbench.c): XCFLAGS += $(NATS_CFLAGS)
$(call obj,scripts/bench/natsbench.c): | bench-deps

# Recursive on purpose: the headers exist once bench-deps has run.
$(call obj,scripts/bench/ioxbench.c): XCFLAGS += $(IOX_CFLAGS)
$(call obj,scripts/bench/ioxbench.c): | bench-deps

$(BENCH_BIN)/bench-iox: $(call obj,scripts/bench/ioxbench.c) $(BENCH_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(IOX_LIBS) $(DEP_LIBS) $(JSON_LIBS)

$(BENCH_BIN)/bench-nats: $(call obj,scripts/bench/natsbench.c) $(BENCH_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(NATS_LIBS) $(DEP_LIBS) $(JSON_LIBS)

$(BENCH_BIN)/bench-run: $(call obj,scripts/bench/run.c) $(BENCH_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(DEP_LIBS) $(JSON_LIBS)

$(BENCH_BIN)/bench-tcp: $(call obj,scripts/bench/tcpbench.c) $(BENCH_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(DEP_LIBS) $(JSON_LIBS)

$(BENCH_BIN)/bench-zmq: $(call obj,scripts/bench/zmqbench.c) $(BENCH_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(ZMQ_LIBS) $(DEP_LIBS) $(JSON_LIBS)

# The codec may pull in zlib (compression): link what the broker links.
$(BENCH_BIN)/bench-broker: $(call obj,scripts/bench/brokerbench.c) \
    $(BENCH_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(DEP_LIBS) $(JSON_LIBS)

# The cluster on a real etcd, against a standalone broker and etcd used
# directly through the broker's etcd client.
$(BENCH_BIN)/bench-cluster: $(call obj,scripts/bench/clusterbench.c \
    tests/etcdutil.c broker/etcd.c) $(BENCH_COMMON) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(JSON_LIBS) $(DEP_LIBS)
