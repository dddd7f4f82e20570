# lazyvm — plain Makefile.  Targets: all, check, chaos, demo, install, clean, fuzz, bench.
#   make CC=clang                       build with clang
#   make check SANITIZE=address,undefined   sanitizer build in its own directory
#   make check SANITIZE=thread
#   make install PREFIX=/usr/local
# New sources need no Makefile edit.  The folder says where a file goes:
#   src/{core,engine,source,snapshot,util}/*.c  liblazyvm (the public library;
#       built -fvisibility=hidden, exports exactly lazyvm.map)
#   src/vmm, src/migrate, src/fc, src/store+src/remote  internal static libraries
#       (libvmm.a, libmigrate.a, libfc.a, libstore.a) for tools/, tests/, bench/
#   tools/cmd-*.c and tools/lazyvm.c            the lazyvm CLI; other
#       tools/*.c are the CLI helpers (libcli.a)
#   each tests/*.c is one test program, each bench/*.c one benchmark, each
#   examples/*.c one example, each fuzz/*.c one libFuzzer target.

CC        ?= cc
PREFIX    ?= /usr/local
PKG_CONFIG ?= pkg-config
SANITIZE  ?=
V         ?= 0

ifeq ($(SANITIZE),)
BUILD     ?= build
else
BUILD     ?= build-$(subst $(comma),-,$(SANITIZE))
endif
comma := ,

CFLAGS    ?= -O2 -g
CFLAGS    += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers \
             -fPIC -pthread -D_GNU_SOURCE -Iinclude -Isrc -Iguests
LDFLAGS   += -pthread
LDLIBS    += -lm

ifneq ($(SANITIZE),)
CFLAGS    += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -O1
LDFLAGS   += -fsanitize=$(SANITIZE)
endif

# Optional: libzstd for compressed snapshot chunks.
HAVE_ZSTD := $(shell $(PKG_CONFIG) --exists libzstd 2>/dev/null && echo 1)
ifeq ($(HAVE_ZSTD),1)
CFLAGS    += -DLVM_HAVE_ZSTD $(shell $(PKG_CONFIG) --cflags libzstd)
LDLIBS    += $(shell $(PKG_CONFIG) --libs libzstd)
endif

# Optional: libcurl for snapshots in S3-compatible object storage (src/remote/).
HAVE_CURL := $(shell $(PKG_CONFIG) --exists libcurl 2>/dev/null && echo 1)
ifeq ($(HAVE_CURL),1)
CFLAGS    += -DLVM_HAVE_CURL $(shell $(PKG_CONFIG) --cflags libcurl)
LDLIBS    += $(shell $(PKG_CONFIG) --libs libcurl)
endif

# Objects depend on the compiler and the flags: a build directory made
# before an optional library was installed is rebuilt with it, never left
# half with it (the tests) and half without (the CLI).
FLAGS_STAMP := $(BUILD)/.flags
FLAGS_NOW   := $(CC) $(CFLAGS) $(LDLIBS)
$(shell mkdir -p $(BUILD) && [ "$$(cat $(FLAGS_STAMP) 2>/dev/null)" = '$(FLAGS_NOW)' ] || \
	printf '%s' '$(FLAGS_NOW)' > $(FLAGS_STAMP))

ifeq ($(V),0)
Q := @
else
Q :=
endif

