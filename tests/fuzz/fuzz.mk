# fuzz.mk - libFuzzer targets for the wire codec, the stream framer, the
# data-plane reader, bounded zlib and the text parsers; see tests/fuzz/README.md.  Included by
# the top-level Makefile, whose variables it uses ($(B), $(CC), $(XCFLAGS),
# $(WFLAGS), $(DEP_CFLAGS), $(DEP_LIBS), $(call obj), the "deps"
# prerequisite).
#
#   make fuzz                      each target FUZZ_SECONDS (60) seconds
#   make fuzz FUZZ_SECONDS=600     longer
#   make fuzz-build                only build the targets
#   make fuzz-corpus               write tests/fuzz/corpus/ again
#
# The targets are built with clang -fsanitize=fuzzer,address,undefined in
# $(B)/fuzz/ (objects of their own: the flags differ from the normal
# build), and run one after another; a crash, leak, timeout or out-of-memory
# fails the run.  New corpus entries go to $(B)/fuzz/corpus/TARGET/,
# crashing inputs to $(B)/fuzz/artifacts/TARGET/; the source tree is only
# read.  A finding is minimized and kept in tests/fuzz/regress/TARGET/.
#
# "make check" runs $(B)/tests/test_fuzz_replay: the same target code,
# built with $(CC) and without libFuzzer, over every seed and every finding.

FUZZ_SECONDS	?= 60
FUZZ_CC		?= clang
FUZZ_TARGETS	= fuzz_frame fuzz_broker fuzz_reader fuzz_zframe fuzz_parse \
		  fuzz_framer
FUZZ_DIR	= $(B)/fuzz
FUZZ_BINS	= $(FUZZ_TARGETS:%=$(FUZZ_DIR)/bin/%)
FUZZ_RUNS	= $(FUZZ_TARGETS:%=fuzz-run-%)

# Largest input per target.  The reader's covers a whole message of its
# max_message (64 KiB) with its header; the rest are small by nature.
FUZZ_LEN_fuzz_frame	= 16384
FUZZ_LEN_fuzz_broker	= 4096
FUZZ_LEN_fuzz_reader	= 70000
FUZZ_LEN_fuzz_zframe	= 16384
FUZZ_LEN_fuzz_parse	= 1024
FUZZ_LEN_fuzz_framer	= 70000
# Seconds one input may take: everything here is linear in its input.
FUZZ_TIMEOUT	?= 10
FUZZ_FLAGS	?=

FUZZ_SAN	= -fsanitize=address,undefined -fno-sanitize-recover=all \
		  -fno-omit-frame-pointer
# clang does not know GCC's -Wformat-truncation.
FUZZ_XCFLAGS	= $(WFLAGS) -Wno-unknown-warning-option -D_GNU_SOURCE \
		  $(DEP_CFLAGS) -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link

# Code under test, and the oracle the targets share.
FUZZ_LIB_SRC	= proto/wire.c proto/wire_dec.c proto/addr.c proto/zframe.c \
		  proto/frame.c \
		  libclient/reader.c common/tls.c tests/fuzz/msg.c
FUZZ_LIB_OBJ	= $(FUZZ_LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)

.PHONY: fuzz fuzz-build fuzz-corpus $(FUZZ_RUNS)

fuzz: $(FUZZ_RUNS)

fuzz-build: $(FUZZ_BINS)

$(FUZZ_DIR)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_XCFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BINS): $(FUZZ_DIR)/bin/%: $(FUZZ_DIR)/obj/tests/fuzz/%.o \
    $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(DEP_LIBS)

# One target at a time (also under make -j), each on its seeds, its
# findings and what earlier runs found.  libFuzzer writes new inputs into
# the first corpus directory only.
$(FUZZ_RUNS): fuzz-run-%: $(FUZZ_BINS)
	@mkdir -p $(FUZZ_DIR)/corpus/$* $(FUZZ_DIR)/artifacts/$*
	@echo "=== $*: $(FUZZ_SECONDS) s"
	UBSAN_OPTIONS=print_stacktrace=1 $(FUZZ_DIR)/bin/$* \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_LEN_$*) \
	    -timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_DIR)/artifacts/$*/ $(FUZZ_FLAGS) \
	    $(FUZZ_DIR)/corpus/$* tests/fuzz/corpus/$* \
	    $(wildcard tests/fuzz/regress/$*)
fuzz-run-fuzz_broker: | fuzz-run-fuzz_frame
fuzz-run-fuzz_reader: | fuzz-run-fuzz_broker
fuzz-run-fuzz_zframe: | fuzz-run-fuzz_reader
fuzz-run-fuzz_parse: | fuzz-run-fuzz_zframe
fuzz-run-fuzz_framer: | fuzz-run-fuzz_parse

# The seed corpus is generated, so that it can be reviewed and made again.
$(FUZZ_DIR)/gen_corpus: $(call obj,tests/fuzz/gen_corpus.c) \
    $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(DEP_LIBS)

fuzz-corpus: $(FUZZ_DIR)/gen_corpus
	rm -rf tests/fuzz/corpus
	$(FUZZ_DIR)/gen_corpus tests/fuzz/corpus

# ---- The replay test -------------------------------------------------------

FUZZ_REPLAY	= $(B)/tests/test_fuzz_replay
FUZZ_REPLAY_OBJ	= $(FUZZ_TARGETS:%=$(B)/obj/tests/fuzz/replay/%.o)
EXTRA_TESTS	+= $(FUZZ_REPLAY)

# "check" lists $(TESTS) before this file adds to it.
check: $(FUZZ_REPLAY)

# Each target once more, its entry point renamed so that all link into one
# program.
$(B)/obj/tests/fuzz/replay/%.o: tests/fuzz/%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -DLLVMFuzzerTestOneInput=$*_one -MMD -MP -c $< -o $@

$(FUZZ_REPLAY): $(call obj,tests/fuzz/replay.c tests/fuzz/msg.c) \
    $(FUZZ_REPLAY_OBJ) $(call obj,libclient/reader.c common/tls.c) \
    $(B)/lib/libsipcproto.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(DEP_LIBS)

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
