/* main.c — the gnrev_mpi command line: options, the deck, and the one place that turns an error
 * status into a message and an exit code. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cblas.h>
#include <hdf5.h>
#include <mpi.h>

#include "gnrev/input/deck.h"
#include "gnrev/core/err.h"
#include "gnrev/core/par.h"
#include "gnrev/run/signals.h"
#include "gnrev/run/train.h"
#include "gnrev/core/real.h"
#include "gnrev/core/version.h"


enum { MAX_OVERRIDES = 256 };

static const char *USAGE =
    "usage: gnrev_mpi [options] DECK\n"
    "\n"
    "Trains a reversible MLP with exact Gauss-Newton, SGD or Adam as the Fortran-namelist DECK\n"
    "says, over all MPI ranks (mpirun -np N gnrev_mpi input/deck.nml).\n"
    "\n"
    "options:\n"
    "  -h, --help           print this text and exit\n"
    "  -V, --version        print the version, compiler, flags and libraries and exit\n"
    "  --check              check the deck and the data it names, print the resolved\n"
    "                       configuration (defaults filled in), the memory each rank\n"
    "                       needs (sized for the ranks --check runs on) and how a run\n"
    "                       would start in out_dir (\"restart: would ...\": afresh, from a\n"
    "                       checkpoint, or refused, with the run's exit status), and exit\n"
    "                       without training or changing anything on disk\n"
    "  --plan N[:R]         with --check: size the memory for a job of N ranks, R per node\n"
    "                       (default R = N), instead of the ranks --check runs on, and\n"
    "                       say whether a node like this one would hold it\n"
    "  -P group:key=value   override a deck value (repeatable), e.g. -P run:seed=43\n"
    "\n"
    "exit status: 0 success, 2 input error, 3 I/O error, 4 not enough memory, 5 numerical\n"
    "failure, 6 library error, 7 MPI error, 8 internal error, 75 stopped by a signal after a\n"
    "checkpoint (resubmit to continue). Documentation: README.md, docs/.\n";

static void print_version(void) {
  unsigned maj, min, rel;
  H5get_libversion(&maj, &min, &rel);
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(mpi, &len);
  char *nl = strchr(mpi, '\n');
  if (nl) *nl = '\0';
  printf("gnrev_mpi %s\nprecision: %s (make PRECISION=%s)\ncompiler: %s\nflags: %s\nHDF5 %u.%u.%u\nMPI: %s\n"
         "BLAS: %s\n",
         gn_version, GN_PRECISION_NAME, GN_PRECISION_NAME, __VERSION__, gn_build_cflags, maj, min, rel, mpi,
         openblas_get_config());
}

typedef struct {
  const char *deck_path;
  const char *overrides[MAX_OVERRIDES];
  int n_overrides;
  bool check, help, version;
  int plan_ranks, plan_per_node; /* --plan N[:R] */
} cli;

/* "N" or "N:R" with 1 <= R and 1 <= N <= 2^24. */
static int parse_plan(const char *v, cli *c) {
  char *end = NULL;
  errno = 0;
  const long n = strtol(v, &end, 10);
  long r = n;
  if (end && *end == ':') r = strtol(end + 1, &end, 10);
  if (errno || !end || *end || n < 1 || n > (1L << 24) || r < 1 || r > n)
    GN_FAIL(GN_EINPUT, "--plan '%s': expected N or N:R, N ranks (1 to %ld) with R per node (1 to N)", v, 1L << 24);
  c->plan_ranks = (int)n;
  c->plan_per_node = (int)r;
  return GN_OK;
}

static int parse_args(int argc, char **argv, cli *c) {
  memset(c, 0, sizeof *c);
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      c->help = true;
    } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
      c->version = true;
    } else if (!strcmp(a, "--check")) {
      c->check = true;
    } else if (!strcmp(a, "--plan")) {
      if (i + 1 >= argc) GN_FAIL(GN_EINPUT, "option --plan needs an argument N or N:R");
      CHECK(parse_plan(argv[++i], c));
    } else if (!strncmp(a, "-P", 2)) {
      const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v) GN_FAIL(GN_EINPUT, "option -P needs an argument group:key=value");
      if (c->n_overrides == MAX_OVERRIDES) GN_FAIL(GN_EINPUT, "more than %d -P options", MAX_OVERRIDES);
      c->overrides[c->n_overrides++] = v;
    } else if (a[0] == '-' && a[1]) {
      GN_FAIL(GN_EINPUT, "unknown option '%s' (see gnrev_mpi --help)", a);
    } else if (c->deck_path) {
      GN_FAIL(GN_EINPUT, "more than one deck given ('%s' and '%s')", c->deck_path, a);
    } else {
      c->deck_path = a;
    }
  }
  if (!c->help && !c->version && !c->deck_path)
    GN_FAIL(GN_EINPUT, "no deck given\n%s", USAGE);
  if (c->plan_ranks > 0 && !c->check) GN_FAIL(GN_EINPUT, "--plan sizes a job for --check: add --check");
  return GN_OK;
}

