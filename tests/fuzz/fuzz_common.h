/* fuzz_common.h — what the fuzz targets (tests/fuzz/fuzz_*.c) share: a private scratch folder for
 * the files an input becomes, a cursor that cuts one input into several files, and the property
 * every target asserts on a refused input: a documented status and a non-empty message.
 *
 * Each target defines `static int fuzz_<name>_run(const uint8_t *data, size_t size)`, returning
 * the gnrev status the input produced. Built with libFuzzer (make fuzz) a target also defines
 * LLVMFuzzerTestOneInput, and a broken property aborts so libFuzzer keeps the reproducer; built
 * with GN_FUZZ_NO_MAIN (tests/test_fuzz_corpus.c includes every target) a broken property is
 * counted in fuzz_violations instead, so the replay test names the corpus file. */
#ifndef GNREV_FUZZ_COMMON_H
#define GNREV_FUZZ_COMMON_H

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gnrev/core/err.h"

static int fuzz_violations = 0;
static char fuzz_dir[256] = "";

__attribute__((format(printf, 1, 2), unused)) static void fuzz_violation(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz property broken: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  fflush(stderr);
  ++fuzz_violations;
#ifndef GN_FUZZ_NO_MAIN
  abort();
#endif
}

/* A refused input must say why, with one of the statuses main.c documents as exit codes. */
__attribute__((unused)) static void fuzz_check_refusal(const char *target, int status) {
  if (status == GN_OK) return;
  if (status != GN_EINPUT && status != GN_EIO && status != GN_ENOMEM && status != GN_ELIB)
    fuzz_violation("%s: status %d (%s) for a bad input; expected input, I/O, memory or library error: %s",
                   target, status, gn_status_name(status), gn_error_message());
  if (gn_error_message()[0] == '\0') fuzz_violation("%s: status %d with an empty message", target, status);
}

__attribute__((unused)) static void fuzz_clear_dir(void) {
  if (!fuzz_dir[0]) return;
  DIR *d = opendir(fuzz_dir);
  if (!d) return;
  struct dirent *e;
  char path[512];
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", fuzz_dir, e->d_name);
    unlink(path);
  }
  closedir(d);
}

static void fuzz_remove_dir(void) {
  fuzz_clear_dir();
  if (fuzz_dir[0]) rmdir(fuzz_dir);
}

/* The scratch folder, emptied: made on first use, removed at exit. */
__attribute__((unused)) static const char *fuzz_scratch(void) {
  if (!fuzz_dir[0]) {
    const char *tmp = getenv("TMPDIR");
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/gnrev_fuzz_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(fuzz_dir)) {
      perror("mkdtemp");
      abort();
    }
    atexit(fuzz_remove_dir);
  }
  fuzz_clear_dir();
  return fuzz_dir;
}

/* Writes n bytes as scratch/name. */
__attribute__((unused)) static void fuzz_write(const char *name, const void *data, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", fuzz_dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || (n && fwrite(data, 1, n, f) != n)) {
    perror(path);
    abort();
  }
  fclose(f);
}

/* Cuts an input into fields: bytes and little-endian integers; past the end it yields zeros. */
typedef struct {
  const uint8_t *p;
  size_t left;
} fuzz_cursor;

__attribute__((unused)) static unsigned fuzz_u8(fuzz_cursor *c) {
  if (!c->left) return 0;
  --c->left;
  return *c->p++;
}

__attribute__((unused)) static unsigned fuzz_u16(fuzz_cursor *c) {
  unsigned lo = fuzz_u8(c);
  return lo | fuzz_u8(c) << 8;
}

/* The next len bytes (fewer at the end); advances past them. */
__attribute__((unused)) static const uint8_t *fuzz_take(fuzz_cursor *c, size_t len, size_t *got) {
  *got = len < c->left ? len : c->left;
  const uint8_t *p = c->p;
  c->p += *got;
  c->left -= *got;
  return p;
}

/* After a reader call: a refusal must carry a documented status and a message; an acceptance must
 * give labels of the 10 classes the format allows. */
__attribute__((unused)) static void fuzz_check_read(const char *target, int st, const int32_t *y, int64_t n) {
  char what[64];
  snprintf(what, sizeof what, "%s read", target);
  if (st != GN_OK) {
    fuzz_check_refusal(what, st);
    return;
  }
  for (int64_t i = 0; i < n; ++i)
    if (y[i] < 0 || y[i] > 9) {
      fuzz_violation("%s: accepted label %d of record %lld", target, y[i], (long long)i);
      return;
    }
}

#endif
