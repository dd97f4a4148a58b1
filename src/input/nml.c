/* nml.c — Fortran namelist lexer and parser, diagnostics with source echo, and name suggestions.
 * Knows nothing about gnrev's groups and keys: that is deck.c. */
#include "gnrev/input/nml.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gnrev/core/err.h"

enum { MAX_REPEAT = 1000000 };

/* ---------------------------------------------------------------- diagnostics */

static void diag_vappend(gn_nml_diag *d, const char *fmt, va_list ap) {
  if (d->oom) return;
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) return;
  if (d->len + (size_t)n + 1 > d->cap) {
    size_t cap = d->cap ? d->cap : 1024;
    while (d->len + (size_t)n + 1 > cap) cap *= 2;
    char *t = realloc(d->text, cap);
    if (!t) {
      d->oom = true;
      return;
    }
    d->text = t;
    d->cap = cap;
  }
  vsnprintf(d->text + d->len, d->cap - d->len, fmt, ap);
  d->len += (size_t)n;
}

__attribute__((format(printf, 2, 3))) static void diag_append(gn_nml_diag *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_vappend(d, fmt, ap);
  va_end(ap);
}

/* Appends untrusted text escaped (gn_escape_text): a deck must not reach the terminal raw. */
static void diag_append_escaped(gn_nml_diag *d, const char *text) {
  char *safe = gn_escape_text(text);
  if (!safe) {
    d->oom = true;
    return;
  }
  diag_append(d, "%s", safe);
  free(safe);
}

/* Echo source line `line` (escaped; tabs shown as blanks) and a caret under the bytes [col - 1,
 * col - 1 + len) of it, counted in the columns the escaped echo takes. */
static void diag_echo(gn_nml_diag *d, const char *source, int line, int col, int len) {
  const char *p = source;
  for (int l = 1; l < line && *p; ++l) {
    const char *nl = strchr(p, '\n');
    if (!nl) return;
    p = nl + 1;
  }
  size_t n = strcspn(p, "\r\n");
  if (col < 1) col = 1;
  if (len < 1) len = 1;
  const size_t first = (size_t)col - 1, end = first + (size_t)len;
  int before = 0, under = 0;
  diag_append(d, "%5d | ", line);
  for (size_t k = 0; k < n;) {
    char one[GN_ESCAPE_MAX];
    int w = 1;
    size_t used = 1;
    if (p[k] == '\t') {
      snprintf(one, sizeof one, " ");
    } else {
      used = gn_escape_char(p + k, n - k, one, &w);
    }
    diag_append(d, "%s", one);
    if (k < first) before += w;
    else if (k < end) under += w;
    k += used;
  }
  diag_append(d, "\n      | ");
  for (int k = 0; k < before; ++k) diag_append(d, " ");
  diag_append(d, "^");
  /* Underline the token, but not past the end of the line. */
  for (int k = 1; k < under; ++k) diag_append(d, "~");
  diag_append(d, "\n");
}

void gn_nml_diag_error(gn_nml_diag *diag, const char *where, const char *source, int line, int col,
                       int len, const char *fmt, ...) {
  if (++diag->n_errors > GN_NML_MAX_BLOCKS || diag->oom) return;
  if (diag->n_blocks == diag->blocks_cap) {
    int cap = diag->blocks_cap ? 2 * diag->blocks_cap : 16;
    gn_nml_diag_block *b = realloc(diag->blocks, (size_t)cap * sizeof *b);
    if (!b) {
      diag->oom = true;
      return;
    }
    diag->blocks = b;
    diag->blocks_cap = cap;
  }
  diag->blocks[diag->n_blocks++] = (gn_nml_diag_block){diag->len, line, col};
  char head[64], msg[2048];
  if (line > 0) snprintf(head, sizeof head, ":%d:%d: error: ", line, col);
  else snprintf(head, sizeof head, ": error: ");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  diag_append_escaped(diag, where);
  diag_append(diag, "%s", head);
  diag_append_escaped(diag, msg);
  diag_append(diag, "\n");
  if (line > 0 && source) diag_echo(diag, source, line, col, len);
}

