/* checkpoint.c — one file per checkpoint, laid out like the model (block/half/tensor) so that a
 * user can read weights with h5py without knowing gnrev's flat parameter order. */
#include "gnrev/run/checkpoint.h"

#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "gnrev/core/array.h"
#include "gnrev/core/err.h"
#include "gnrev/core/shm.h"
#include "gnrev/core/h5io.h"
#include "gnrev/input/deck.h"
#include "gnrev/core/version.h"


void gn_ckpt_path(const gn_deck *deck, int64_t step, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/checkpoints/step_%08lld.h5", deck->out_dir, (long long)step);
}

/* zlib's CRC-32 continued over the bytes of a double array, in chunks (crc32 takes a uInt length). */
static uLong crc_bytes(uLong crc, const double *v, size_t n) {
  const unsigned char *p = (const unsigned char *)v;
  size_t bytes = n * sizeof(double);
  for (size_t off = 0; off < bytes; off += 1u << 30) {
    size_t len = bytes - off < (1u << 30) ? bytes - off : (1u << 30);
    crc = crc32(crc, p + off, (uInt)len);
  }
  return crc;
}

/* The CRC-32 continued over a gn_real array as it is stored: as doubles (real.h), so a checksum
 * means the same in both builds and h5py can recompute it from the file. */
static uLong crc_more(uLong crc, const gn_real *v, size_t n) {
  if (sizeof(gn_real) == sizeof(double)) return crc_bytes(crc, (const double *)(const void *)v, n);
  enum { CHUNK = 4096 };
  double buf[CHUNK];
  for (size_t off = 0; off < n; off += CHUNK) {
    const size_t len = n - off < CHUNK ? n - off : CHUNK;
    for (size_t i = 0; i < len; ++i) buf[i] = v[off + i];
    crc = crc_bytes(crc, buf, len);
  }
  return crc;
}

static int64_t crc_of(const gn_real *v, size_t n) { return (int64_t)crc_more(crc32(0L, Z_NULL, 0), v, n); }

/* CRC-32 of the fixed arrays as written: U, then C of every block, F before G. */
static int64_t crc_fixed(const gn_model *md) {
  uLong crc = crc_more(crc32(0L, Z_NULL, 0), md->U, (size_t)(md->d * md->C));
  for (int k = 0; k < 2 * md->B; ++k) crc = crc_more(crc, md->proj[k], (size_t)(md->m * md->h));
  return (int64_t)crc;
}

enum { MAX_ARRAYS = 8 };

static const char *const SUM_NAMES[GN_CKPT_SUMS] = {"epoch_loss_sum", "epoch_correct_sum", "epoch_samples"};
static const char *const GUARD_NAMES[GN_CKPT_GUARD] = {"loss_first", "loss_min", "best_step", "best_loss"};

static int64_t crc_optimizer(gn_opt *opt) {
  gn_opt_array arrays[MAX_ARRAYS];
  const int k = gn_opt_arrays(opt, arrays, MAX_ARRAYS);
  int64_t crc = 0;
  for (int i = 0; i < k; ++i) crc ^= crc_of(arrays[i].data, arrays[i].n) * (i + 1);
  return crc;
}

/* The root attributes that steer a continuation, as one checksum covers them. */
typedef struct {
  const char *format, *run_id, *data_fp, *deck, *optimizer;
  int64_t step, epoch, nranks, optimizer_t, has_momentum;
  double sums[GN_CKPT_SUMS];
  double guard[GN_CKPT_GUARD];
} steering;

/* CRC-32 of the steering attributes in a fixed text form (%a keeps every bit of the sums). An
 * edited step, counter, running sum or deck then reads as damage, like a flipped weight. */
static int64_t crc_steering(const steering *s) {
  char head[1024];
  const int n = snprintf(head, sizeof head,
                         "format=%s\nrun_id=%s\ndata_fingerprint=%s\noptimizer=%s\nstep=%lld\nepoch=%lld\n"
                         "nranks=%lld\noptimizer_t=%lld\noptimizer_has_momentum=%lld\nsums=%a %a %a\ndeck=",
                         s->format, s->run_id, s->data_fp, s->optimizer, (long long)s->step, (long long)s->epoch,
                         (long long)s->nranks, (long long)s->optimizer_t, (long long)s->has_momentum, s->sums[0],
                         s->sums[1], s->sums[2]);
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, (const unsigned char *)head, (uInt)(n < (int)sizeof head ? n : (int)sizeof head - 1));
  crc = crc32(crc, (const unsigned char *)s->deck, (uInt)strlen(s->deck));
  char tail[256];
  const int k = snprintf(tail, sizeof tail, "\nguard=%a %a %a %a", s->guard[0], s->guard[1], s->guard[2], s->guard[3]);
  crc = crc32(crc, (const unsigned char *)tail, (uInt)k);
  return (int64_t)crc;
}

