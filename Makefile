# libkitd: client-side service discovery and load balancing for C.
# `make` builds the library, examples, the Consul double and the tests;
# `make check` (after installing what it needs) runs every test;
# `make demo` runs the lorem demo; `make bench` prints the benchmark figures.

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR ?=
CFLAGS ?= -O2 -g
SANITIZE ?=

VERSION_PART = $(shell sed -n 's/^\#define KITD_VERSION_$(1) \([0-9][0-9]*\).*/\1/p' include/kitd/version.h)
V_MAJOR := $(call VERSION_PART,MAJOR)
V_MINOR := $(call VERSION_PART,MINOR)
V_PATCH := $(call VERSION_PART,PATCH)
SOVERSION := $(shell sed -n 's/^\#define KITD_SOVERSION \([0-9][0-9]*\).*/\1/p' include/kitd/version.h)
VERSION := $(V_MAJOR).$(V_MINOR).$(V_PATCH)

comma := ,
# Sanitizer builds live in their own tree so they never mix with the plain one.
ifeq ($(SANITIZE),)
B := build
SAN_FLAGS :=
else
B := build/san-$(subst $(comma),-,$(SANITIZE))
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

PKGS := libcurl jansson
DEP_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEP_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lresolv -lpthread
MHD_LIBS := $(shell pkg-config --libs libmicrohttpd 2>/dev/null)
MHD_CFLAGS := $(shell pkg-config --cflags libmicrohttpd 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

KITD_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -Wall -Wextra -Werror \
  -Iinclude -Ilib -Iexamples $(DEP_CFLAGS) $(MHD_CFLAGS) $(SAN_FLAGS) -MMD -MP
ALL_CFLAGS = $(KITD_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)

LIB_SRC := $(shell find lib -name '*.c' | sort)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o)
SONAME := libkitd.so.$(SOVERSION)
SHLIB := $(B)/libkitd.so.$(VERSION)
STLIB := $(B)/libkitd.a

