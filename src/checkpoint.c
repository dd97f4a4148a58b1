/* checkpoint.c — one file per checkpoint, laid out like the model (block/half/tensor) so that a
 * user can read weights with h5py without knowing gnrev's flat parameter order. */
#include "gnrev/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gnrev/err.h"
#include "gnrev/h5io.h"

#ifndef GN_VERSION
#define GN_VERSION "unknown"
#endif

void gn_ckpt_path(const gn_deck *deck, int64_t step, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/checkpoints/step_%08lld.h5", deck->out_dir, (long long)step);
}

static int write_model(gn_h5 *f, const gn_model *md, const double *theta) {
  int64_t dims[2] = {md->d, md->C};
  CHECK(gn_h5_write_f64(f, "/model/U", 2, dims, md->U));
  CHECK(gn_h5_describe(f, "/model/U", "fixed output map, orthonormal columns: logits = X_B U", "1", "state,class"));
  for (int b = 0; b < md->B; ++b)
    for (int s = 0; s < 2; ++s) {
      char path[128];
      const char *half = s ? "G" : "F";
      const double *th = theta + gn_model_offset(md, b, s);
      snprintf(path, sizeof path, "/model/block_%03d/%s/C", b, half);
      int64_t dc[2] = {md->m, md->h};
      CHECK(gn_h5_write_f64(f, path, 2, dc, md->proj[2 * b + s]));
      CHECK(gn_h5_describe(f, path, "fixed random projection (inverted bottleneck)", "1", "in,hidden"));
      snprintf(path, sizeof path, "/model/block_%03d/%s/W", b, half);
      int64_t dw[2] = {md->h, md->m};
      CHECK(gn_h5_write_f64(f, path, 2, dw, th));
      CHECK(gn_h5_describe(f, path, "trained weights", "1", "hidden,out"));
      snprintf(path, sizeof path, "/model/block_%03d/%s/b", b, half);
      int64_t db[1] = {md->m};
      if (md->hp > md->h) {
        CHECK(gn_h5_write_f64(f, path, 1, db, th + md->h * md->m));
        CHECK(gn_h5_describe(f, path, "trained bias", "1", "out"));
      }
    }
  return GN_OK;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Rank 0 only: deletes all but the newest `keep` checkpoints, sparing step 0. */
static void prune(const gn_deck *deck) {
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
    if (sscanf(e->d_name, "step_%lld.%7s", &s, tail) == 2 && strcmp(tail, "h5") == 0 && s > 0)
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

int gn_ckpt_write(const gn_par *par, const gn_deck *deck, const gn_ckpt_meta *meta,
                  const gn_model *model, const double *theta, gn_optim *opt) {
  char dir[GN_PATH_MAX + 32], path[GN_PATH_MAX + 64];
  snprintf(dir, sizeof dir, "%s/checkpoints", deck->out_dir);
  int st = GN_OK;
  if (par->rank == 0 && mkdir(dir, 0775) != 0 && errno != EEXIST)
    st = GN_RAISE(GN_EIO, "cannot create checkpoint folder %s: %s", dir, strerror(errno));
  CHECK(gn_par_agree(par, st));
  gn_ckpt_path(deck, meta->step, path, sizeof path);
  gn_h5 *f = NULL;
  CHECK(gn_h5_create_atomic(par, path, &f));
  int status = GN_OK;
  CHECK_GOTO(gn_h5_attr_str(f, "/", "format", "gnrev-checkpoint-1"));
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "step", meta->step));
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "epoch", meta->epoch));
  CHECK_GOTO(gn_h5_attr_str(f, "/", "deck", meta->deck));
  CHECK_GOTO(gn_h5_attr_str(f, "/", "deck_source", meta->deck_source ? meta->deck_source : ""));
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "nranks", par->size));
  CHECK_GOTO(gn_h5_attr_str(f, "/", "version", GN_VERSION));
  CHECK_GOTO(write_model(f, model, theta));
  CHECK_GOTO(gn_h5_attr_str(f, "/", "optimizer", gn_deck_method_name(deck->method)));
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "optimizer_t", opt ? opt->t : 0));
  CHECK_GOTO(gn_h5_attr_i64(f, "/", "optimizer_has_momentum", opt ? opt->has_buf1 : 0));
  if (opt) {
    const char *names[2];
    double *arrays[2];
    int k = gn_optim_state(opt, names, arrays);
    for (int i = 0; i < k; ++i) {
      char p[128];
      snprintf(p, sizeof p, "/optimizer/%s", names[i]);
      int64_t dims[1] = {(int64_t)opt->n};
      CHECK_GOTO(gn_h5_write_f64(f, p, 1, dims, arrays[i]));
      CHECK_GOTO(gn_h5_describe(f, p, "optimizer state in the flat parameter order of docs/output-format.md", "1", "parameter"));
    }
  }
  CHECK(gn_h5_close(f));
  if (par->rank == 0) prune(deck);
  return GN_OK;
fail:
  gn_h5_abandon(f);
  return status;
}
