/* err.c — storage for the current error message and its traceback (one per process). */
#include "gnrev/core/err.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MSG_CAP = 65536, TRACE_CAP = 4096 };

static char msg_buf[MSG_CAP];
static char trace_buf[TRACE_CAP];

static void append_frame(const char *file, int line, const char *func) {
  size_t used = strlen(trace_buf);
  if (used + 1 >= TRACE_CAP) return;
  snprintf(trace_buf + used, TRACE_CAP - used, "%s  at %s:%d (%s)", used ? "\n" : "", file, line, func);
}

int gn_error(int status, const char *file, int line, const char *func, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg_buf, MSG_CAP, fmt, ap);
  va_end(ap);
  trace_buf[0] = '\0';
  append_frame(file, line, func);
  return status;
}

void gn_error_trace(const char *file, int line, const char *func) { append_frame(file, line, func); }

const char *gn_error_message(void) { return msg_buf; }
const char *gn_error_traceback(void) { return trace_buf; }

void gn_error_set_message(const char *msg, const char *traceback) {
  snprintf(msg_buf, MSG_CAP, "%s", msg ? msg : "");
  snprintf(trace_buf, TRACE_CAP, "%s", traceback ? traceback : "");
}

void gn_error_clear(void) {
  msg_buf[0] = '\0';
  trace_buf[0] = '\0';
}

const char *gn_status_name(int status) {
  switch (status) {
    case GN_OK: return "success";
    case GN_EINPUT: return "input error";
    case GN_EIO: return "I/O error";
    case GN_ENOMEM: return "out of memory";
    case GN_ENUMERIC: return "numerical error";
    case GN_ELIB: return "library error";
    case GN_EMPI: return "MPI error";
    case GN_EINTERNAL: return "internal error";
    case GN_ESTOPPED: return "stopped by signal";
    default: return "error";
  }
}

/* ---- printing untrusted text ----------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if there is none. */
static size_t utf8_len(const unsigned char *p, size_t n) {
  const unsigned c = p[0];
  size_t len;
  unsigned lo = 0x80, hi = 0xBF; /* the range of the second byte */
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) len = 3;
  else if (c >= 0xF0 && c <= 0xF4) len = 4;
  else return 0;
  if (c == 0xE0) lo = 0xA0;      /* overlong */
  if (c == 0xED) hi = 0x9F;      /* surrogates */
  if (c == 0xF0) lo = 0x90;      /* overlong */
  if (c == 0xF4) hi = 0x8F;      /* past U+10FFFF */
  if (n < len || p[1] < lo || p[1] > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if (p[k] < 0x80 || p[k] > 0xBF) return 0;
  return len;
}

size_t gn_escape_char(const char *s, size_t n, char out[GN_ESCAPE_MAX], int *width) {
  const unsigned char *p = (const unsigned char *)s;
  size_t len = n ? utf8_len(p, n) : 0;
  bool escape = len == 0;
  if (len == 1) escape = p[0] < 0x20 || p[0] == 0x7F;
  /* C1 controls (U+0080..U+009F: U+009B is a CSI on some terminals) and the bidirectional
   * overrides and isolates (U+202A..U+202E, U+2066..U+2069) that reorder what is displayed. */
  if (len == 2) escape = p[0] == 0xC2 && p[1] <= 0x9F;
  if (len == 3 && p[0] == 0xE2)
    escape = (p[1] == 0x80 && p[2] >= 0xAA && p[2] <= 0xAE) || (p[1] == 0x81 && p[2] >= 0xA6 && p[2] <= 0xA9);
  if (len == 0) len = 1;
  if (!escape) {
    memcpy(out, s, len);
    out[len] = '\0';
    *width = 1;
    return len;
  }
  size_t w = 0;
  for (size_t k = 0; k < len; ++k) w += (size_t)snprintf(out + w, GN_ESCAPE_MAX - w, "\\x%02x", p[k]);
  *width = (int)w;
  return len;
}

char *gn_escape_text(const char *s) {
  size_t n = strlen(s), used = 0;
  char *out = malloc(4 * n + 1); /* an escape takes 4 bytes per byte it replaces */
  if (!out) return NULL;
  for (size_t i = 0; i < n;) {
    char one[GN_ESCAPE_MAX];
    int width;
    if (s[i] == '\n' || s[i] == '\t') {
      out[used++] = s[i++];
      continue;
    }
    i += gn_escape_char(s + i, n - i, one, &width);
    size_t k = strlen(one);
    memcpy(out + used, one, k);
    used += k;
  }
  out[used] = '\0';
  return out;
}