void gn_nml_diag_note(gn_nml_diag *diag, const char *fmt, ...) {
  if (diag->n_errors > GN_NML_MAX_BLOCKS) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  diag_append(diag, "  ");
  diag_append_escaped(diag, msg);
  diag_append(diag, "\n");
}

static bool block_after(const gn_nml_diag_block *a, const gn_nml_diag_block *b) {
  int la = a->line > 0 ? a->line : INT_MAX, lb = b->line > 0 ? b->line : INT_MAX;
  return la > lb || (la == lb && la != INT_MAX && a->col > b->col);
}

void gn_nml_diag_sort(gn_nml_diag *diag) {
  int n = diag->n_blocks;
  if (n < 2 || diag->oom) return;
  char *sorted = malloc(diag->len + 1);
  gn_nml_diag_block *order = malloc((size_t)n * sizeof *order);
  if (!sorted || !order) {
    free(sorted);
    free(order);
    return; /* the unsorted report is still complete */
  }
  memcpy(order, diag->blocks, (size_t)n * sizeof *order);
  /* Insertion sort: stable, and reports are short. */
  for (int i = 1; i < n; ++i) {
    gn_nml_diag_block b = order[i];
    int j = i;
    while (j > 0 && block_after(&order[j - 1], &b)) {
      order[j] = order[j - 1];
      --j;
    }
    order[j] = b;
  }
  size_t used = 0;
  for (int i = 0; i < n; ++i) {
    size_t off = order[i].off, end = diag->len;
    for (int j = 0; j < n; ++j)
      if (diag->blocks[j].off > off && diag->blocks[j].off < end) end = diag->blocks[j].off;
    memcpy(sorted + used, diag->text + off, end - off);
    order[i].off = used;
    used += end - off;
  }
  sorted[used] = '\0';
  free(diag->text);
  free(diag->blocks);
  diag->text = sorted;
  diag->cap = diag->len + 1;
  diag->blocks = order;
  diag->blocks_cap = n;
}

void gn_nml_diag_free(gn_nml_diag *diag) {
  free(diag->blocks);
  free(diag->text);
  *diag = (gn_nml_diag){0};
}

/* ---------------------------------------------------------------- suggestions */

int gn_nml_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n > 64 || m > 64) return (int)(n > m ? n : m); /* names are short; no need for the heap */
  int d[65][65];
  for (size_t i = 0; i <= n; ++i) d[i][0] = (int)i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = (int)j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
      int v = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
      if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
      if (i > 1 && j > 1 && tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 2]) &&
          tolower((unsigned char)a[i - 2]) == tolower((unsigned char)b[j - 1]) && d[i - 2][j - 2] + 1 < v)
        v = d[i - 2][j - 2] + 1;
      d[i][j] = v;
    }
  }
  return d[n][m];
}

/* First letter of each '_'- or '-'-separated word, lower case. */
static void initials(const char *s, char *out, size_t cap) {
  size_t k = 0;
  bool start = true;
  for (; *s && k + 1 < cap; ++s) {
    if (*s == '_' || *s == '-') {
      start = true;
    } else if (start) {
      out[k++] = (char)tolower((unsigned char)*s);
      start = false;
    }
  }
  out[k] = '\0';
}

static bool contains_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; ++hay)
    if (strncasecmp(hay, needle, n) == 0) return true;
  return false;
}

