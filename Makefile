# sipc - events between processes.  GNU make.
#
#   make            build everything into build/
#   make check      build and run the tests
#   make demo       the main job, end to end
#   make bench      benchmarks against ZeroMQ and plain TCP
#   make install    PREFIX=/usr/local DESTDIR=
#
# Missing build dependencies are installed by scripts/install-deps.sh the
# first time pkg-config cannot find one.

VERSION		= 0.2.0
SOVERSION	= 2
SOMINOR		= 0

PREFIX		?= /usr/local
BINDIR		?= $(PREFIX)/bin
SBINDIR		?= $(PREFIX)/sbin
LIBDIR		?= $(PREFIX)/lib
INCLUDEDIR	?= $(PREFIX)/include
DESTDIR		?=

CC		?= cc
LD		?= ld
OBJCOPY		?= objcopy
CFLAGS		?= -O2 -g
B		:= build

PKGS		= libevent libevent_pthreads libevent_openssl openssl zlib
# json-c: every JSON sipc writes or reads (broker and its etcd client,
# brokerctl, sipc bench, make bench); never linked into libsipc.  Headers
# as <json-c/json.h>.
JSON_PKGS	= json-c
# Recursive (=) on purpose: expanded when a recipe runs, after "deps".
DEP_CFLAGS	= $(shell pkg-config --cflags $(PKGS) $(JSON_PKGS))
DEP_LIBS	= $(shell pkg-config --libs $(PKGS)) -lpthread
JSON_LIBS	= $(shell pkg-config --libs $(JSON_PKGS))
CHECK_CFLAGS	= $(shell pkg-config --cflags check)
CHECK_LIBS	= $(shell pkg-config --libs check)

# snprintf() truncating is how every message here is bounded, on purpose;
# GCC's -Wformat-truncation guesses about it are noise.
WFLAGS		= -std=c11 -Wall -Wextra -Werror -Wshadow -Wpointer-arith \
		  -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
		  -Wno-format-truncation
XCFLAGS		= $(WFLAGS) -D_GNU_SOURCE -DSIPC_VERSION=\"$(VERSION)\" \
		  $(DEP_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(SANITIZE)

# ---- sources ----------------------------------------------------------------

PROTO_SRC	= proto/wire.c proto/wire_dec.c proto/addr.c proto/zframe.c \
		  proto/frame.c
# What libsipc, sipc-epmd and brokerctl all use: TLS set-up, clocks, the
# framer over libevent buffers.
COMMON_SRC	= common/tls.c common/clock.c common/evframe.c \
		  common/liveness.c
# JSON shaped with json-c: sipc-epmd's /v1, brokerctl, the benchmarks.
JSON_SRC	= common/jsonout.c
BROKER_SRC	= broker/main.c broker/config.c broker/listen.c \
		  broker/session.c broker/dispatch.c broker/registry.c \
		  broker/log.c broker/metrics.c broker/etcd.c \
		  broker/cluster.c broker/monitor.c broker/monitor_page.c \
		  $(COMMON_SRC) $(JSON_SRC)
CTL_SRC		= tools/brokerctl/brokerctl.c tools/brokerctl/ctlconn.c \
		  tools/brokerctl/ctlcluster.c $(COMMON_SRC) $(JSON_SRC)
LIB_SRC		= libclient/error.c libclient/util.c libclient/loop.c \
		  libclient/epm.c libclient/epm_broker.c libclient/epm_local.c \
		  libclient/listen_tcp.c \
		  libclient/sender.c libclient/sender_msgs.c \
		  libclient/sender_conn.c libclient/sender_watch.c \
		  libclient/sender_shm.c libclient/receiver.c libclient/receiver_shm.c \
		  libclient/receiver_conn.c libclient/responder.c libclient/pull.c \
		  libclient/requester.c libclient/requester_api.c \
		  libclient/req_conn.c libclient/xport.c \
		  libclient/reader.c libclient/security.c libclient/shm.c \
		  $(COMMON_SRC)
CLI_SRC		= tools/sipc/sipc.c tools/sipc/opts.c tools/sipc/rpc.c \
		  tools/sipc/bench.c \
		  tools/sipc/bench_util.c tools/sipc/bench_serve.c \
		  tools/sipc/bench_run.c tools/sipc/bench_cases.c \
		  tools/sipc/bench_rpc.c $(JSON_SRC)

obj		= $(patsubst %.c,$(B)/obj/%.o,$(1))

pic		= $(patsubst %.c,$(B)/pic/%.o,$(1))

PROTO_OBJ	= $(call obj,$(PROTO_SRC))
LIB_OBJ		= $(call pic,$(PROTO_SRC) $(LIB_SRC))
CLI_OBJ		= $(call obj,$(CLI_SRC))
LIBSIPC_A	= $(B)/lib/libsipc.a
LIBSIPC_SO	= $(B)/lib/libsipc.so.$(SOVERSION).$(SOMINOR)
BROKER_OBJ	= $(call obj,$(BROKER_SRC))
CTL_OBJ		= $(call obj,$(CTL_SRC))

