# lazyvm — plain Makefile.  Targets: all, check, demo, install, clean, fuzz, bench.
#   make CC=clang                       build with clang
#   make check SANITIZE=address,undefined   sanitizer build in its own directory
#   make check SANITIZE=thread
#   make install PREFIX=/usr/local
# New sources need no Makefile edit: src/*.c and src/vmm/*.c go into liblazyvm,
# tools/*.c into the lazyvm CLI, each tests/*.c is one test program, each
# bench/*.c one benchmark, each fuzz/*.c one libFuzzer target.

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
             -fPIC -pthread -D_GNU_SOURCE -Iinclude -Isrc
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

ifeq ($(V),0)
Q := @
else
Q :=
endif

LIB_SRCS   := $(sort $(wildcard src/*.c src/vmm/*.c))
LIB_ASM    := $(sort $(wildcard src/*.S src/vmm/*.S))
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(LIB_ASM:%.S=$(BUILD)/%.o)
TOOL_SRCS  := $(sort $(wildcard tools/*.c))
TOOL_OBJS  := $(TOOL_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS  := $(sort $(wildcard tests/*.c))
TESTS      := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCHES    := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
FUZZ_SRCS  := $(sort $(wildcard fuzz/*.c))

LIB_A      := $(BUILD)/liblazyvm.a
LIB_SO     := $(BUILD)/liblazyvm.so
CLI        := $(BUILD)/lazyvm

.PHONY: all check demo install clean fuzz bench check-gmem
all: $(LIB_A) $(LIB_SO) $(CLI) $(TESTS) $(BENCHES) $(BUILD)/lazyvm.pc

# Guest images (freestanding) are built by guests/guests.mk and embedded in
# the library; it defines GUEST_BINS and the rules for them.
-include guests/guests.mk

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  CC      $<" || true
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/%.o: %.S $(GUEST_BINS)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  AS      $<" || true
	$(Q)$(CC) $(CFLAGS) -DBUILD_DIR='"$(BUILD)"' -c -o $@ $<

$(LIB_A): $(LIB_OBJS)
	@[ "$(V)" = 0 ] && echo "  AR      $@" || true
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(LIB_OBJS)
	@[ "$(V)" = 0 ] && echo "  LD      $@" || true
	$(Q)$(CC) -shared $(LDFLAGS) -Wl,-soname,liblazyvm.so.0 -o $@ $^ $(LDLIBS)

$(CLI): $(TOOL_OBJS) $(LIB_A)
	@[ "$(V)" = 0 ] && echo "  LD      $@" || true
	$(Q)$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJS) $(LIB_A) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB_A)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB_A)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS)

# The .pc is written again at install time: PREFIX may differ from the build's.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|0.1.0|' \
	     -e 's|@LIBS_PRIVATE@|$(strip $(LDLIBS))|'
$(BUILD)/lazyvm.pc: lazyvm.pc.in
	$(Q)$(PC_SED) $< > $@

# Tests find the CLI and build tree through these variables.
check: all
	LAZYVM=$(abspath $(CLI)) LAZYVM_BUILD=$(abspath $(BUILD)) \
	  TSAN_OPTIONS="suppressions=$(abspath tests/tsan.supp) $$TSAN_OPTIONS" \
	  prove -v -f --exec '' $(TESTS)

demo: all
	@LAZYVM=$(abspath $(CLI)) sh tools/demo.sh

bench: all
	@echo "benchmarks built in $(BUILD)/bench/; run them one by one (see bench/README.md)"

# The library's C sources are recompiled with the fuzzer's instrumentation;
# its assembly (the embedded guest images) is linked as built.
LIB_ASM_OBJS := $(LIB_ASM:%.S=$(BUILD)/%.o)
fuzz: $(LIB_ASM_OBJS)
	@mkdir -p $(BUILD)/fuzz
	$(Q)for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
	  echo "  FUZZ    $$n"; \
	  clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer,address,undefined \
	    -o $(BUILD)/fuzz/$$n $$f $(LIB_SRCS) $(LIB_ASM_OBJS) -pthread -lm $(if $(HAVE_ZSTD),-lzstd) \
	    $(if $(HAVE_ZSTD),-DLVM_HAVE_ZSTD) -DLVM_FUZZING || exit 1; done

check-gmem: all
	sh tools/check-gmem.sh $(abspath $(BUILD))

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man3
	install -m 755 $(CLI) $(DESTDIR)$(PREFIX)/bin/lazyvm
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/liblazyvm.so.0
	ln -sf liblazyvm.so.0 $(DESTDIR)$(PREFIX)/lib/liblazyvm.so
	install -m 644 include/lazyvm.h $(DESTDIR)$(PREFIX)/include/
	$(PC_SED) lazyvm.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/lazyvm.pc
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/*.3 $(DESTDIR)$(PREFIX)/share/man/man3/

clean:
	rm -rf build build-*

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
