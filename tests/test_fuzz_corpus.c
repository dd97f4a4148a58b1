/* test_fuzz_corpus.c — replays the committed fuzz corpus (tests/fuzz/corpus/<target>/) through
 * the same entry points as the libFuzzer targets of make fuzz, compiled normally (and under
 * ASan/UBSan with make check SANITIZE=1), so every input the fuzzer was seeded with or found stays
 * a regression test. A file named ok-* must be accepted, bad-* refused with a documented status
 * and a message; every file must keep the target's properties (see tests/fuzz/fuzz_*.c) and not
 * crash. The corpus is written by tests/fuzz/make_corpus.py. */
// NP: 1
#define GN_FUZZ_NO_MAIN
#include "fuzz/fuzz_cifar.c"
#include "fuzz/fuzz_deck.c"
#include "fuzz/fuzz_hdf5.c"
#include "fuzz/fuzz_idx.c"

#include <dirent.h>
#include <hdf5.h>

#include "testlib.h"

typedef int (*fuzz_fn)(const uint8_t *, size_t);

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static uint8_t *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc((size_t)(len > 0 ? len : 0) + 1);
  if (buf && len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *n = (size_t)(len > 0 ? len : 0);
  return buf;
}

/* Files in tests/fuzz/corpus/<target>/: replay makes one check per file. */
static int corpus_size(const char *root, const char *target) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", root, target);
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d)) != NULL && n < 4096;) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

static void replay(const char *root, const char *target, fuzz_fn fn) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", root, target);
  DIR *d = opendir(dir);
  char *names[4096];
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL && n < 4096)
    if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
  if (d) closedir(d);
  qsort(names, (size_t)n, sizeof *names, by_name);
  int n_ok = 0, n_bad = 0;
  for (int i = 0; i < n; ++i) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    size_t len = 0;
    uint8_t *data = slurp(path, &len);
    if (!data) {
      GT_CHECK(0, "corpus %s/%s is readable", target, names[i]);
      free(names[i]);
      continue;
    }
    const int before = fuzz_violations;
    const int st = fn(data, len);
    const int kept = fuzz_violations == before;
    free(data);
    if (!strncmp(names[i], "ok-", 3)) {
      ++n_ok;
      GT_CHECK(st == GN_OK && kept, "corpus %s/%s is accepted and keeps the target's properties", target, names[i]);
      if (st != GN_OK) gt_note("status %d: %.300s", st, gn_error_message());
    } else if (!strncmp(names[i], "bad-", 4)) {
      ++n_bad;
      GT_CHECK(st != GN_OK && kept, "corpus %s/%s is refused with a documented status and a message", target,
               names[i]);
      if (st == GN_OK) gt_note("accepted");
    } else {
      GT_CHECK(kept, "corpus %s/%s (found by fuzzing) keeps the target's properties", target, names[i]);
    }
    free(names[i]);
  }
  GT_REQUIRE(n_ok > 0 && n_bad > 0, "corpus %s holds accepted and refused seeds (%d ok, %d bad)", target, n_ok, n_bad);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  const char *root = getenv("GNREV_ROOT");
  if (!root || !root[0]) root = ".";
  gt_plan(corpus_size(root, "deck") + corpus_size(root, "idx") + corpus_size(root, "cifar") +
          corpus_size(root, "hdf5"));
  replay(root, "deck", fuzz_deck_run);
  replay(root, "idx", fuzz_idx_run);
  replay(root, "cifar", fuzz_cifar_run);
  replay(root, "hdf5", fuzz_hdf5_run);
  if (fuzz_h5_par_ready) gn_par_close(&fuzz_h5_par);
  MPI_Finalize();
  return gt_finish();
}
