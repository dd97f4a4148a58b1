/* err.h — the one error convention of gnrev.
 *
 * Every fallible function returns an int status (GN_OK = 0). The function that detects a problem
 * records a human message with gn_error() (via GN_FAIL); every caller on the way up adds its
 * file, line and function with CHECK(), so the final report carries a traceback. Whether an error
 * ends the run once on rank 0 or through MPI_Abort is decided by the caller (see par.h). */
#ifndef GNREV_ERR_H
#define GNREV_ERR_H

#include <stddef.h>

/* Status codes; also the process exit codes (see docs/operations.md). */
enum gn_status {
  GN_OK = 0,
  GN_EINPUT = 2,    /* bad deck, option or data content: the user must fix the input */
  GN_EIO = 3,       /* a file could not be opened, read or written */
  GN_ENOMEM = 4,    /* an allocation failed or a plan does not fit in memory */
  GN_ENUMERIC = 5,  /* a non-finite value or a failed factorisation */
  GN_ELIB = 6,      /* ScaLAPACK/LAPACK/HDF5 reported an error */
  GN_EMPI = 7,      /* an MPI call failed */
  GN_EINTERNAL = 8, /* a broken invariant: a bug in gnrev */
  GN_ESTOPPED = 75  /* stopped by a signal after a checkpoint: requeue me (EX_TEMPFAIL) */
};

/* Local. Records a formatted message for status at file:line (func), replacing any earlier
 * message and trace, and returns status. */
int gn_error(int status, const char *file, int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Local. Adds one traceback frame to the current error. */
void gn_error_trace(const char *file, int line, const char *func);

/* Local. The message of the last error ("" if none) and its traceback, innermost first. */
const char *gn_error_message(void);
const char *gn_error_traceback(void);

/* Local. Replaces the stored message (used when a message arrives from another rank). */
void gn_error_set_message(const char *msg, const char *traceback);

/* Local. Forgets the last error. */
void gn_error_clear(void);

/* Local. A short name for a status ("input error", "I/O error", ...). */
const char *gn_status_name(int status);

/* Local. Untrusted text (deck contents, file names) made safe to print on a terminal: control
 * characters other than newline and tab, C1 controls, bidirectional overrides and bytes that are
 * not UTF-8 become \xNN escapes; the rest of valid UTF-8 is kept. gn_escape_char handles the one
 * character at s (n bytes left, n >= 1): writes it, or its escape, NUL-terminated into out, sets
 * *width to the columns it takes when printed, and returns the bytes it consumed. gn_escape_text
 * returns a malloc'ed escaped copy (NULL when out of memory). */
enum { GN_ESCAPE_MAX = 20 };
size_t gn_escape_char(const char *s, size_t n, char out[GN_ESCAPE_MAX], int *width);
char *gn_escape_text(const char *s);

#define GN_FAIL(status, ...) return gn_error((status), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define GN_RAISE(status, ...) gn_error((status), __FILE__, __LINE__, __func__, __VA_ARGS__)

#define CHECK(call)                                      \
  do {                                                   \
    int gn_s_ = (call);                                  \
    if (gn_s_ != GN_OK) {                                \
      gn_error_trace(__FILE__, __LINE__, __func__);      \
      return gn_s_;                                      \
    }                                                    \
  } while (0)

/* For functions that own resources: needs `int status` and a label `fail` that frees them. */
#define CHECK_GOTO(call)                                 \
  do {                                                   \
    status = (call);                                     \
    if (status != GN_OK) {                               \
      gn_error_trace(__FILE__, __LINE__, __func__);      \
      goto fail;                                         \
    }                                                    \
  } while (0)

#define FAIL_GOTO(st, ...)                                           \
  do {                                                               \
    status = gn_error((st), __FILE__, __LINE__, __func__, __VA_ARGS__); \
    goto fail;                                                       \
  } while (0)

#define CHECK_ALLOC(ptr)                                                        \
  do {                                                                          \
    if ((ptr) == NULL)                                                          \
      return gn_error(GN_ENOMEM, __FILE__, __LINE__, __func__, "out of memory: %s", #ptr); \
  } while (0)

#endif