/* GN_EIO when the file is named step_<digits>.h5 but holds another step (any other name makes
 * no claim). */
static int step_matches_name(const char *path, int64_t step) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  long long named;
  int used = 0;
  if (sscanf(base, "step_%lld.h5%n", &named, &used) == 1 && used == (int)strlen(base) && named != step)
    GN_FAIL(GN_EIO, "checkpoint %s holds step %lld but its name says step %lld (renamed or edited file)", path,
            (long long)step, named);
  return GN_OK;
}

static int write_model(gn_h5 *f, const gn_model *md, const gn_real *theta) {
  int64_t dims[2] = {md->d, md->C};
  CHECK(gn_h5_write_real(f, "/model/U", 2, dims, md->U));
  CHECK(gn_h5_describe(f, "/model/U", "fixed output map, orthonormal columns: logits = X_B U", "1", "state,class"));
  for (int b = 0; b < md->B; ++b)
    for (int s = 0; s < 2; ++s) {
      char path[128];
      const char *half = s ? "G" : "F";
      const gn_real *th = theta + gn_model_offset(md, b, s);
      snprintf(path, sizeof path, "/model/block_%03d/%s/C", b, half);
      int64_t dc[2] = {md->m, md->h};
      CHECK(gn_h5_write_real(f, path, 2, dc, md->proj[2 * b + s]));
      CHECK(gn_h5_describe(f, path, "fixed random projection (inverted bottleneck)", "1", "in,hidden"));
      snprintf(path, sizeof path, "/model/block_%03d/%s/W", b, half);
      int64_t dw[2] = {md->h, md->m};
      CHECK(gn_h5_write_real(f, path, 2, dw, th));
      CHECK(gn_h5_describe(f, path, "trained weights", "1", "hidden,out"));
      snprintf(path, sizeof path, "/model/block_%03d/%s/b", b, half);
      int64_t db[1] = {md->m};
      if (md->hp > md->h) {
        CHECK(gn_h5_write_real(f, path, 1, db, th + md->h * md->m));
        CHECK(gn_h5_describe(f, path, "trained bias", "1", "out"));
      }
    }
  return GN_OK;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Rank 0 only: deletes all but the newest `keep` checkpoints, sparing step 0 and step `spare`. */
static void prune(const gn_deck *deck, int64_t spare) {
  char dir[GN_PATH_MAX + 32];
  snprintf(dir, sizeof dir, "%s/checkpoints", deck->out_dir);
  DIR *dp = opendir(dir);
  if (!dp) return;
  int64_t steps[4096];
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(dp)) && n < sizeof steps / sizeof *steps) {
    long long s;
    char tail[8];
    if (sscanf(e->d_name, "step_%lld.%7s", &s, tail) == 2 && strcmp(tail, "h5") == 0 && s > 0 && s != spare)
      steps[n++] = s;
  }
  closedir(dp);
  qsort(steps, n, sizeof *steps, cmp_i64);
  for (size_t i = 0; i + (size_t)deck->keep < n; ++i) {
    char path[GN_PATH_MAX + 64];
    gn_ckpt_path(deck, steps[i], path, sizeof path);
    unlink(path);
  }
}

/* Fault injection for the tests (docs/operations.md): GNREV_FAULT_KILL_IN_CHECKPOINT=<step> kills
 * rank 0 with SIGKILL half-way through writing that step's checkpoint, as a node failure would. */
static void fault_injection(const gn_par *par, int64_t step) {
  const char *v = getenv("GNREV_FAULT_KILL_IN_CHECKPOINT");
  if (v && par->rank == 0 && strtoll(v, NULL, 10) == step) {
    raise(SIGKILL);
  }
}

