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

VERSION		= 0.1.0
SOVERSION	= 1
SOMINOR		= 0

PREFIX		?= /usr/local
BINDIR		?= $(PREFIX)/bin
SBINDIR		?= $(PREFIX)/sbin
LIBDIR		?= $(PREFIX)/lib
INCLUDEDIR	?= $(PREFIX)/include
DESTDIR		?=

CC		?= cc
CFLAGS		?= -O2 -g
B		:= build

PKGS		= libevent libevent_pthreads libevent_openssl openssl zlib
# Recursive (=) on purpose: expanded when a recipe runs, after "deps".
DEP_CFLAGS	= $(shell pkg-config --cflags $(PKGS))
DEP_LIBS	= $(shell pkg-config --libs $(PKGS)) -lpthread
CHECK_CFLAGS	= $(shell pkg-config --cflags check)
CHECK_LIBS	= $(shell pkg-config --libs check)

WFLAGS		= -std=c11 -Wall -Wextra -Werror -Wshadow -Wpointer-arith \
		  -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
XCFLAGS		= $(WFLAGS) -D_GNU_SOURCE -DSIPC_VERSION=\"$(VERSION)\" \
		  $(DEP_CFLAGS) $(CFLAGS) $(SANITIZE)

# ---- sources ----------------------------------------------------------------

PROTO_SRC	= proto/wire.c proto/addr.c
BROKER_SRC	= broker/main.c broker/config.c broker/listen.c \
		  broker/session.c broker/dispatch.c broker/registry.c \
		  broker/log.c
CTL_SRC		= broker/brokerctl.c broker/ctlconn.c

obj		= $(patsubst %.c,$(B)/obj/%.o,$(1))

PROTO_OBJ	= $(call obj,$(PROTO_SRC))
BROKER_OBJ	= $(call obj,$(BROKER_SRC))
CTL_OBJ		= $(call obj,$(CTL_SRC))

BINS		= $(B)/bin/sipc-epmd $(B)/bin/brokerctl

TEST_UNIT	= $(B)/tests/test_wire $(B)/tests/test_registry
TEST_INTEG	= $(B)/tests/test_broker
TESTS		= $(TEST_UNIT) $(TEST_INTEG)
TESTUTIL_OBJ	= $(call obj,tests/testutil.c)

.PHONY: all deps check demo bench install uninstall clean
.DEFAULT_GOAL := all

all: $(BINS)

deps:
	@pkg-config --exists $(PKGS) check 2>/dev/null || \
	    sh scripts/install-deps.sh

$(B)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -MMD -MP -c $< -o $@

$(B)/obj/tests/%.o: tests/%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(CHECK_CFLAGS) -Wno-missing-prototypes -MMD -MP \
	    -c $< -o $@

$(B)/lib/libsipcproto.a: $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/bin/sipc-epmd: $(BROKER_OBJ) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(DEP_LIBS)

$(B)/bin/brokerctl: $(CTL_OBJ) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(DEP_LIBS)

# ---- tests ------------------------------------------------------------------

$(B)/tests/test_wire: $(call obj,tests/unit/test_wire.c) \
    $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(B)/tests/test_registry: $(call obj,tests/unit/test_registry.c) \
    $(B)/obj/broker/registry.o $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(B)/tests/test_broker: $(call obj,tests/integration/test_broker.c) \
    $(TESTUTIL_OBJ) $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

check: all $(TESTS)
	@SIPC_BUILD=$(CURDIR)/$(B) sh tests/run.sh $(TESTS)

clean:
	rm -rf $(B)

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
