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
WARN     := -Wall -Wextra -Wno-unused-parameter
ALLCFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) -Iinclude $(PKG_CFLAGS) \
            -DGN_VERSION='"$(VERSION)"' -DGN_CFLAGS='"$(CFLAGS)"'
LIBS     ?= $(PKG_LIBS) -lgfortran -lm

ifeq ($(SANITIZE),1)
  CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=address,undefined
  BUILD  ?= build-san
endif
BUILD ?= build

# mpirun as root needs consent; more ranks than cores need --oversubscribe.
MPIFLAGS ?= --oversubscribe $(if $(filter 0,$(shell id -u)),--allow-run-as-root)

LIB_SRC  := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard tests/bench_*.c)
BENCH_BIN := $(BENCH_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all deps run check tests bench install clean fuzz report
all: gnrev_mpi

deps:
	@tools/install-deps.sh

gnrev_mpi: $(BUILD)/gnrev_mpi
	@cp $< $@

$(BUILD)/gnrev_mpi: $(BUILD)/obj/main.o $(BUILD)/libgnrev.a
	$(MPICC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/libgnrev.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/obj/%.o: src/%.c $(wildcard include/gnrev/*.h) | $(BUILD)/obj
	$(MPICC) $(ALLCFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c tests/testlib.h $(BUILD)/libgnrev.a | $(BUILD)/tests
	$(MPICC) $(ALLCFLAGS) -Itests $(LDFLAGS) -o $@ $< $(BUILD)/libgnrev.a $(LIBS)

$(BUILD)/obj $(BUILD)/tests:
	@mkdir -p $@

tests: gnrev_mpi $(TEST_BIN)

# `make run` and `make check` install missing packages first, then build in a fresh make so
# pkg-config sees them.
run: deps
	@$(MAKE) --no-print-directory gnrev_mpi
	OPENBLAS_NUM_THREADS=1 $(MPIRUN) $(MPIFLAGS) -np $(NP) ./gnrev_mpi $(DECK)

check: deps
	@$(MAKE) --no-print-directory tests
	@MPIRUN="$(MPIRUN)" MPIFLAGS="$(MPIFLAGS)" BUILD="$(BUILD)" PYTHON="$(PYTHON)" tests/run_tests.sh

bench: deps
	@$(MAKE) --no-print-directory gnrev_mpi $(BENCH_BIN)
	@MPIRUN="$(MPIRUN)" MPIFLAGS="$(MPIFLAGS)" BUILD="$(BUILD)" tools/bench.sh

report:
	$(PYTHON) tools/plot_run.py $(RUNS)

install: gnrev_mpi
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/gnrev
	install -m 755 gnrev_mpi $(DESTDIR)$(PREFIX)/bin/gnrev_mpi
	cp -r input jobs tools docs $(DESTDIR)$(PREFIX)/share/gnrev/

clean:
	rm -rf build build-san gnrev_mpi
