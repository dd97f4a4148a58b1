/* md5.c — MD5 (RFC 1321) over a byte stream, in the form `md5sum` prints. Written out here
 * rather than taken from a crypto library so that the data check needs nothing beyond zlib. */
#include "gnrev/core/md5.h"

#include <stdio.h>
#include <string.h>

/* Per-round shift amounts and the constants floor(2^32 * |sin(i + 1)|). */
static const uint32_t SHIFT[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                   5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                   4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                   6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
static const uint32_t K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};

static uint32_t rotl(uint32_t x, uint32_t s) { return x << s | x >> (32 - s); }

/* One 64-byte block; words are little-endian whatever the host's byte order. */
static void block(uint32_t st[4], const unsigned char *p) {
  uint32_t w[16];
  for (int i = 0; i < 16; ++i)
    w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
           (uint32_t)p[4 * i + 3] << 24;
  uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
  /* The four rounds as separate loops (no branch per step): each differs in its mixing function
   * and in the order it takes the message words. */
#define MD5_STEP(f, g)                                   \
  do {                                                   \
    uint32_t sum = a + (f) + K[i] + w[g];                \
    a = d;                                               \
    d = c;                                               \
    c = b;                                               \
    b = b + rotl(sum, SHIFT[i]);                         \
  } while (0)
  for (int i = 0; i < 16; ++i) MD5_STEP((b & c) | (~b & d), i);
  for (int i = 16; i < 32; ++i) MD5_STEP((d & b) | (~d & c), (5 * i + 1) % 16);
  for (int i = 32; i < 48; ++i) MD5_STEP(b ^ c ^ d, (3 * i + 5) % 16);
  for (int i = 48; i < 64; ++i) MD5_STEP(c ^ (b | ~d), (7 * i) % 16);
#undef MD5_STEP
  st[0] += a;
  st[1] += b;
  st[2] += c;
  st[3] += d;
}

void gn_md5_init(gn_md5 *m) {
  m->state[0] = 0x67452301;
  m->state[1] = 0xefcdab89;
  m->state[2] = 0x98badcfe;
  m->state[3] = 0x10325476;
  m->bytes = 0;
}

void gn_md5_update(gn_md5 *m, const void *data, size_t len) {
  const unsigned char *p = data;
  size_t have = (size_t)(m->bytes % 64);
  m->bytes += len;
  if (have > 0) {
    size_t take = 64 - have < len ? 64 - have : len;
    memcpy(m->buf + have, p, take);
    p += take;
    len -= take;
    if (have + take < 64) return;
    block(m->state, m->buf);
  }
  for (; len >= 64; p += 64, len -= 64) block(m->state, p);
  memcpy(m->buf, p, len);
}

void gn_md5_hex(gn_md5 *m, char hex[33]) {
  /* Padding: one 1 bit, zeros up to 56 bytes mod 64, then the bit length, little-endian. */
  uint64_t bits = m->bytes * 8;
  unsigned char pad[72] = {0x80};
  size_t npad = 64 - (size_t)((m->bytes + 8) % 64);
  for (int i = 0; i < 8; ++i) pad[npad + (size_t)i] = (unsigned char)(bits >> (8 * i));
  gn_md5_update(m, pad, npad + 8);
  for (int i = 0; i < 16; ++i)
    snprintf(hex + 2 * i, 3, "%02x", (unsigned)(m->state[i / 4] >> (8 * (i % 4))) & 0xffu);
}
