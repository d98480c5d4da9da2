# SPDX-License-Identifier: MIT
# libkitd: client-side service discovery and load balancing for C.
# `make` builds the library and the kitd-watch tool, nothing else (packagers);
# `make check` (after installing what it needs) builds and runs every test;
# `make examples` builds the example programs; `make demo` runs the lorem
# demo; `make bench` prints the benchmark figures; `make fuzz` runs libFuzzer.
# `make deps` installs the Debian packages the tests need; KITD_NO_DEPS=1
# skips that step (build chroots). USE_WERROR=0 drops -Werror.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
# LIBDIR may be a multiarch path, e.g. $(PREFIX)/lib/x86_64-linux-gnu: the
# .pc and CMake files follow it.
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR ?= $(LIBDIR)/cmake/libkitd
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=
CFLAGS ?= -O2 -g
SANITIZE ?=
USE_WERROR ?= 1
PKG_CONFIG ?= pkg-config
PYTHON ?= python3

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
DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
DEP_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lresolv -lpthread
MHD_LIBS := $(shell $(PKG_CONFIG) --libs libmicrohttpd 2>/dev/null)
MHD_CFLAGS := $(shell $(PKG_CONFIG) --cflags libmicrohttpd 2>/dev/null)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)
# The Consul double gzips its answers: zlib (Debian zlib1g-dev).
DOUBLE_LIBS := $(shell $(PKG_CONFIG) --libs jansson zlib 2>/dev/null)
WERROR := $(if $(filter 0,$(USE_WERROR)),,-Werror)