SUPPORT_SRC := $(wildcard tests/support/*.c)
SUPPORT_OBJ := $(SUPPORT_SRC:%.c=$(B)/obj/%.o)
UNIT_SRC := $(shell find tests/unit -name 'test_*.c' 2>/dev/null | sort)
UNIT_BIN := $(UNIT_SRC:%.c=$(B)/%)
INTEG_SRC := $(shell find tests/integration -name 'test_*.c' 2>/dev/null | sort)
INTEG_BIN := $(INTEG_SRC:%.c=$(B)/%)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst tests/fuzz/fuzz_%.c,$(B)/tests/fuzz/replay_%,$(FUZZ_SRC))
BENCH_BIN := $(BENCH_SRC:%.c=$(B)/%)
DOUBLE_SRC := $(wildcard tests/consul-double/*.c)
DOUBLE_OBJ := $(DOUBLE_SRC:%.c=$(B)/obj/%.o)
DOUBLE_BIN := $(if $(DOUBLE_SRC),$(B)/tests/consul-double)

# examples/<name>/main.c is a program; other example folders (lorem, common)
# are code the programs share.
EX_PROGS := $(patsubst examples/%/main.c,%,$(wildcard examples/*/main.c))
EX_SHARED_SRC := $(filter-out $(addprefix examples/,$(addsuffix /%,$(EX_PROGS))),$(wildcard examples/*/*.c))
EX_SHARED_OBJ := $(EX_SHARED_SRC:%.c=$(B)/obj/%.o)
EX_BIN := $(addprefix $(B)/examples/,$(EX_PROGS))
HEADERS := $(wildcard include/kitd/*.h)

.PHONY: soak all lib check check-run demo demo-run bench bench-run install uninstall clean deps fuzz valgrind sanitizers
all: lib $(DOUBLE_BIN) $(EX_BIN) $(UNIT_BIN) $(INTEG_BIN) $(BENCH_BIN) $(FUZZ_REPLAY)
lib: $(SHLIB) $(STLIB) $(B)/libkitd.pc

# Rebuild everything when the compiler or flags change (gcc vs clang, sanitizers).
$(B)/.flags: FORCE
	@mkdir -p $(B)
	@echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@
FORCE:

$(B)/obj/%.o: %.c $(B)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(SHLIB): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) $(if $(SANITIZE),,-Wl,--no-undefined) $(ALL_LDFLAGS) -o $@ $(LIB_OBJ) $(DEP_LIBS)
	ln -sf libkitd.so.$(VERSION) $(B)/$(SONAME)
	ln -sf $(SONAME) $(B)/libkitd.so

$(STLIB): $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJ)

$(B)/libkitd.pc: pkgconfig/libkitd.pc.in include/kitd/version.h
	@mkdir -p $(B)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

# Tests link the static library: they may reach internal (kitd__) symbols.
TEST_LIBS = $(STLIB) $(DEP_LIBS) $(MHD_LIBS) $(CMOCKA_LIBS) -lm
$(B)/tests/unit/%: $(B)/obj/tests/unit/%.o $(SUPPORT_OBJ) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(SUPPORT_OBJ) $(TEST_LIBS)
$(B)/tests/integration/%: $(B)/obj/tests/integration/%.o $(SUPPORT_OBJ) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(SUPPORT_OBJ) $(TEST_LIBS)
$(B)/tests/bench/%: $(B)/obj/tests/bench/%.o $(SUPPORT_OBJ) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(SUPPORT_OBJ) $(TEST_LIBS)

# The soak run (make soak): not part of check, it runs for a minute.
$(B)/tests/soak/%: $(B)/obj/tests/soak/%.o $(SUPPORT_OBJ) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(SUPPORT_OBJ) $(TEST_LIBS)

# Fuzz targets, replayed over their corpora by `make check` (no libFuzzer).
$(B)/tests/fuzz/replay_%: $(B)/obj/tests/fuzz/fuzz_%.o $(B)/obj/tests/fuzz/replay_main.o $(EX_SHARED_OBJ) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(TEST_LIBS)

# The Consul double stands alone: it never links libkitd.
$(B)/tests/consul-double: $(DOUBLE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(DOUBLE_OBJ) $(shell pkg-config --libs jansson 2>/dev/null) $(MHD_LIBS) -lz -lpthread -lm

# Examples link the shared library as a user's program would: each program
# is every .c file of its folder plus the shared example code.
.SECONDEXPANSION:
ex_objs = $(patsubst %.c,$(B)/obj/%.o,$(wildcard examples/$(1)/*.c))
$(B)/examples/%: $$(call ex_objs,$$*) $(EX_SHARED_OBJ) $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) -L$(B) -lkitd -Wl,-rpath,'$$ORIGIN/..' \
	  $(DEP_LIBS) $(MHD_LIBS) -lm

# --- set-up: install the Debian packages the build and tests need ---
deps:
	@sh tests/deps.sh

# --- tests ---
check: deps
	@$(MAKE) --no-print-directory check-run

check-run: all
	@sh tests/run-tests.sh $(B)

valgrind: deps
	@$(MAKE) --no-print-directory all
	@KITD_VALGRIND=1 sh tests/run-tests.sh $(B)

sanitizers: deps
	@$(MAKE) --no-print-directory check-run SANITIZE=address,undefined
	@$(MAKE) --no-print-directory check-run SANITIZE=thread

# --- benchmarks ---
bench: deps
	@$(MAKE) --no-print-directory bench-run

bench-run: all
	@sh tests/bench/run.sh $(B)

soak: deps
	@$(MAKE) --no-print-directory all $(B)/tests/soak/soak_churn
	@KITD_BUILD=$(B) $(B)/tests/soak/soak_churn $(or $(SOAK_SECONDS),60)

# --- demo ---
demo: deps
	@$(MAKE) --no-print-directory demo-run

demo-run: all
	@sh examples/demo.sh $(B)

# --- fuzzing (clang + libFuzzer) ---
fuzz: deps
	@sh tests/fuzz/run.sh $(or $(FUZZ_SECONDS),30)

# --- install ---
install: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/kitd $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 $(HEADERS) $(DESTDIR)$(INCLUDEDIR)/kitd/
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libkitd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libkitd.so
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' pkgconfig/libkitd.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/libkitd.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libkitd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	  $(DESTDIR)$(LIBDIR)/libkitd.so $(DESTDIR)$(LIBDIR)/libkitd.a \
	  $(DESTDIR)$(PKGCONFIGDIR)/libkitd.pc
	rm -rf $(DESTDIR)$(INCLUDEDIR)/kitd

clean:
	rm -rf build stage

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