BINS		= $(B)/bin/sipc-epmd $(B)/bin/brokerctl $(B)/bin/sipc \
		  $(B)/bin/sipc-example-receiver $(B)/bin/sipc-example-sender \
		  $(B)/bin/sipc-example-eventloop

TEST_UNIT	= $(B)/tests/test_wire $(B)/tests/test_registry \
		  $(B)/tests/test_liveness $(B)/tests/test_jsonout
TEST_INTEG	= $(B)/tests/test_broker $(B)/tests/test_client \
		  $(B)/tests/test_security $(B)/tests/test_faults \
		  $(B)/tests/test_dataconn $(B)/tests/test_rpc \
		  $(B)/tests/test_shm $(B)/tests/test_pull $(B)/tests/test_python \
		  $(B)/tests/test_direct \
		  $(B)/tests/test_etcd $(B)/tests/test_cluster
# Golden files for sipc-epmd --check-config (a script, no build needed).
TEST_SCRIPTS	= tests/config/golden.sh tests/integration/socket_path.sh
# The status page in a real browser, the /v1 endpoints and every --json.
TEST_SCRIPTS	+= tests/integration/test_monitor.py
# The included makefiles add their own test programs to EXTRA_TESTS.
TESTS		= $(TEST_UNIT) $(TEST_INTEG) $(TEST_SCRIPTS) $(EXTRA_TESTS)
# The process, broker and I/O helpers that tests and benchmarks share;
# the clocks are common/clock.c's (libsipc.a keeps its copy to itself).
HARNESS_OBJ	= $(call obj,tests/harness.c common/clock.c)
# testutil's raw protocol client uses proto/ directly: libsipc.a keeps
# its own copy to itself (see libsipc.a below), so tests link both.
TESTUTIL_OBJ	= $(call obj,tests/testutil.c) $(HARNESS_OBJ)

.PHONY: all deps check check-asan check-tsan tsan-run demo bench install uninstall clean
.DEFAULT_GOAL := all

all: $(BINS) $(LIBSIPC_A) $(LIBSIPC_SO)

deps:
	@pkg-config --exists $(PKGS) $(JSON_PKGS) check 2>/dev/null || \
	    sh scripts/install-deps.sh

$(B)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -MMD -MP -c $< -o $@

$(B)/obj/tests/%.o: tests/%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(CHECK_CFLAGS) -Wno-missing-prototypes -MMD -MP \
	    -c $< -o $@

$(B)/pic/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -fPIC -MMD -MP -c $< -o $@

# libsipc.a holds one object, partially linked (ld -r) from the library's,
# in which objcopy leaves only sipc_* global: a program that links sipc
# statically never meets an internal name (its own loop_init, seterr...
# stay its own).  libsipc.so gets the same from libclient/sipc.map.
$(LIBSIPC_A): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(LD) -r -o $(B)/lib/libsipc-r.o $(LIB_OBJ)
	$(OBJCOPY) --wildcard --keep-global-symbol='sipc_*' \
	    $(B)/lib/libsipc-r.o $(B)/lib/libsipc.o
	rm -f $@ $(B)/lib/libsipc-r.o && ar rcs $@ $(B)/lib/libsipc.o

$(LIBSIPC_SO): $(LIB_OBJ) libclient/sipc.map
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -shared -o $@ $(LIB_OBJ) \
	    -Wl,-soname,libsipc.so.$(SOVERSION) \
	    -Wl,--version-script=libclient/sipc.map $(DEP_LIBS)
	ln -sf libsipc.so.$(SOVERSION).$(SOMINOR) $(B)/lib/libsipc.so.$(SOVERSION)
	ln -sf libsipc.so.$(SOVERSION) $(B)/lib/libsipc.so

# jsonout.o takes what it uses of proto/ from libsipcproto.a (libsipc.a
# keeps its own copy to itself).
$(B)/bin/sipc: $(CLI_OBJ) $(LIBSIPC_A) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) $(JSON_LIBS)

$(B)/obj/libclient/examples/%.o: libclient/examples/%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -Ilibclient/include -MMD -MP -c $< -o $@

$(B)/bin/sipc-example-%: $(B)/obj/libclient/examples/%.o $(LIBSIPC_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(B)/lib/libsipcproto.a: $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/bin/sipc-epmd: $(BROKER_OBJ) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) $(JSON_LIBS)

$(B)/bin/brokerctl: $(CTL_OBJ) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) $(JSON_LIBS)

# ---- tests ------------------------------------------------------------------

# The data connection's reader (libclient/reader.c) uses proto/ only.
$(B)/tests/test_wire: $(call obj,tests/unit/test_wire.c) \
    $(call obj,libclient/reader.c) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(B)/tests/test_registry: $(call obj,tests/unit/test_registry.c) \
    $(B)/obj/broker/registry.o $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(B)/tests/test_liveness: $(call obj,tests/unit/test_liveness.c) \
    $(call obj,common/liveness.c common/clock.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

# jsonout.c alone: hostile strings in, JSON that json-c parses back out.
$(B)/tests/test_jsonout: $(call obj,tests/unit/test_jsonout.c \
    common/jsonout.c) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) \
	    $(JSON_LIBS) $(DEP_LIBS)

