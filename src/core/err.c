/* err.c — storage for the current error message and its traceback (one per process). */
#include "gnrev/core/err.h"

#include <stdarg.h>
#include <stdio.h>
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