LIB_DIRS   := core engine source snapshot util
LIB_SRCS   := $(sort $(foreach d,$(LIB_DIRS),$(wildcard src/$(d)/*.c)))
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
VMM_SRCS   := $(sort $(wildcard src/vmm/*.c))
VMM_ASM    := $(sort $(wildcard src/vmm/*.S))
VMM_OBJS   := $(VMM_SRCS:%.c=$(BUILD)/%.o) $(VMM_ASM:%.S=$(BUILD)/%.o)
MIG_OBJS   := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard src/migrate/*.c)))
FC_OBJS    := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard src/fc/*.c)))
STORE_SRCS := $(sort $(wildcard src/store/*.c))
STORE_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(STORE_SRCS) $(sort $(wildcard src/remote/*.c)))
CLI_MAIN   := tools/lazyvm.c $(sort $(wildcard tools/cmd-*.c))
CLIH_SRCS  := $(filter-out $(CLI_MAIN),$(sort $(wildcard tools/*.c)))
CLIH_OBJS  := $(CLIH_SRCS:%.c=$(BUILD)/%.o)
TOOL_OBJS  := $(CLI_MAIN:%.c=$(BUILD)/%.o)
TEST_SRCS  := $(sort $(wildcard tests/*.c))
TESTS      := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
CHAOS_SRCS := $(sort $(wildcard chaos/*.c))
CHAOS      := $(CHAOS_SRCS:chaos/%.c=$(BUILD)/chaos/%)
BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCHES    := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
EXAMPLES   := $(EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)
FUZZ_SRCS  := $(sort $(wildcard fuzz/*.c))

LIB_A      := $(BUILD)/liblazyvm.a
LIB_SO     := $(BUILD)/liblazyvm.so
VMM_A      := $(BUILD)/libvmm.a
MIG_A      := $(BUILD)/libmigrate.a
FC_A       := $(BUILD)/libfc.a
STORE_A    := $(BUILD)/libstore.a
CLIH_A     := $(BUILD)/libcli.a
CLI        := $(BUILD)/lazyvm
# Everything a tool, test or bench program may link: the internal libraries
# (in any order: one group) over the public one.
INTERNAL_LIBS := -Wl,--start-group $(CLIH_A) $(MIG_A) $(VMM_A) $(FC_A) $(STORE_A) $(LIB_A) -Wl,--end-group
INTERNAL_DEPS := $(CLIH_A) $(MIG_A) $(VMM_A) $(FC_A) $(STORE_A) $(LIB_A)

.PHONY: all check chaos demo install clean fuzz bench check-gmem
all: $(LIB_A) $(LIB_SO) $(CLI) $(TESTS) $(CHAOS) $(BENCHES) $(EXAMPLES) $(BUILD)/lazyvm.pc

# Guest images (freestanding) are built by guests/guests.mk and embedded in
# libvmm.a; it defines GUEST_BINS and the rules for them.
-include guests/guests.mk

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  CC      $<" || true
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/%.o: %.S $(GUEST_BINS) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  AS      $<" || true
	$(Q)$(CC) $(CFLAGS) -DBUILD_DIR='"$(BUILD)"' -c -o $@ $<

# --no-undefined catches a library that needs the internal ones; not with a
# sanitizer, whose runtime the executable brings, not the .so.
# The public library: hidden by default, and the version script is the
# export list (a symbol not in lazyvm.map is local even if LVM_EXPORT).
$(LIB_OBJS): CFLAGS += -fvisibility=hidden

$(LIB_A): $(LIB_OBJS)
	@[ "$(V)" = 0 ] && echo "  AR      $@" || true
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(LIB_OBJS) lazyvm.map
	@[ "$(V)" = 0 ] && echo "  LD      $@" || true
	$(Q)$(CC) -shared $(LDFLAGS) -Wl,-soname,liblazyvm.so.0 -Wl,--version-script=lazyvm.map \
	  $(if $(SANITIZE),,-Wl,--no-undefined) -o $@ $(LIB_OBJS) $(LDLIBS)
	$(Q)ln -sf liblazyvm.so $(BUILD)/liblazyvm.so.0	# the soname, for programs run from the tree

$(VMM_A): $(VMM_OBJS)
$(MIG_A): $(MIG_OBJS)
$(FC_A): $(FC_OBJS)
$(STORE_A): $(STORE_OBJS)
$(CLIH_A): $(CLIH_OBJS)
$(VMM_A) $(MIG_A) $(FC_A) $(STORE_A) $(CLIH_A):
	@[ "$(V)" = 0 ] && echo "  AR      $@" || true
	$(Q)rm -f $@ && ar rcs $@ $^

$(CLI): $(TOOL_OBJS) $(INTERNAL_DEPS)
	@[ "$(V)" = 0 ] && echo "  LD      $@" || true
	$(Q)$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJS) $(INTERNAL_LIBS) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(INTERNAL_DEPS)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(INTERNAL_LIBS) $(LDLIBS)

# Chaos programs are TAP programs too, built on the tests' helpers.
$(BUILD)/chaos/%.o: CFLAGS += -Itests
$(BUILD)/chaos/%: $(BUILD)/chaos/%.o $(INTERNAL_DEPS)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(INTERNAL_LIBS) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(INTERNAL_DEPS)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(INTERNAL_LIBS) $(LDLIBS)

# Examples use the public API only: the installed header and liblazyvm.so.
$(BUILD)/examples/%: examples/%.c include/lazyvm.h $(LIB_SO)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  EXAMPLE $@" || true
	$(Q)$(CC) -std=gnu11 -Wall -Wextra -Werror -O2 -g -pthread -Iinclude $(filter -fsanitize=%,$(CFLAGS)) \
	  -o $@ $< $(LDFLAGS) -L$(BUILD) -Wl,-rpath,$(abspath $(BUILD)) -llazyvm

# The .pc is written again at install time: PREFIX may differ from the build's.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|0.1.0|' \
	     -e 's|@LIBS_PRIVATE@|$(strip $(LDLIBS))|'
$(BUILD)/lazyvm.pc: lazyvm.pc.in
	$(Q)$(PC_SED) $< > $@

# Tests find the CLI and build tree through these variables.  Each program
# runs under tests/run-test.sh (a timeout naming the program that hung) and
# arms the watchdog of tests/tap.h, scaled for the slower sanitizer builds.
WATCHDOG_SCALE ?= $(if $(SANITIZE),4,1)
TEST_TIMEOUT   ?= $(shell echo $$((1200 * $(WATCHDOG_SCALE))))
# make check TESTS_ONLY="a b": only those programs (CI's TSan step).
TESTS_ONLY ?=
CHECK_PROGRAMS = $(if $(strip $(TESTS_ONLY)),$(TESTS_ONLY:%=$(BUILD)/tests/%),$(TESTS))
check: all
	LAZYVM=$(abspath $(CLI)) LAZYVM_BUILD=$(abspath $(BUILD)) \
	  LAZYVM_WATCHDOG_SCALE=$(WATCHDOG_SCALE) LAZYVM_TEST_TIMEOUT=$(TEST_TIMEOUT) \
	  TSAN_OPTIONS="suppressions=$(abspath tests/tsan.supp) $$TSAN_OPTIONS" \
	  prove -v -f --exec 'sh tests/run-test.sh' $(CHECK_PROGRAMS)

# Chaos (chaos/*.c), bounded in time: CHAOS_N seeded runs where a program
# repeats (link cuts, source kills), CHAOS_SECONDS per storm, CHAOS_SEED.
# Each program prints its counts; CI runs a small CHAOS_N.
CHAOS_N       ?= 50
CHAOS_SECONDS ?= 5
CHAOS_SEED    ?= 1
chaos: all
	LAZYVM=$(abspath $(CLI)) LAZYVM_BUILD=$(abspath $(BUILD)) \
	  LAZYVM_WATCHDOG_SCALE=$(WATCHDOG_SCALE) LAZYVM_TEST_TIMEOUT=$(TEST_TIMEOUT) \
	  CHAOS_N=$(CHAOS_N) CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_SEED=$(CHAOS_SEED) \
	  TSAN_OPTIONS="suppressions=$(abspath tests/tsan.supp) $$TSAN_OPTIONS" \
	  prove -v -f --exec 'sh tests/run-test.sh' $(CHAOS)

demo: all
	@LAZYVM=$(abspath $(CLI)) sh tools/demo.sh

bench: all
	@echo "benchmarks built in $(BUILD)/bench/; run them one by one (see bench/README.md)"

# The library's C sources are compiled once with the fuzzer's instrumentation
# (into $(BUILD)/fuzz-obj, so `make -j2 fuzz` builds them in parallel) and
# linked into every target; the assembly (the embedded guest images) is
# linked as built.
FUZZ_C_SRCS := $(LIB_SRCS) $(VMM_SRCS) $(MIG_OBJS:$(BUILD)/%.o=%.c) $(FC_OBJS:$(BUILD)/%.o=%.c) \
	       $(STORE_SRCS) $(wildcard src/remote/*.c)
FUZZ_OBJS   := $(FUZZ_C_SRCS:%.c=$(BUILD)/fuzz-obj/%.o)
FUZZ_BINS   := $(FUZZ_SRCS:fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude -Isrc -Iguests -DLVM_FUZZING \
	       $(if $(HAVE_ZSTD),-DLVM_HAVE_ZSTD)
LIB_ASM_OBJS := $(VMM_ASM:%.S=$(BUILD)/%.o)
fuzz: $(FUZZ_BINS)
.PRECIOUS: $(BUILD)/fuzz-obj/%.o

$(BUILD)/fuzz-obj/%.o: %.c
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  FUZZCC  $<" || true
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c -o $@ $<

$(BUILD)/fuzz/%: fuzz/%.c $(FUZZ_OBJS) $(LIB_ASM_OBJS)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  FUZZ    $*" || true
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_OBJS) \
	  $(LIB_ASM_OBJS) -pthread -lm $(if $(HAVE_ZSTD),-lzstd)

check-gmem: all
	sh tools/check-gmem.sh $(abspath $(BUILD))

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man3 \
	  $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 755 $(CLI) $(DESTDIR)$(PREFIX)/bin/lazyvm
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/liblazyvm.so.0
	ln -sf liblazyvm.so.0 $(DESTDIR)$(PREFIX)/lib/liblazyvm.so
	install -m 644 include/lazyvm.h $(DESTDIR)$(PREFIX)/include/
	$(PC_SED) lazyvm.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/lazyvm.pc
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/*.3 $(DESTDIR)$(PREFIX)/share/man/man3/
	install -m 644 man/*.7 $(DESTDIR)$(PREFIX)/share/man/man7/

clean:
	rm -rf build build-*

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