KITD_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -Wall -Wextra $(WERROR) \
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
# The load and hostile-client generator the server tests drive (a program,
# not a test: tests/examples/http_*.sh run it).
LOAD_SRC := $(wildcard tests/load/*.c)
LOAD_BIN := $(LOAD_SRC:%.c=$(B)/%)
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
# The installed tool: the same sources as examples/kitd-watch, linked
# without the build tree's rpath.
TOOL_BIN := $(B)/bin/kitd-watch
MAN1 := docs/man/kitd-watch.1

.PHONY: soak all lib tools examples check-build check check-run demo demo-run bench bench-run \
  install uninstall clean deps fuzz valgrind sanitizers man abi-baseline format compile_commands.json
all: lib tools
lib: $(SHLIB) $(STLIB) $(B)/libkitd.pc
tools: $(TOOL_BIN)
examples: lib $(EX_BIN)
# Everything `make check` runs: the tests, the examples they drive, the
# double, the benchmarks (built so that they keep compiling) and the fuzz
# replayers.
check-build: all $(DOUBLE_BIN) $(EX_BIN) $(UNIT_BIN) $(INTEG_BIN) $(BENCH_BIN) $(FUZZ_REPLAY) \
  $(LOAD_BIN)

# Rebuild everything when the compiler or flags change (gcc vs clang, sanitizers).
$(B)/.flags: FORCE
	@mkdir -p $(B)
	@echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@
FORCE:

$(B)/obj/%.o: %.c $(B)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# libkitd.map gives every kitd_ symbol a version and keeps the rest local.
$(SHLIB): $(LIB_OBJ) libkitd.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script,libkitd.map \
	  $(if $(SANITIZE),,-Wl,--no-undefined) $(ALL_LDFLAGS) -o $@ $(LIB_OBJ) $(DEP_LIBS)
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

$(B)/tests/load/%: $(B)/obj/tests/load/%.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< -lpthread

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
	$(CC) $(ALL_LDFLAGS) -o $@ $(DOUBLE_OBJ) $(DOUBLE_LIBS) $(MHD_LIBS) -lpthread -lm

# Examples link the shared library as a user's program would: each program
# is every .c file of its folder plus the shared example code.
.SECONDEXPANSION:
ex_objs = $(patsubst %.c,$(B)/obj/%.o,$(wildcard examples/$(1)/*.c))
$(B)/examples/%: $$(call ex_objs,$$*) $(EX_SHARED_OBJ) $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) -L$(B) -lkitd -Wl,-rpath,'$$ORIGIN/..' \
	  $(DEP_LIBS) -lm

$(TOOL_BIN): $(call ex_objs,kitd-watch) $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) -L$(B) -lkitd $(DEP_LIBS)

# --- set-up: install the Debian packages the build and tests need ---
deps:
	@if [ "$(KITD_NO_DEPS)" = 1 ]; then echo "deps: skipped (KITD_NO_DEPS=1)"; else sh tests/deps.sh; fi

# --- tests ---
check: deps
	@$(MAKE) --no-print-directory check-run

check-run: check-build man
	@sh tests/run-tests.sh $(B)

valgrind: deps
	@$(MAKE) --no-print-directory check-build
	@KITD_VALGRIND=1 sh tests/run-tests.sh $(B)

sanitizers: deps
	@$(MAKE) --no-print-directory check-run SANITIZE=address,undefined
	@$(MAKE) --no-print-directory check-run SANITIZE=thread

# --- benchmarks ---
bench: deps
	@$(MAKE) --no-print-directory bench-run

bench-run: check-build
	@sh tests/bench/run.sh $(B)

soak: deps
	@$(MAKE) --no-print-directory check-build $(B)/tests/soak/soak_churn
	@KITD_BUILD=$(B) $(B)/tests/soak/soak_churn $(or $(SOAK_SECONDS),60)

# --- demo ---
demo: deps
	@$(MAKE) --no-print-directory demo-run

demo-run: all $(DOUBLE_BIN) $(EX_BIN)
	@sh examples/demo.sh $(B)

# --- fuzzing (clang + libFuzzer) ---
fuzz: deps
	@sh tests/fuzz/run.sh $(or $(FUZZ_SECONDS),30)

# --- manual pages ---
# Section 3 is generated from the header comments (docs/man/mkman3.py), one
# page per KITD_API function plus libkitd(3); section 1 is written by hand.
man: $(B)/man/.stamp
$(B)/man/.stamp: docs/man/mkman3.py $(HEADERS)
	@mkdir -p $(B)/man
	$(PYTHON) docs/man/mkman3.py $(B)/man/man3 $(HEADERS)
	@touch $@

# --- CMake package files ---
# Paths in libkitdConfig.cmake are relative to its own folder, so that a
# staged (DESTDIR) or moved tree resolves.
SIZEOF_VOID_P = $(shell echo __SIZEOF_POINTER__ | $(CC) -E -P -x c - 2>/dev/null | tr -d ' ')
CMAKE_SUBST = sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@SOVERSION@|$(SOVERSION)|g' \
  -e 's|@V_MAJOR@|$(V_MAJOR)|g' -e 's|@V_MINOR@|$(V_MINOR)|g' \
  -e 's|@SIZEOF_VOID_P@|$(SIZEOF_VOID_P)|g' -e 's|@BITS@|$(shell expr 8 \* $(SIZEOF_VOID_P))|g' \
  -e "s|@CMAKE_TO_LIBDIR@|$$(realpath -m --relative-to='$(CMAKEDIR)' '$(LIBDIR)')|g" \
  -e "s|@CMAKE_TO_INCLUDEDIR@|$$(realpath -m --relative-to='$(CMAKEDIR)' '$(INCLUDEDIR)')|g"

# --- install ---
# Only files: the library, headers, .pc, CMake package, kitd-watch and the
# manual pages. Nothing is built here that `make` and `make man` did not.
install: all man
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/kitd $(DESTDIR)$(PKGCONFIGDIR) \
	  $(DESTDIR)$(CMAKEDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 644 $(HEADERS) $(DESTDIR)$(INCLUDEDIR)/kitd/
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libkitd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libkitd.so
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' pkgconfig/libkitd.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/libkitd.pc
	$(CMAKE_SUBST) cmake/libkitdConfig.cmake.in > $(DESTDIR)$(CMAKEDIR)/libkitdConfig.cmake
	$(CMAKE_SUBST) cmake/libkitdConfigVersion.cmake.in > $(DESTDIR)$(CMAKEDIR)/libkitdConfigVersion.cmake
	install -m 755 $(TOOL_BIN) $(DESTDIR)$(BINDIR)/
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(B)/man/man3/*.3 $(DESTDIR)$(MANDIR)/man3/

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libkitd.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	  $(DESTDIR)$(LIBDIR)/libkitd.so $(DESTDIR)$(LIBDIR)/libkitd.a \
	  $(DESTDIR)$(PKGCONFIGDIR)/libkitd.pc $(DESTDIR)$(BINDIR)/kitd-watch \
	  $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1)))
	rm -f $(DESTDIR)$(MANDIR)/man3/libkitd.3 $(DESTDIR)$(MANDIR)/man3/kitd_*.3
	rm -rf $(DESTDIR)$(INCLUDEDIR)/kitd $(DESTDIR)$(CMAKEDIR)

# --- ABI baseline (docs/abi.md) ---
# Rewrites abi/libkitd.abi from a plain build of the library; tests/check/abi.sh
# compares every later build with it. Run it for a release, or after a soname bump.
abi-baseline:
	@$(MAKE) --no-print-directory lib SANITIZE= CFLAGS='-O2 -g'
	abidw --headers-dir include/kitd --drop-private-types --no-corpus-path \
	  --no-comp-dir-path --short-locs --out-file abi/libkitd.abi build/libkitd.so.$(VERSION)
	@echo "abi/libkitd.abi: $$(grep -c '<elf-symbol ' abi/libkitd.abi) symbols; commit it"

# --- formatting and tooling ---
# `make format` rewrites the C sources with .clang-format; FORMAT_FILES
# narrows it (e.g. make format FORMAT_FILES=lib/lb/random.c).
CLANG_FORMAT ?= clang-format
FORMAT_FILES ?= $(shell find include lib examples tests -name '*.[ch]' | sort)
format:
	$(CLANG_FORMAT) -i --style=file $(FORMAT_FILES)

# compile_commands.json for clangd and clang-tidy: one entry per C file that
# `make check-build` compiles, with this tree's flags.
compile_commands.json:
	@$(PYTHON) -c 'import json, os, sys; d = os.getcwd(); args = sys.argv[1].split(); \
	  print(json.dumps([{"directory": d, "file": f, "arguments": args + ["-c", f, "-o", "$(B)/obj/" + f[:-2] + ".o"]} \
	  for f in sys.argv[2:]], indent=1))' '$(CC) $(ALL_CFLAGS)' \
	  $(sort $(LIB_SRC) $(SUPPORT_SRC) $(UNIT_SRC) $(INTEG_SRC) $(BENCH_SRC) $(FUZZ_SRC) $(DOUBLE_SRC) \
	     $(wildcard examples/*/*.c) tests/fuzz/replay_main.c) > $@
	@echo "compile_commands.json: $$($(PYTHON) -c 'import json; print(len(json.load(open("compile_commands.json"))))') files"

clean:
	rm -rf build stage compile_commands.json

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