/* Rank 0 reads the deck and sends its text to every rank, so one rank reports a missing file (or
 * a NUL byte, which would cut the text every rank parses short). */
static int read_deck(const gn_par *par, const char *path, char **text) {
  int64_t len = 0;
  char *buf = NULL;
  int st = GN_OK;
  if (par->rank == 0) {
    struct stat sb;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
      st = GN_RAISE(GN_EIO, "cannot open deck %s: %s", path, strerror(errno));
    } else if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
      st = GN_RAISE(GN_EIO, "deck %s is not a regular file", path);
      fclose(fp);
    } else if (sb.st_size > (1 << 26)) {
      st = GN_RAISE(GN_EINPUT, "deck %s is %lld bytes: a deck is a small text file", path, (long long)sb.st_size);
      fclose(fp);
    } else {
      len = (int64_t)sb.st_size;
      buf = malloc((size_t)len + 1);
      if (!buf || fread(buf, 1, (size_t)len, fp) != (size_t)len)
        st = GN_RAISE(GN_EIO, "cannot read deck %s", path);
      else
        st = gn_deck_check_bytes(buf, (size_t)len, path);
      fclose(fp);
    }
  }
  st = gn_par_agree(par, st);
  if (st != GN_OK) {
    free(buf);
    return st;
  }
  CHECK(gn_par_bcast(par, &len, sizeof len, 0));
  if (par->rank != 0) buf = malloc((size_t)len + 1);
  CHECK(gn_par_agree(par, buf ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for the deck")));
  CHECK(gn_par_bcast(par, buf, (size_t)len, 0));
  buf[len] = '\0';
  *text = buf;
  return GN_OK;
}

/* A SLURM/PMI mismatch silently starts N single-rank jobs that overwrite each other's files. */
static int check_slurm(const gn_par *par) {
  const char *ntasks = getenv("SLURM_NTASKS");
  if (!ntasks || getenv("GNREV_IGNORE_SLURM_NTASKS")) return GN_OK;
  long n = strtol(ntasks, NULL, 10);
  if (n > 0 && n != par->size)
    GN_FAIL(GN_EINPUT,
            "SLURM_NTASKS = %ld but MPI sees %d rank(s): the MPI library is not talking to SLURM "
            "(use srun --mpi=pmix or mpirun inside the allocation)",
            n, par->size);
  return GN_OK;
}

static int run(const gn_par *par, const cli *c) {
  if (c->help || c->version) {
    if (par->rank == 0) {
      if (c->help) fputs(USAGE, stdout);
      if (c->version) print_version();
    }
    return GN_OK;
  }
  CHECK(gn_par_agree(par, check_slurm(par)));
  char *text = NULL;
  CHECK(read_deck(par, c->deck_path, &text));
  gn_deck deck;
  int st = gn_par_agree(par, gn_deck_parse(text, c->deck_path, c->overrides, c->n_overrides, &deck));
  if (st == GN_OK) st = gn_par_agree(par, gn_deck_require_groups(text, c->deck_path));
  const gn_train_opts opts = {.check_only = c->check, .plan_ranks = c->plan_ranks, .plan_per_node = c->plan_per_node};
  if (st == GN_OK) st = gn_train_run(par, &deck, c->deck_path, text, &opts);
  free(text);
  return st;
}

int main(int argc, char **argv) {
  /* First of all: a stop signal sent while MPI starts (a job preempted at once) is recorded and
   * honoured after the first step instead of killing the rank. The handler is async-signal-safe
   * and uses no MPI. */
  const int sig_status = gn_signals_install();
  MPI_Init(&argc, &argv);
  /* One core per rank unless the user asked otherwise: OpenBLAS threads would oversubscribe. */
  if (!getenv("OPENBLAS_NUM_THREADS") && !getenv("OMP_NUM_THREADS")) openblas_set_num_threads(1);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  gn_par par;
  int st = gn_par_open(MPI_COMM_WORLD, &par);
  if (st != GN_OK) gn_par_die(NULL, st);
  cli c;
  st = gn_par_agree(&par, sig_status);
  if (st == GN_OK) st = gn_par_agree(&par, parse_args(argc, argv, &c));
  if (st == GN_OK) st = run(&par, &c);
  gn_signals_restore();
  if (st != GN_OK) gn_par_report(&par, st);
  gn_par_close(&par);
  MPI_Finalize();
  return st;
}