$(B)/tests/test_broker: $(call obj,tests/integration/test_broker.c) \
    $(TESTUTIL_OBJ) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(B)/tests/test_client: $(call obj,tests/integration/test_client.c) \
    $(TESTUTIL_OBJ) $(LIBSIPC_A) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(B)/tests/test_security: $(call obj,tests/integration/test_security.c) \
    $(TESTUTIL_OBJ) $(LIBSIPC_A) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(B)/tests/test_faults: $(call obj,tests/integration/test_faults.c) \
    $(TESTUTIL_OBJ) $(LIBSIPC_A) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(B)/tests/test_dataconn: $(call obj,tests/integration/test_dataconn.c) \
    $(TESTUTIL_OBJ) $(LIBSIPC_A) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(B)/tests/test_rpc: $(call obj,tests/integration/test_rpc.c) \
    $(TESTUTIL_OBJ) $(LIBSIPC_A) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(B)/tests/test_shm: $(call obj,tests/integration/test_shm.c) \
    $(TESTUTIL_OBJ) $(LIBSIPC_A) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(B)/tests/test_direct: $(call obj,tests/integration/test_direct.c) \
    $(TESTUTIL_OBJ) $(LIBSIPC_A) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

# The etcd client alone, against real etcd processes and a bad server.
$(B)/tests/test_etcd: $(call obj,tests/integration/test_etcd.c \
    tests/etcdutil.c broker/etcd.c) $(TESTUTIL_OBJ) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) \
	    $(JSON_LIBS) $(DEP_LIBS)

# Brokers clustered on etcd, with clients that fail over.
$(B)/tests/test_cluster: $(call obj,tests/integration/test_cluster.c \
    tests/etcdutil.c) $(TESTUTIL_OBJ) $(LIBSIPC_A) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(B)/tests/test_pull: $(call obj,tests/integration/test_pull.c) \
    $(TESTUTIL_OBJ) $(LIBSIPC_A) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

# The Python package's tests (pytest), on the shared library.
$(B)/tests/test_python: bindings/python/tests/run.sh Makefile
	@mkdir -p $(dir $@)
	@{ echo '#!/bin/sh'; \
	   echo '# Generated by the Makefile: runs $<.'; \
	   echo "SIPC_SRC='$(CURDIR)'; export SIPC_SRC"; \
	   echo 'exec sh "$$SIPC_SRC/$<" "$$@"'; } >$@
	@chmod 0755 $@

check: all $(TESTS)
	@SIPC_BUILD=$(CURDIR)/$(B) SIPC_SRC=$(CURDIR) \
	    SIPC_PROTOCOL_MD=$(CURDIR)/proto/PROTOCOL.md \
	    SIPC_SANITIZE="$(SANITIZE)" sh tests/run.sh $(TESTS)

# Everything again with AddressSanitizer and UndefinedBehaviorSanitizer,
# in a build directory of its own.
ASAN_FLAGS	= -fsanitize=address,undefined -fno-sanitize-recover=all \
		  -fno-omit-frame-pointer
check-asan:
	@$(MAKE) --no-print-directory B=build/asan CFLAGS="-O1 -g" \
	    SANITIZE="$(ASAN_FLAGS)" check
	@$(MAKE) --no-print-directory check-tsan

# The threaded cases (request/reply: 5,000 client threads, answers from
# other threads, cancel racing replies; shared memory; pull mode: queues
# filled on the I/O thread, emptied on others; direct sends from several
# threads racing the I/O thread) with ThreadSanitizer.
TSAN_TESTS	= $(B)/tests/test_rpc $(B)/tests/test_shm $(B)/tests/test_pull \
		  $(B)/tests/test_direct
check-tsan:
	@$(MAKE) --no-print-directory B=build/tsan CFLAGS="-O1 -g" \
	    SANITIZE="-fsanitize=thread" tsan-run

tsan-run: all $(TSAN_TESTS)
	@SIPC_BUILD=$(CURDIR)/$(B) SIPC_SRC=$(CURDIR) \
	    SIPC_SANITIZE="$(SANITIZE)" TSAN_OPTIONS="exitcode=66" \
	    sh tests/run.sh $(TSAN_TESTS)

demo: all
	@sh scripts/demo.sh $(B)

clean:
	rm -rf $(B)

# Parts with makefiles of their own: benchmarks (bench), packaging
# (install, uninstall, deb), fuzzing (fuzz).
include scripts/bench.mk
include packaging/packaging.mk
include tests/fuzz/fuzz.mk

-include $(shell find $(B)/obj $(B)/pic -name '*.d' 2>/dev/null)