const char *gn_nml_suggest(const char *name, const char *const *cand, int n_cand) {
  size_t len = strlen(name);
  int limit = len <= 3 ? 1 : 2;
  const char *best = NULL;
  int best_d = limit + 1;
  for (int k = 0; k < n_cand; ++k) {
    int dist = gn_nml_distance(name, cand[k]);
    if (dist < best_d) {
      best_d = dist;
      best = cand[k];
    }
  }
  if (best) return best;
  char in[64], ic[64];
  initials(name, in, sizeof in);
  for (int k = 0; k < n_cand; ++k) {
    initials(cand[k], ic, sizeof ic);
    bool name_multiword = strpbrk(name, "_-") != NULL, cand_multiword = strpbrk(cand[k], "_-") != NULL;
    if ((name_multiword && strlen(in) >= 2 && strcasecmp(in, cand[k]) == 0) ||
        (cand_multiword && strlen(ic) >= 2 && strcasecmp(ic, name) == 0))
      return cand[k];
  }
  for (int k = 0; k < n_cand; ++k) {
    size_t lc = strlen(cand[k]);
    if ((len >= 4 && contains_ci(cand[k], name)) || (lc >= 4 && contains_ci(name, cand[k]))) return cand[k];
  }
  return NULL;
}

/* ---------------------------------------------------------------- lexer */

typedef enum { T_EOF, T_WORD, T_STRING, T_BADSTRING, T_EQ, T_COMMA, T_LPAREN, T_RPAREN, T_SLASH, T_GROUP, T_END } tok_kind;

typedef struct {
  tok_kind kind;
  const char *p; /* first character (the quote of a string, the & of a group) */
  size_t n;      /* length in characters */
  int line, col;
} token;

typedef struct {
  token *v;
  size_t n, cap;
} token_list;

static int push_token(token_list *tl, token t) {
  if (tl->n == tl->cap) {
    size_t cap = tl->cap ? 2 * tl->cap : 256;
    token *v = realloc(tl->v, cap * sizeof *v);
    if (!v) GN_FAIL(GN_ENOMEM, "out of memory while reading a namelist (%zu tokens)", tl->n);
    tl->v = v;
    tl->cap = cap;
  }
  tl->v[tl->n++] = t;
  return GN_OK;
}

/* `override` mode: only blanks and commas separate words (see gn_nml_parse_override). */
static bool is_word_char(char c, bool override) {
  if (c == '\0' || isspace((unsigned char)c) || c == ',' || c == '\'' || c == '"') return false;
  if (override) return true;
  return !strchr("/=!()", c);
}

static int lex(const char *text, bool override, int first_col, token_list *tl) {
  const char *p = text, *line_start = text;
  int line = override ? 0 : 1;
  for (;;) {
    while (*p && (isspace((unsigned char)*p) || (*p == '!' && !override))) {
      if (*p == '!') {
        while (*p && *p != '\n') ++p;
        continue;
      }
      if (*p == '\n') {
        ++line;
        line_start = p + 1;
      }
      ++p;
    }
    token t = {T_EOF, p, 0, line, (int)(p - line_start) + first_col};
    if (!*p) {
      CHECK(push_token(tl, t));
      return GN_OK;
    }
    char c = *p;
    if (c == '\'' || c == '"') {
      const char *q = p + 1;
      for (;;) {
        if (*q == c && q[1] == c) {
          q += 2;
        } else if (*q == c) {
          t.kind = T_STRING;
          ++q;
          break;
        } else if (*q == '\0' || *q == '\n' || *q == '\r') {
          t.kind = T_BADSTRING;
          break;
        } else {
          ++q;
        }
      }
      t.n = (size_t)(q - p);
    } else if (!override && (c == '&' || c == '$')) {
      const char *q = p + 1;
      while (isalnum((unsigned char)*q) || *q == '_') ++q;
      t.n = (size_t)(q - p);
      t.kind = (t.n == 4 && strncasecmp(p + 1, "end", 3) == 0) ? T_END : T_GROUP;
    } else if (!override && strchr("=,()/", c)) {
      t.n = 1;
      t.kind = c == '=' ? T_EQ : c == ',' ? T_COMMA : c == '(' ? T_LPAREN : c == ')' ? T_RPAREN : T_SLASH;
    } else if (c == ',') {
      t.n = 1;
      t.kind = T_COMMA;
    } else {
      const char *q = p;
      while (is_word_char(*q, override)) ++q;
      t.n = (size_t)(q - p);
      t.kind = T_WORD;
    }
    CHECK(push_token(tl, t));
    p += t.n;
  }
}

