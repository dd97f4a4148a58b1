/* md5.h — the MD5 digest (RFC 1321), streamed: used to recognise known data files by content.
 * MD5 is no protection against a deliberate forgery; it names files, as `md5sum` does. */
#ifndef GNREV_CORE_MD5_H
#define GNREV_CORE_MD5_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t state[4];    /* A, B, C, D */
  uint64_t bytes;       /* message length so far */
  unsigned char buf[64]; /* the incomplete block */
} gn_md5;

/* Local. Starts a digest. */
void gn_md5_init(gn_md5 *m);

/* Local. Adds len bytes of data. */
void gn_md5_update(gn_md5 *m, const void *data, size_t len);

/* Local. Ends the digest and writes it as 32 lower-case hex digits and a NUL into hex[33], the
 * form `md5sum` prints. */
void gn_md5_hex(gn_md5 *m, char hex[33]);

#endif
