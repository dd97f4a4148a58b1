/* test_md5.c — the MD5 digest (core/md5) against the test suite of RFC 1321 (appendix A.5), and
 * a long message fed in pieces of awkward sizes against the same message in one piece and
 * against `md5sum` of the same bytes. */
// NP: 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gnrev/core/md5.h"
#include "testlib.h"

static void hex_of(const void *data, size_t len, char hex[33]) {
  gn_md5 m;
  gn_md5_init(&m);
  gn_md5_update(&m, data, len);
  gn_md5_hex(&m, hex);
}

static void test_rfc1321_suite(void) {
  static const char *const cases[][2] = {
      {"", "d41d8cd98f00b204e9800998ecf8427e"},
      {"a", "0cc175b9c0f1b6a831c399e269772661"},
      {"abc", "900150983cd24fb0d6963f7d28e17f72"},
      {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
      {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
      {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"},
      {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
       "57edf4a22be3c955ac49da2e2107b67a"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
    char hex[33];
    hex_of(cases[c][0], strlen(cases[c][0]), hex);
    GT_CHECK(strcmp(hex, cases[c][1]) == 0, "rfc1321: MD5(\"%.20s%s\") = %s (got %s)", cases[c][0],
             strlen(cases[c][0]) > 20 ? "..." : "", cases[c][1], hex);
  }
}

/* 100 003 bytes: pieces of 1, 63, 64, 65, 7 and 1000 bytes cross every block boundary case. */
static void test_pieces_and_md5sum(void) {
  enum { N = 100003 };
  unsigned char *data = malloc(N);
  for (size_t i = 0; i < N; ++i) data[i] = (unsigned char)((i * 2654435761u) >> 13);
  char whole[33], pieces[33];
  hex_of(data, N, whole);
  static const size_t sizes[] = {1, 63, 64, 65, 7, 1000};
  gn_md5 m;
  gn_md5_init(&m);
  for (size_t off = 0, k = 0; off < N; ++k) {
    size_t len = sizes[k % 6] < N - off ? sizes[k % 6] : N - off;
    gn_md5_update(&m, data + off, len);
    off += len;
  }
  gn_md5_hex(&m, pieces);
  GT_CHECK(strcmp(whole, pieces) == 0, "pieces: 1/63/64/65/7/1000-byte updates give the one-piece digest");

  char path[] = "/tmp/gnrev_test_md5_XXXXXX", cmd[128], sum[64] = "";
  int fd = mkstemp(path);
  FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (f) {
    fwrite(data, 1, N, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "md5sum %s", path);
    FILE *p = popen(cmd, "r");
    if (p) {
      if (!fgets(sum, sizeof sum, p)) sum[0] = '\0';
      pclose(p);
    }
    unlink(path);
  }
  if (sum[0] == '\0')
    gt_note("skip: md5sum could not be run");
  else
    GT_CHECK(strncmp(sum, whole, 32) == 0, "md5sum: the same 100 003 bytes give %.32s (got %s)", sum, whole);
  free(data);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  test_rfc1321_suite();
  test_pieces_and_md5sum();
  MPI_Finalize();
  return gt_finish();
}