/* Local. After a failed I/O while writing the checkpoint of `step` (the temporary file is gone by
 * then): says what is left and how to go on. Returns status. */
static int not_written(int64_t step, int status) {
  if (status != GN_EIO) return status;
  char msg[8192];
  snprintf(msg, sizeof msg,
           "%s\n  the checkpoint of step %lld is not written, nothing of it is left, and the earlier checkpoints "
           "are as they were: free some space, then run the same command to continue from the newest one",
           gn_error_message(), (long long)step);
  gn_error_set_message(msg, gn_error_traceback());
  return status;
}

int gn_ckpt_write(const gn_par *par, const gn_deck *deck, const gn_ckpt_meta *meta,
                  const gn_model *model, const gn_real *theta, gn_opt *opt) {
  char dir[GN_PATH_MAX + 32], path[GN_PATH_MAX + 64];
  snprintf(dir, sizeof dir, "%s/checkpoints", deck->out_dir);
  int st = GN_OK;
  if (par->rank == 0 && mkdir(dir, 0775) != 0 && errno != EEXIST)
    st = GN_RAISE(GN_EIO, "cannot create checkpoint folder %s: %s", dir, strerror(errno));
  CHECK(gn_par_agree(par, st));
  gn_ckpt_path(deck, meta->step, path, sizeof path);
  gn_h5 *f = NULL;
  CHECK(not_written(meta->step, gn_h5_create_atomic(par, path, &f)));
  int status = GN_OK;
  CHECK_GOTO(gn_h5_attr_str(f, "/", "format", "gnrev-checkpoint-1"));
  CHECK_GOTO(gn_h5_attr_str(f, "/", "precision", GN_PRECISION_NAME));
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "step", meta->step));
  CHECK_GOTO(gn_h5_attr_str(f, "/", "run_id", meta->run_id ? meta->run_id : ""));
  CHECK_GOTO(gn_h5_attr_str(f, "/", "data_fingerprint", meta->data_fp ? meta->data_fp : ""));
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "epoch", meta->epoch));
  CHECK_GOTO(gn_h5_attr_str(f, "/", "deck", meta->deck));
  CHECK_GOTO(gn_h5_attr_str(f, "/", "deck_source", meta->deck_source ? meta->deck_source : ""));
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "nranks", par->size));
  CHECK_GOTO(gn_h5_attr_str(f, "/", "version", gn_version));
  CHECK_GOTO(write_model(f, model, theta));
  fault_injection(par, meta->step);
  CHECK_GOTO(gn_h5_attr_str(f, "/", "optimizer", gn_opt_name(opt)));
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "optimizer_t", opt->t));
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "optimizer_has_momentum", opt->has_momentum));
  gn_opt_array arrays[MAX_ARRAYS];
  const int k = gn_opt_arrays(opt, arrays, MAX_ARRAYS);
  for (int i = 0; i < k; ++i) {
    char p[128];
    snprintf(p, sizeof p, "/optimizer/%s", arrays[i].name);
    int64_t dims[1] = {(int64_t)arrays[i].n};
    CHECK_GOTO(gn_h5_write_real(f, p, 1, dims, arrays[i].data));
    CHECK_GOTO(gn_h5_describe(f, p, "optimizer state in the flat parameter order of docs/output-format.md", "1", "parameter"));
  }
  if (meta->sums)
    for (int i = 0; i < GN_CKPT_SUMS; ++i) CHECK_GOTO(gn_h5_attr_f64(f, "/", SUM_NAMES[i], meta->sums[i]));
  if (meta->guard)
    for (int i = 0; i < GN_CKPT_GUARD; ++i) CHECK_GOTO(gn_h5_attr_f64(f, "/", GUARD_NAMES[i], meta->guard[i]));
  if (meta->extra) CHECK_GOTO(meta->extra(meta->extra_ctx, f));
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "crc32_theta", crc_of(theta, model->nparams)));
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "crc32_fixed", crc_fixed(model)));
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "crc32_optimizer", crc_optimizer(opt)));
  steering sv = {.format = "gnrev-checkpoint-1", .run_id = meta->run_id ? meta->run_id : "",
                 .data_fp = meta->data_fp ? meta->data_fp : "", .deck = meta->deck,
                 .optimizer = gn_opt_name(opt), .step = meta->step, .epoch = meta->epoch, .nranks = par->size,
                 .optimizer_t = opt->t, .has_momentum = opt->has_momentum};
  for (int i = 0; meta->sums && i < GN_CKPT_SUMS; ++i) sv.sums[i] = meta->sums[i];
  for (int i = 0; i < GN_CKPT_GUARD; ++i) sv.guard[i] = meta->guard ? meta->guard[i] : NAN;
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "crc32_state", crc_steering(&sv)));
  /* Written last: a file without it was cut short while being written. */
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "complete", 1));
  CHECK(not_written(meta->step, gn_h5_close(f)));
  if (par->rank == 0) prune(deck, meta->guard ? (int64_t)meta->guard[GN_GUARD_BEST_STEP] : -1);
  return GN_OK;