/* ---------------------------------------------------------------- values */

static bool is_identifier(const char *p, size_t n) {
  if (n == 0 || !isalpha((unsigned char)p[0])) return false;
  for (size_t k = 1; k < n; ++k)
    if (!isalnum((unsigned char)p[k]) && p[k] != '_') return false;
  return true;
}

static char *dup_lower(const char *p, size_t n) {
  char *s = malloc(n + 1);
  if (!s) return NULL;
  for (size_t k = 0; k < n; ++k) s[k] = (char)tolower((unsigned char)p[k]);
  s[n] = '\0';
  return s;
}

static char *dup_n(const char *p, size_t n) {
  char *s = malloc(n + 1);
  if (!s) return NULL;
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

static bool all_digits(const char *p, size_t n) {
  if (n == 0) return false;
  for (size_t k = 0; k < n; ++k)
    if (!isdigit((unsigned char)p[k])) return false;
  return true;
}

/* Fortran real: [sign] (digits [. [digits]] | . digits) [(e|d|q) [sign] digits], with a point or
 * an exponent (else it is an integer). */
static bool is_real(const char *p, size_t n) {
  size_t k = 0, mant = 0;
  bool point = false, expo = false;
  if (k < n && (p[k] == '+' || p[k] == '-')) ++k;
  while (k < n && isdigit((unsigned char)p[k])) ++k, ++mant;
  if (k < n && p[k] == '.') {
    point = true;
    ++k;
    while (k < n && isdigit((unsigned char)p[k])) ++k, ++mant;
  }
  if (mant == 0) return false;
  if (k < n && strchr("eEdDqQ", p[k])) {
    expo = true;
    ++k;
    if (k < n && (p[k] == '+' || p[k] == '-')) ++k;
    if (!all_digits(p + k, n - k)) return false;
    k = n;
  }
  return k == n && (point || expo);
}

static bool is_logical(const char *p, size_t n, bool *value) {
  static const char *const yes[] = {".true.", ".t.", "t", "true"}, *const no[] = {".false.", ".f.", "f", "false"};
  for (int k = 0; k < 4; ++k) {
    if (strlen(yes[k]) == n && strncasecmp(p, yes[k], n) == 0) return *value = true, true;
    if (strlen(no[k]) == n && strncasecmp(p, no[k], n) == 0) return *value = false, true;
  }
  return false;
}

typedef struct {
  const char *where;  /* file name or "-P spec" */
  const char *source; /* for the echo; NULL for overrides */
  gn_nml_diag *diag;
} ctx;

static void tok_error(const ctx *c, const token *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void tok_error(const ctx *c, const token *t, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  gn_nml_diag_error(c->diag, c->where, c->source, t->line, t->col, (int)(t->n ? t->n : 1), "%s", msg);
}

/* Classifies one scalar literal (no repeat prefix). Returns GN_ENOMEM or GN_OK; *bad is set when
 * the literal was malformed and an error has been recorded. */
static int make_value(const ctx *c, const token *t, const char *p, size_t n, gn_nml_value *v, bool *bad) {
  *v = (gn_nml_value){.kind = GN_NML_BARE, .line = t->line, .col = t->col + (int)(p - t->p), .len = (int)n};
  *bad = false;
  v->text = dup_n(p, n);
  CHECK_ALLOC(v->text);
  if (n >= 2 && (p[0] == '\'' || p[0] == '"')) {
    v->kind = GN_NML_STRING;
    v->str = malloc(n);
    CHECK_ALLOC(v->str);
    size_t k = 0;
    for (size_t j = 1; j + 1 < n; ++j) {
      v->str[k++] = p[j];
      if (p[j] == p[0]) ++j; /* a doubled quote stands for one */
    }
    v->str[k] = '\0';
    return GN_OK;
  }
  bool l;
  if (is_logical(p, n, &l)) {
    v->kind = GN_NML_LOGICAL;
    v->l = l;
  } else if (all_digits(p + (p[0] == '+' || p[0] == '-'), n - (p[0] == '+' || p[0] == '-'))) {
    errno = 0;
    long long i = strtoll(v->text, NULL, 10);
    if (errno == ERANGE) {
      tok_error(c, t, "integer %s is out of range (at most 9223372036854775807 in magnitude)", v->text);
      *bad = true;
    }
    v->kind = GN_NML_INT;
    v->i = (int64_t)i;
    v->r = (double)i;
  } else if (is_real(p, n)) {
    char buf[128];
    if (n >= sizeof buf) {
      tok_error(c, t, "real number %s has too many digits", v->text);
      *bad = true;
      return GN_OK;
    }
    for (size_t k = 0; k < n; ++k) buf[k] = strchr("dDqQ", p[k]) ? 'e' : p[k];
    buf[n] = '\0';
    double r = strtod(buf, NULL);
    if (r == HUGE_VAL || r == -HUGE_VAL) {
      tok_error(c, t, "real number %s is out of the range of double precision", v->text);
      *bad = true;
    }
    v->kind = GN_NML_REAL;
    v->r = r;
  }
  return GN_OK;
}

static void free_value(gn_nml_value *v) {
  free(v->str);
  free(v->text);
}

static void free_item(gn_nml_item *it) {
  for (int64_t k = 0; k < it->n_values; ++k) free_value(&it->values[k]);
  free(it->values);
  free(it->key);
  *it = (gn_nml_item){0};
}

void gn_nml_group_free(gn_nml_group *g) {
  for (int64_t k = 0; k < g->n_items; ++k) free_item(&g->items[k]);
  free(g->items);
  free(g->name);
  *g = (gn_nml_group){0};
}

void gn_nml_free(gn_nml_file *f) {
  for (int64_t k = 0; k < f->n_groups; ++k) gn_nml_group_free(&f->groups[k]);
  free(f->groups);
  *f = (gn_nml_file){0};
}

static int item_push(gn_nml_item *it, const gn_nml_value *v, int64_t count) {
  gn_nml_value *vals = realloc(it->values, (size_t)(it->n_values + count) * sizeof *vals);
  CHECK_ALLOC(vals);
  it->values = vals;
  for (int64_t k = 0; k < count; ++k) {
    gn_nml_value w = *v;
    w.text = dup_n(v->text, strlen(v->text));
    w.str = v->str ? dup_n(v->str, strlen(v->str)) : NULL;
    if (!w.text || (v->str && !w.str)) {
      free(w.text);
      free(w.str);
      GN_FAIL(GN_ENOMEM, "out of memory while expanding a repeat");
    }
    it->values[it->n_values++] = w;
  }
  return GN_OK;
}

/* One value token, or `r*value` (the value in the same word, or a string right after `r*`).
 * Advances *i past what it used. */
static int parse_value(const ctx *c, const token *tv, size_t *i, gn_nml_item *it, bool *bad) {
  const token *t = &tv[*i];
  if (t->kind == T_STRING) {
    gn_nml_value v;
    bool b;
    int st = make_value(c, t, t->p, t->n, &v, &b);
    if (st == GN_OK) st = item_push(it, &v, 1);
    free_value(&v);
    ++*i;
    return st;
  }
  /* T_WORD */
  ++*i;
  const char *star = memchr(t->p, '*', t->n);
  int64_t count = 1;
  const char *p = t->p;
  size_t n = t->n;
  const token *vt = t;
  if (star) {
    size_t cn = (size_t)(star - t->p);
    bool ok = all_digits(t->p, cn) && cn <= 7;
    if (ok) count = strtoll(t->p, NULL, 10);
    if (!ok || count < 1 || count > MAX_REPEAT) {
      tok_error(c, t, "bad repeat count in '%.*s' for '%s': expected a positive integer before '*' (as in 3*0.5)",
                (int)t->n, t->p, it->key);
      *bad = true;
      return GN_OK;
    }
    p = star + 1;
    n = t->n - cn - 1;
    if (n == 0) {
      const token *nx = &tv[*i];
      if (nx->kind == T_STRING && nx->p == t->p + t->n) {
        vt = nx;
        p = nx->p;
        n = nx->n;
        ++*i;
      } else {
        tok_error(c, t, "repeat '%.*s' for '%s' has no value after '*' (null values are not supported)",
                  (int)t->n, t->p, it->key);
        *bad = true;
        return GN_OK;
      }
    }
  }
  gn_nml_value v;
  bool b;
  int st = make_value(c, vt, p, n, &v, &b);
  if (b) *bad = true;
  if (st == GN_OK && !b) st = item_push(it, &v, count);
  free_value(&v);
  return st;
}

static bool is_key_start(const token *tv, size_t i) {
  return tv[i].kind == T_WORD && is_identifier(tv[i].p, tv[i].n) &&
         (tv[i + 1].kind == T_EQ || tv[i + 1].kind == T_LPAREN);
}

static bool is_group_boundary(tok_kind k) {
  return k == T_SLASH || k == T_END || k == T_GROUP || k == T_EOF;
}

/* Skip to the next `key =`/`key(` or group boundary (error recovery). */
static size_t resync(const token *tv, size_t i) {
  while (!is_group_boundary(tv[i].kind) && !is_key_start(tv, i)) ++i;
  return i;
}

static const char *tok_desc(const token *t, char *buf, size_t cap) {
  if (t->kind == T_EOF) return "the end of the file";
  snprintf(buf, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p);
  return buf;
}

/* Parses `key[(i)] = values` at tv[*i] (a word). On success appends the item to g. */
static int parse_item(const ctx *c, const token *tv, size_t *i, gn_nml_group *g) {
  gn_nml_item it = {0};
  const token *kt = &tv[*i];
  char desc[64];
  bool bad = false;
  int status = GN_OK;
  it.key = dup_lower(kt->p, kt->n);
  CHECK_ALLOC(it.key);
  it.line = kt->line;
  it.col = kt->col;
  it.len = (int)kt->n;
  ++*i;
  if (tv[*i].kind == T_LPAREN) {
    const token *ix = &tv[*i + 1];
    if (ix->kind == T_WORD && all_digits(ix->p, ix->n) && ix->n <= 9 && tv[*i + 2].kind == T_RPAREN) {
      it.has_index = true;
      it.index = strtoll(ix->p, NULL, 10);
      *i += 3;
    } else {
      tok_error(c, &tv[*i], "bad subscript after '%s': only a single positive integer such as %s(2) is supported",
                it.key, it.key);
      *i = resync(tv, *i + 1);
      goto drop;
    }
  }
  if (tv[*i].kind != T_EQ) {
    tok_error(c, &tv[*i], "expected '=' after '%s', found %s", it.key, tok_desc(&tv[*i], desc, sizeof desc));
    *i = resync(tv, *i);
    goto drop;
  }
  ++*i;
  bool after_sep = true; /* just after '=' or ',' */
  for (;;) {
    const token *t = &tv[*i];
    if (is_group_boundary(t->kind) || is_key_start(tv, *i)) break;
    if (t->kind == T_COMMA) {
      if (after_sep && !bad) {
        tok_error(c, t, "empty value for '%s' (null values are not supported: remove the extra comma)", it.key);
        bad = true;
      }
      after_sep = true;
      ++*i;
    } else if (t->kind == T_STRING || t->kind == T_WORD) {
      CHECK_GOTO(parse_value(c, tv, i, &it, &bad));
      after_sep = false;
    } else if (t->kind == T_BADSTRING) {
      tok_error(c, t, "unterminated string for '%s': the closing %c is missing on this line", it.key, t->p[0]);
      bad = true;
      ++*i;
      after_sep = false;
    } else {
      tok_error(c, t, "unexpected %s in the value of '%s'", tok_desc(t, desc, sizeof desc), it.key);
      bad = true;
      ++*i;
    }
  }
  if (bad) goto drop;
  if (it.n_values == 0) {
    gn_nml_diag_error(c->diag, c->where, c->source, it.line, it.col, it.len, "no value given for '%s'", it.key);
    goto drop;
  }
  gn_nml_item *items = realloc(g->items, (size_t)(g->n_items + 1) * sizeof *items);
  if (!items) FAIL_GOTO(GN_ENOMEM, "out of memory while reading a namelist");
  g->items = items;
  g->items[g->n_items++] = it;
  return GN_OK;
drop:
  free_item(&it);
  return GN_OK;
fail:
  free_item(&it);
  return status;
}

static void group_label(const token *gt, char *buf, size_t cap) {
  snprintf(buf, cap, "%.*s", (int)(gt->n > 60 ? 60 : gt->n), gt->p);
}

/* Parses a group starting at tv[*i] (a T_GROUP token) up to its terminator. */
static int parse_group(const ctx *c, const token *tv, size_t *i, gn_nml_file *f) {
  const token *gt = &tv[*i];
  char label[80], desc[64];
  group_label(gt, label, sizeof label);
  gn_nml_group g = {0};
  g.line = gt->line;
  g.col = gt->col;
  g.len = (int)gt->n;
  bool name_ok = is_identifier(gt->p + 1, gt->n - 1);
  if (!name_ok) tok_error(c, gt, "expected a group name right after '%c' (as in &optim)", gt->p[0]);
  g.name = dup_lower(gt->p + 1, gt->n - 1);
  CHECK_ALLOC(g.name);
  ++*i;
  int status = GN_OK;
  for (;;) {
    const token *t = &tv[*i];
    if (t->kind == T_SLASH || t->kind == T_END) {
      ++*i;
      break;
    }
    if (t->kind == T_GROUP || t->kind == T_EOF) {
      gn_nml_diag_error(c->diag, c->where, c->source, g.line, g.col, g.len,
                        "group %s is not closed: expected '/' (or &end) before %s", label,
                        t->kind == T_EOF ? "the end of the file" : "the next group");
      if (t->kind == T_GROUP) gn_nml_diag_note(c->diag, "the next group starts at line %d: %.*s", t->line, (int)t->n, t->p);
      break;
    }
    if (t->kind == T_COMMA) {
      ++*i;
      continue;
    }
    if (t->kind == T_WORD && is_identifier(t->p, t->n)) {
      CHECK_GOTO(parse_item(c, tv, i, &g));
      continue;
    }
    if (t->kind == T_BADSTRING)
      tok_error(c, t, "unterminated string in group %s: the closing %c is missing on this line", label, t->p[0]);
    else
      tok_error(c, t, "expected a variable name in group %s, found %s", label, tok_desc(t, desc, sizeof desc));
    *i = resync(tv, *i + 1);
  }
  if (!name_ok) {
    gn_nml_group_free(&g);
    return GN_OK;
  }
  gn_nml_group *gs = realloc(f->groups, (size_t)(f->n_groups + 1) * sizeof *gs);
  if (!gs) FAIL_GOTO(GN_ENOMEM, "out of memory while reading a namelist");
  f->groups = gs;
  f->groups[f->n_groups++] = g;
  return GN_OK;
fail:
  gn_nml_group_free(&g);
  return status;
}

int gn_nml_parse(const char *text, const char *filename, gn_nml_file *file, gn_nml_diag *diag) {
  *file = (gn_nml_file){0};
  token_list tl = {0};
  int status = GN_OK;
  CHECK_GOTO(lex(text, false, 1, &tl));
  ctx c = {filename, text, diag};
  const token *tv = tl.v;
  size_t i = 0;
  char desc[64];
  while (tv[i].kind != T_EOF) {
    if (tv[i].kind == T_GROUP) {
      CHECK_GOTO(parse_group(&c, tv, &i, file));
      continue;
    }
    if (tv[i].kind == T_BADSTRING)
      tok_error(&c, &tv[i], "unterminated string outside any group");
    else
      tok_error(&c, &tv[i], "%s outside any namelist group: a group starts with &name (as in &optim) and ends with /",
                tok_desc(&tv[i], desc, sizeof desc));
    /* Skip the rest of the line: one message per stray line is enough. */
    int line = tv[i].line;
    while (tv[i].kind != T_EOF && tv[i].line == line) ++i;
  }
fail:
  free(tl.v);
  return status;
}

int gn_nml_parse_override(const char *spec, gn_nml_group *group, gn_nml_diag *diag) {
  *group = (gn_nml_group){0};
  char where[512];
  snprintf(where, sizeof where, "-P %s", spec);
  ctx c = {where, NULL, diag};
  const char *colon = strchr(spec, ':'), *eq = strchr(spec, '=');
  if (!colon || !eq || eq < colon) {
    gn_nml_diag_error(diag, where, NULL, 0, 0, 0, "expected group:key=value (as in -P optim:lr=0.05)");
    return GN_OK;
  }
  const char *kp = colon + 1, *ke = eq;
  while (ke > kp && isspace((unsigned char)ke[-1])) --ke;
  const char *lp = memchr(kp, '(', (size_t)(ke - kp));
  size_t kn = lp ? (size_t)(lp - kp) : (size_t)(ke - kp);
  if (!is_identifier(spec, (size_t)(colon - spec)) || !is_identifier(kp, kn)) {
    gn_nml_diag_error(diag, where, NULL, 0, 0, 0, "expected group:key=value with plain names (as in -P optim:lr=0.05)");
    return GN_OK;
  }
  gn_nml_item it = {0};
  token_list tl = {0};
  int status = GN_OK;
  bool bad = false;
  it.key = dup_lower(kp, kn);
  if (!it.key) FAIL_GOTO(GN_ENOMEM, "out of memory while reading an override");
  if (lp) {
    size_t in = (size_t)(ke - lp);
    if (in >= 3 && lp[in - 1] == ')' && all_digits(lp + 1, in - 2) && in - 2 <= 9) {
      it.has_index = true;
      it.index = strtoll(lp + 1, NULL, 10);
    } else {
      gn_nml_diag_error(diag, where, NULL, 0, 0, 0,
                        "bad subscript after '%s': only a single positive integer such as %s(2) is supported",
                        it.key, it.key);
      goto drop;
    }
  }
  CHECK_GOTO(lex(eq + 1, true, 1, &tl));
  bool after_sep = true;
  for (size_t i = 0; tl.v[i].kind != T_EOF;) {
    const token *t = &tl.v[i];
    if (t->kind == T_COMMA) {
      if (after_sep && !bad) {
        gn_nml_diag_error(diag, where, NULL, 0, 0, 0, "empty value for '%s' (null values are not supported)", it.key);
        bad = true;
      }
      after_sep = true;
      ++i;
    } else if (t->kind == T_BADSTRING) {
      gn_nml_diag_error(diag, where, NULL, 0, 0, 0, "unterminated string for '%s': the closing %c is missing",
                        it.key, t->p[0]);
      bad = true;
      ++i;
    } else {
      CHECK_GOTO(parse_value(&c, tl.v, &i, &it, &bad));
      after_sep = false;
    }
  }
  if (bad) goto drop;
  if (it.n_values == 0) {
    gn_nml_diag_error(diag, where, NULL, 0, 0, 0, "no value given for '%s'", it.key);
    goto drop;
  }
  group->name = dup_lower(spec, (size_t)(colon - spec));
  group->items = malloc(sizeof *group->items);
  if (!group->name || !group->items) FAIL_GOTO(GN_ENOMEM, "out of memory while reading an override");
  group->items[0] = it;
  group->n_items = 1;
  free(tl.v);
  return GN_OK;
drop:
  free_item(&it);
  free(tl.v);
  return GN_OK;
fail:
  free_item(&it);
  free(tl.v);
  gn_nml_group_free(group);
  return status;
}
