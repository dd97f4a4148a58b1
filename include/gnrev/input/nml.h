/* nml.h — the Fortran namelist syntax, independent of which groups and keys exist.
 *
 * Accepted: groups `&name ... /` (also `$name ... $end` and `&end`), several per file in any
 * order; `!` comments to the end of the line; case-insensitive names (returned in lower case);
 * items `key = value` or `key(i) = value` separated by commas, blanks or newlines; values are
 * quoted strings ('...' or "...", a doubled quote stands for itself, no line breaks inside),
 * logicals (.true. .false. .t. .f. t f true false, any case), integers, reals (1.0, .5, 5.,
 * 1e-3, 1.0d-3, 1.5D0) and repeats (3*0.5, 2*'a'). Null values (`a = ,`) are rejected because in
 * a deck they are almost always a forgotten value.
 *
 * Problems are collected in a gn_nml_diag, one block per problem:
 *     file:line:col: error: message
 *        14 |   learning_rate = 0.1
 *           |   ^~~~~~~~~~~~~
 *       note lines...
 * so that a caller (deck.c) can add its own checks in the same form and report everything at once. */
#ifndef GNREV_NML_H
#define GNREV_NML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
  GN_NML_INT,     /* integer literal: i (and r = (double)i) */
  GN_NML_REAL,    /* real literal: r */
  GN_NML_LOGICAL, /* logical literal: l */
  GN_NML_STRING,  /* quoted string: str holds the contents with doubled quotes undone */
  GN_NML_BARE     /* anything else (an unquoted word such as gn or abc): text only */
} gn_nml_kind;

typedef struct {
  gn_nml_kind kind;
  int64_t i;          /* GN_NML_INT */
  double r;           /* GN_NML_REAL, and GN_NML_INT converted */
  bool l;             /* GN_NML_LOGICAL */
  char *str;          /* GN_NML_STRING contents; NULL otherwise */
  char *text;         /* the value as written, without any repeat prefix */
  int line, col, len; /* 1-based position and length in the source; line 0: not from a file */
} gn_nml_value;

typedef struct {
  char *key;            /* lower case */
  int line, col, len;   /* position of the key */
  bool has_index;       /* written as key(index) = ... */
  int64_t index;
  gn_nml_value *values; /* in order, repeats expanded */
  int64_t n_values;
} gn_nml_item;

typedef struct {
  char *name;         /* lower case, without & or $ */
  int line, col, len; /* position of the &name token */
  gn_nml_item *items;
  int64_t n_items;
} gn_nml_group;

typedef struct {
  gn_nml_group *groups;
  int64_t n_groups;
} gn_nml_file;

/* Error blocks kept in the text; later ones are only counted (keeps a report readable and within
 * err.c's message buffer). */
enum { GN_NML_MAX_BLOCKS = 60 };

typedef struct {
  size_t off; /* start of the block in text */
  int line, col; /* source position it points at; line 0 if none */
} gn_nml_diag_block;

/* Collected problems; zero-initialise before use ({0}). */
typedef struct {
  char *text;     /* the blocks, NUL-terminated (NULL while empty) */
  size_t len, cap;
  gn_nml_diag_block *blocks; /* one per kept block, in the order recorded */
  int n_blocks, blocks_cap;
  int n_errors;   /* blocks reported (including those beyond the printed cap) */
  bool oom;       /* an allocation failed while recording: the caller reports GN_ENOMEM */
} gn_nml_diag;

/* Local. Parses namelist text. `filename` names the source in messages. Syntax errors do not stop
 * the parse: each is recorded in diag (diag->n_errors grows), the offending item is dropped and
 * parsing resumes at the next `key =` or group boundary, so later problems are reported too.
 * Returns GN_OK (even with syntax errors), or GN_ENOMEM. Free `file` with gn_nml_free in
 * every case. */
int gn_nml_parse(const char *text, const char *filename, gn_nml_file *file, gn_nml_diag *diag);

/* Local. Parses one command-line override "group:key=value" or "group:key(i)=value" into a
 * group with one item (values have line 0). The value uses the namelist value syntax, except that
 * only blanks and commas separate values, so an unquoted word (a path such as /data/x.h5) comes
 * back whole as GN_NML_BARE: shells strip quotes, and deck.c accepts bare words for string keys
 * given this way. Problems are recorded in diag located as "-P <spec>"; on a syntax error the
 * group has no item. Returns GN_OK or GN_ENOMEM; free the group with gn_nml_group_free. */
int gn_nml_parse_override(const char *spec, gn_nml_group *group, gn_nml_diag *diag);

/* Local. Free everything a parse allocated (safe on zeroed or partially filled structs). */
void gn_nml_free(gn_nml_file *file);
void gn_nml_group_free(gn_nml_group *group);
void gn_nml_diag_free(gn_nml_diag *diag);

/* Local. Starts a new error block "where:line:col: error: <message>" followed, when line > 0 and
 * `source` is given, by source line `line` and a caret under columns col .. col+len-1. With
 * line 0 the header is "where: error: <message>". */
void gn_nml_diag_error(gn_nml_diag *diag, const char *where, const char *source, int line, int col,
                       int len, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* Local. Reorders the blocks by source position (stable; blocks without a line go last), so a report
 * that mixes syntax and meaning errors reads top to bottom like the deck. */
void gn_nml_diag_sort(gn_nml_diag *diag);

/* Local. Appends an indented note line ("  did you mean ...") to the current block. */
void gn_nml_diag_note(gn_nml_diag *diag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Local. Optimal-string-alignment (Damerau-Levenshtein) distance, case-insensitive. */
int gn_nml_distance(const char *a, const char *b);

/* Local. The candidate a misspelt `name` most likely meant, or NULL: a close spelling (distance
 * <= 2, <= 1 for names of 3 characters or fewer), else matching initials (learning_rate -> lr),
 * else a prefix or substring of at least 4 characters (batch -> batch_size). */
const char *gn_nml_suggest(const char *name, const char *const *candidates, int n_candidates);

#endif