fail:
  gn_h5_abandon(f);
  return not_written(meta->step, status);
}

/* ---- reading and restarting ---- */

/* Keys whose change between the run that wrote a checkpoint and the run that continues it
 * changes nothing already computed: how long to run, how often to log, check and measure. */
static const char *const MAY_CHANGE[] = {
    "run:name", "run:out_dir", "run:epochs", "run:max_steps", "run:log_every", "run:divergence_factor",
    "checkpoint:every", "checkpoint:keep", "checkpoint:restart",
    "diagnostics:eval_every", "diagnostics:train_eval", "diagnostics:batch_change", "diagnostics:ntk_every",
    "diagnostics:ntk_save_matrix", "diagnostics:cka_every", "diagnostics:weights_every", "optim:keep_features",
    "diagnostics:ggn_every"};

enum { GK_MAX = 160, VAL_MAX = GN_PATH_MAX + 64 };

/* Steps through the lines of an effective deck (gn_deck_format): at each "  key = value" line
 * fills gk ("group:key") and val and returns the rest of the text; NULL at the end. */
static const char *next_item(const char *p, char *group, size_t gcap, char *gk, char *val) {
  while (p && *p) {
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    char line[GN_PATH_MAX + 128], key[64];
    if (len >= sizeof line) len = sizeof line - 1;
    memcpy(line, p, len);
    line[len] = '\0';
    p = e ? e + 1 : p + len;
    if (line[0] == '&') {
      snprintf(group, gcap, "%.60s", line + 1);
    } else if (sscanf(line, " %63[a-z0-9_] = %[^\n]", key, val) == 2) {
      snprintf(gk, GK_MAX, "%s:%s", group, key);
      return p;
    }
  }
  return NULL;
}

/* The value of group:key in an effective deck; 0 when absent. */
static int deck_lookup(const char *text, const char *want, char *value) {
  char group[64] = "", gk[GK_MAX];
  for (const char *p = next_item(text, group, sizeof group, gk, value); p;
       p = next_item(p, group, sizeof group, gk, value))
    if (strcmp(gk, want) == 0) return 1;
  return 0;
}

static bool may_change(const char *gk) {
  for (size_t i = 0; i < sizeof MAY_CHANGE / sizeof *MAY_CHANGE; ++i)
    if (strcmp(gk, MAY_CHANGE[i]) == 0) return true;
  return false;
}

/* Compares two effective decks key by key; refuses differences outside MAY_CHANGE. A key the old
 * deck lacks (written by a version that had no such key) counts as its default value. A
 * continuation from a checkpoint named in restart may also change lr: that is how a run stopped by
 * the divergence guard goes on with a smaller step from the state it saved (a deliberate branch,
 * unlike restart = 'auto', which must continue the same computation). */
static int compare_decks(const gn_par *par, const char *path, const char *old_text, const char *new_text) {
  char refused[4096] = "", allowed[4096] = "";
  char group[64] = "", gk[GK_MAX], val[VAL_MAX], old[VAL_MAX];
  const bool named = deck_lookup(new_text, "checkpoint:restart", val) && strcmp(val, "'auto'") != 0 &&
                     strcmp(val, "'none'") != 0;
  gn_deck defaults;
  gn_deck_defaults(&defaults);
  char *default_text = gn_deck_format(&defaults);
  if (!default_text) GN_FAIL(GN_ENOMEM, "out of memory comparing decks");
  for (const char *p = next_item(new_text, group, sizeof group, gk, val); p;
       p = next_item(p, group, sizeof group, gk, val)) {
    if (!deck_lookup(old_text, gk, old) && !deck_lookup(default_text, gk, old)) snprintf(old, sizeof old, "(absent)");
    if (strcmp(old, val) != 0) {
      char item[512];
      snprintf(item, sizeof item, "\n    %.100s: %.180s -> %.180s", gk, old, val);
      char *dst = may_change(gk) || (named && strcmp(gk, "optim:lr") == 0) ? allowed : refused;
      strncat(dst, item, 4096 - strlen(dst) - 1);
    }
  }
  free(default_text);
  if (refused[0])
    GN_FAIL(GN_EINPUT,
            "checkpoint %s was written by a run whose deck differs in keys that change the results:%s\n"
            "  restore those values, or start afresh with &checkpoint restart = 'none' or another out_dir",
            path, refused);
  if (allowed[0] && par->rank == 0) {
    printf("restart: deck changes since checkpoint %s (allowed):%s\n", path, allowed);
    fflush(stdout);
  }
  return GN_OK;
}

/* Collective. Reads the rows x cols fixed matrix `path`, each rank its share of the rows (no rank
 * holds a whole copy), continues *crc over it as stored (the ranks' CRCs combined in row order),
 * and notes in `differs` (the first only, on every rank) when it is not `expect`, the matrix this
 * build makes. */
static int same_fixed(const gn_par *par, gn_h5 *f, const char *path, const char *what, int64_t rows, int64_t cols,
                      const gn_real *expect, const char *ckpt, uLong *crc, char *differs, size_t cap) {
  int64_t row0, nrows;
  gn_par_rows(rows, par->size, par->rank, &row0, &nrows);
  gn_real *buf = gn_alloc((size_t)(nrows * cols));
  CHECK(gn_par_agree(par, buf ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory reading %s of %s", what, ckpt)));
  int st = gn_h5_read_rows_real(f, path, rows, cols, row0, nrows, buf);
  int64_t mine[2] = {0, 0}; /* this rank's CRC and whether its rows differ */
  if (st == GN_OK) {
    mine[0] = (int64_t)crc_more(crc32(0L, Z_NULL, 0), buf, (size_t)(nrows * cols));
    mine[1] = nrows > 0 && memcmp(buf, expect + row0 * cols, (size_t)(nrows * cols) * sizeof(gn_real)) != 0;
  }
  free(buf);
  CHECK(gn_par_agree(par, st));
  int64_t *all = malloc(2 * (size_t)par->size * sizeof *all);
  CHECK(gn_par_agree(par, all ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory reading %s of %s", what, ckpt)));
  st = gn_par_mpi_status(MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, par->comm), "MPI_Allgather",
                          __FILE__, __LINE__, __func__);
  for (int r = 0; st == GN_OK && r < par->size; ++r) {
    int64_t r0, nr;
    gn_par_rows(rows, par->size, r, &r0, &nr);
    *crc = crc32_combine(*crc, (uLong)all[2 * r], (z_off_t)((size_t)(nr * cols) * sizeof(double)));
    if (all[2 * r + 1] && !differs[0]) snprintf(differs, cap, "%s", what);
  }
  free(all);
  return st;
}

/* Collective. Damage (the stored C and U against their checksum crc32_fixed: GN_EIO) is told
 * apart from a genuine difference with what this build makes (GN_EINPUT). A checkpoint of an older
 * version without crc32_fixed can only tell the latter. */
static int check_fixed(gn_h5 *f, const char *ckpt, uLong crc, const char *differs) {
  int64_t stored = 0;
  if (gn_h5_read_attr_i64(f, "/", "crc32_fixed", &stored) != GN_OK) gn_error_clear();
  else if ((int64_t)crc != stored)
    GN_FAIL(GN_EIO, "checkpoint %s: the fixed projections C and U do not match their checksum (damaged file)", ckpt);
  if (differs[0])
    GN_FAIL(GN_EINPUT,
            "checkpoint %s: %s differs from the one this build makes from the seed (another gnrev version or "
            "BLAS?): refusing to continue",
            ckpt, differs);
  return GN_OK;
}

/* Collective. The steering attributes against crc32_state (GN_EIO on a mismatch: damaged or edited;
 * a checkpoint of an older version without it is read with a warning), and the step against the
 * file's name. */
static int check_steering(const gn_par *par, gn_h5 *f, const char *path, const char *format, const char *deck,
                          int64_t step, int64_t epoch, int64_t nranks, int64_t t, int64_t has_mom,
                          const gn_ckpt_state *state) {
  CHECK(step_matches_name(path, step));
  char *optimizer = NULL;
  int64_t stored = 0;
  CHECK(gn_h5_read_attr_str(f, "/", "optimizer", &optimizer));
  if (gn_h5_read_attr_i64(f, "/", "crc32_state", &stored) != GN_OK) {
    gn_error_clear();
    free(optimizer);
    if (par->rank == 0) {
      fprintf(stderr, "gnrev_mpi: warning: checkpoint %s has no crc32_state (written by an older gnrev): its step "
              "and counters are not checked\n", path);
      fflush(stderr);
    }
    return GN_OK;
  }
  steering sv = {.format = format, .run_id = state->run_id, .data_fp = state->data_fp, .deck = deck, .optimizer = optimizer, .step = step,
                 .epoch = epoch, .nranks = nranks, .optimizer_t = t, .has_momentum = has_mom};
  memcpy(sv.sums, state->sums, sizeof sv.sums);
  memcpy(sv.guard, state->guard, sizeof sv.guard);
  const int64_t crc = crc_steering(&sv);
  free(optimizer);
  if (crc != stored)
    GN_FAIL(GN_EIO,
            "checkpoint %s: its step, epoch, optimizer counters, running sums or deck do not match their checksum "
            "(damaged or edited file)",
            path);
  return GN_OK;
}

/* Collective. A run continues in the precision it was trained in: the same steps in float and in
 * double are different computations (checkpoints of versions before the attribute are double). */
static int same_precision(gn_h5 *f, const char *path) {
  char *prec = NULL;
  if (gn_h5_read_attr_str(f, "/", "precision", &prec) != GN_OK) gn_error_clear();
  const bool same = strcmp(prec ? prec : "double", GN_PRECISION_NAME) == 0;
  char was[32];
  snprintf(was, sizeof was, "%.20s", prec ? prec : "double");
  free(prec);
  if (!same)
    GN_FAIL(GN_EINPUT,
            "checkpoint %s was written by a %s-precision build of gnrev and this one is %s precision: a run "
            "continues in the precision it started in. Use a %s-precision build (make PRECISION=%s), or start "
            "afresh with &checkpoint restart = 'none' or another out_dir",
            path, was, GN_PRECISION_NAME, was, was);
  return GN_OK;
}

/* Collective on par->comm. Reads checkpoint `path` into theta and opt (see gn_ckpt_restart). */
static int ckpt_read(const gn_par *par, const char *path, const char *deck_text, const gn_model *md,
                 gn_real *theta, gn_opt *opt, gn_ckpt_state *state) {
  gn_h5 *f = NULL;
  CHECK(gn_h5_open(par, path, false, &f));
  int status = GN_OK;
  char *format = NULL, *old_deck = NULL, *method = NULL;
  int64_t complete = 0, step = 0, epoch = 0, nranks = 0, crc_t = 0, crc_o = 0, t = 0, has_mom = 0;
  CHECK_GOTO(gn_h5_read_attr_str(f, "/", "format", &format));
  if (strcmp(format, "gnrev-checkpoint-1") != 0)
    FAIL_GOTO(GN_EINPUT, "checkpoint %s has format '%s'; this gnrev reads 'gnrev-checkpoint-1'", path, format);
  CHECK_GOTO(same_precision(f, path));
  if (gn_h5_read_attr_i64(f, "/", "complete", &complete) != GN_OK || complete != 1)
    FAIL_GOTO(GN_EIO, "checkpoint %s is incomplete (no completeness marker): it was cut short while being written", path);
  CHECK_GOTO(gn_h5_read_attr_str(f, "/", "deck", &old_deck));
  CHECK_GOTO(compare_decks(par, path, old_deck, deck_text));
  CHECK_GOTO(gn_h5_read_attr_i64(f, "/", "step", &step));
  CHECK_GOTO(gn_h5_read_attr_i64(f, "/", "epoch", &epoch));
  CHECK_GOTO(gn_h5_read_attr_i64(f, "/", "nranks", &nranks));
  CHECK_GOTO(gn_h5_read_attr_i64(f, "/", "crc32_theta", &crc_t));
  CHECK_GOTO(gn_h5_read_attr_i64(f, "/", "crc32_optimizer", &crc_o));
  uLong fixed_crc = crc32(0L, Z_NULL, 0);
  char differs[64] = "";
  CHECK_GOTO(same_fixed(par, f, "/model/U", "the output map U", md->d, md->C, md->U, path, &fixed_crc, differs,
                        sizeof differs));
  for (int b = 0; b < md->B; ++b)
    for (int s = 0; s < 2; ++s) {
      char p[128], what[64];
      const char *half = s ? "G" : "F";
      gn_real *th = theta + gn_model_offset(md, b, s);
      snprintf(p, sizeof p, "/model/block_%03d/%s/C", b, half);
      snprintf(what, sizeof what, "the projection C of block %d, %s", b, half);
      CHECK_GOTO(same_fixed(par, f, p, what, md->m, md->h, md->proj[2 * b + s], path, &fixed_crc, differs,
                            sizeof differs));
      snprintf(p, sizeof p, "/model/block_%03d/%s/W", b, half);
      int64_t dw[2] = {md->h, md->m};
      CHECK_GOTO(gn_h5_read_real_node(f, p, 2, dw, th));
      if (md->hp > md->h) {
        snprintf(p, sizeof p, "/model/block_%03d/%s/b", b, half);
        int64_t db[1] = {md->m};
        CHECK_GOTO(gn_h5_read_real_node(f, p, 1, db, th + md->h * md->m));
      }
    }
  CHECK_GOTO(gn_shm_sync(par));
  CHECK_GOTO(check_fixed(f, path, fixed_crc, differs));
  if (crc_of(theta, md->nparams) != crc_t)
    FAIL_GOTO(GN_EIO, "checkpoint %s: the weights do not match their checksum (damaged file)", path);
  CHECK_GOTO(gn_h5_read_attr_i64(f, "/", "optimizer_t", &t));
  CHECK_GOTO(gn_h5_read_attr_i64(f, "/", "optimizer_has_momentum", &has_mom));
  opt->t = t;
  opt->has_momentum = has_mom;
  gn_opt_array arrays[MAX_ARRAYS];
  const int k = gn_opt_arrays(opt, arrays, MAX_ARRAYS);
  for (int i = 0; i < k; ++i) {
    char p[128];
    snprintf(p, sizeof p, "/optimizer/%s", arrays[i].name);
    int64_t dims[1] = {(int64_t)arrays[i].n};
    CHECK_GOTO(gn_h5_read_real_node(f, p, 1, dims, arrays[i].data));
  }
  CHECK_GOTO(gn_shm_sync(par));
  if (crc_optimizer(opt) != crc_o)
    FAIL_GOTO(GN_EIO, "checkpoint %s: the optimizer state does not match its checksum (damaged file)", path);
  /* Running sums of the epoch (absent from checkpoints of older versions: then zero). */
  for (int i = 0; i < GN_CKPT_SUMS; ++i) {
    state->sums[i] = 0;
    if (gn_h5_read_attr_f64(f, "/", SUM_NAMES[i], &state->sums[i]) != GN_OK) gn_error_clear();
  }
  /* The guard's record (absent from checkpoints of older versions: then nothing measured). */
  const double unmeasured[GN_CKPT_GUARD] = {NAN, INFINITY, -1, INFINITY};
  for (int i = 0; i < GN_CKPT_GUARD; ++i)
    if (gn_h5_read_attr_f64(f, "/", GUARD_NAMES[i], &state->guard[i]) != GN_OK) {
      gn_error_clear();
      state->guard[i] = unmeasured[i];
    }
  /* The run's id (absent from checkpoints of older versions: then empty). */
  char *run_id = NULL;
  if (gn_h5_read_attr_str(f, "/", "run_id", &run_id) != GN_OK) gn_error_clear();
  snprintf(state->run_id, sizeof state->run_id, "%s", run_id ? run_id : "");
  free(run_id);
  char *data_fp = NULL;
  if (gn_h5_read_attr_str(f, "/", "data_fingerprint", &data_fp) != GN_OK) gn_error_clear();
  snprintf(state->data_fp, sizeof state->data_fp, "%s", data_fp ? data_fp : "");
  free(data_fp);
  CHECK_GOTO(check_steering(par, f, path, format, old_deck, step, epoch, nranks, t, has_mom, state));
  state->step = step;
  state->epoch = epoch;
  state->nranks = (int)nranks;
fail:
  free(format);
  free(old_deck);
  free(method);
  {
    int st2 = gn_h5_close(f);
    if (status == GN_OK) status = st2;
  }
  return status;
}

static int cmp_desc(const void *a, const void *b) { return -cmp_i64(a, b); }

/* Rank 0 only. A damaged checkpoint is renamed <path>.damaged (or .damaged.N if taken), out of
 * reach of the pruning and of the rewrite of its step, never deleted; and it is said so. A dry
 * restart (--check) says which name a run would give it and leaves it where it is. */
static void set_aside(const char *path, bool dry) {
  char aside[GN_PATH_MAX + 96];
  snprintf(aside, sizeof aside, "%s.damaged", path);
  for (int k = 1; k < 100 && access(aside, F_OK) == 0; ++k) snprintf(aside, sizeof aside, "%s.damaged.%d", path, k);
  char *msg = gn_escape_text(gn_error_message());
  if (dry)
    fprintf(stderr, "gnrev_mpi: warning: a run would skip damaged checkpoint %s and keep it as %s: %s\n", path, aside,
            msg ? msg : "");
  else if (rename(path, aside) == 0)
    fprintf(stderr, "gnrev_mpi: warning: skipping damaged checkpoint (kept as %s): %s\n", aside, msg ? msg : "");
  else
    fprintf(stderr, "gnrev_mpi: warning: skipping damaged checkpoint (could not rename it: %s): %s\n",
            strerror(errno), msg ? msg : "");
  free(msg);
  fflush(stderr);
}

int gn_ckpt_restart(const gn_par *par, const gn_deck *deck, const char *deck_text,
                    const gn_model *model, gn_real *theta, gn_opt *opt, bool dry, char *path, size_t cap,
                    gn_ckpt_state *state) {
  path[0] = '\0';
  memset(state, 0, sizeof *state);
  if (strcmp(deck->restart, "none") == 0) return GN_OK;
  if (strcmp(deck->restart, "auto") != 0) {
    snprintf(path, cap, "%s", deck->restart);
    int st = ckpt_read(par, path, deck_text, model, theta, opt, state);
    if (st != GN_OK) path[0] = '\0';
    return st;
  }
  /* Newest first; every rank lists the same folder (shared file system), rank 0's list wins. */
  enum { MAXC = 4096 };
  int64_t *steps = malloc(MAXC * sizeof(int64_t));
  CHECK_ALLOC(steps);
  int64_t n = 0;
  if (par->rank == 0) {
    char dir[GN_PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/checkpoints", deck->out_dir);
    DIR *dp = opendir(dir);
    struct dirent *e;
    while (dp && (e = readdir(dp)) && n < MAXC) {
      long long s;
      char tail[8];
      if (sscanf(e->d_name, "step_%lld.%7s", &s, tail) == 2 && strcmp(tail, "h5") == 0) steps[n++] = s;
    }
    if (dp) closedir(dp);
    qsort(steps, (size_t)n, sizeof *steps, cmp_desc);
  }
  int st = gn_par_bcast(par, &n, sizeof n, 0);
  if (st == GN_OK) st = gn_par_bcast(par, steps, (size_t)n * sizeof *steps, 0);
  int64_t damaged = 0;
  for (int64_t i = 0; st == GN_OK && i < n; ++i) {
    gn_ckpt_path(deck, steps[i], path, cap);
    int r = ckpt_read(par, path, deck_text, model, theta, opt, state);
    if (r == GN_OK) {
      free(steps);
      return GN_OK;
    }
    if (r != GN_EIO) {
      st = r;
      break;
    }
    ++damaged;
    if (par->rank == 0) set_aside(path, dry);
    gn_error_clear();
  }
  free(steps);
  path[0] = '\0';
  if (st == GN_OK) {
    /* Nothing loadable: the caller decides whether to start afresh. */
    memset(state, 0, sizeof *state);
    state->found = n;
    state->damaged = damaged;
  }
  return st;
}
