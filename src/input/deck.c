/* deck.c — the run configuration: maps namelist groups and keys (nml.c) onto gn_deck, with types,
 * defaults, ranges and consistency checks, -P overrides, and the effective deck written back out.
 * Every problem is reported, each located in the deck (or the override) it came from. */
#include "gnrev/input/deck.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gnrev/core/err.h"
#include "gnrev/input/nml.h"

/* Enum fields are read and written through an int lvalue. */
_Static_assert(sizeof(gn_source) == sizeof(int) && sizeof(gn_activation) == sizeof(int) &&
                   sizeof(gn_method) == sizeof(int) && sizeof(gn_loss_kind) == sizeof(int) &&
                   sizeof(gn_output_hessian) == sizeof(int) && sizeof(gn_pinv_kind) == sizeof(int) &&
                   sizeof(gn_ggn_mode) == sizeof(int) && sizeof(gn_damping_mode) == sizeof(int) &&
                   sizeof(gn_train_eval) == sizeof(int) && sizeof(gn_ntk_space) == sizeof(int) &&
                   sizeof(gn_probe_kind) == sizeof(int) && sizeof(gn_keep_features) == sizeof(int),
               "deck enums must be int-sized");

/* ---------------------------------------------------------------- names */

/* Index order = enum order. */
static const char *const SOURCE_NAMES[] = {"fashion-mnist", "mnist", "cifar10", "hdf5", "synthetic"};
static const char *const ACT_NAMES[] = {"relu", "identity", "tanh"};
static const char *const METHOD_NAMES[] = {"sgd", "adam", "gn", "gn_vivit"};
static const char *const LOSS_NAMES[] = {"ce", "mse"};
static const char *const HESS_NAMES[] = {"identity", "exact"};
static const char *const PINV_NAMES[] = {"gram", "svd", "damped"};
static const char *const GGN_NAMES[] = {"exact", "mc"};
static const char *const DAMP_NAMES[] = {"constant", "bootstrap"};
static const char *const TRAIN_EVAL_NAMES[] = {"running", "full"};
static const char *const NTK_SPACE_NAMES[] = {"logits", "output", "both"};
static const char *const PROBE_NAMES[] = {"first", "random"};
static const char *const KEEP_NAMES[] = {"auto", "yes", "no"};
#define NAMES(a) a, (int)(sizeof a / sizeof a[0])

static const char *enum_name(const char *const *names, int n, int v) {
  return v >= 0 && v < n ? names[v] : "(invalid)";
}

const char *gn_deck_source_name(gn_source v) { return enum_name(NAMES(SOURCE_NAMES), (int)v); }
const char *gn_deck_method_name(gn_method v) { return enum_name(NAMES(METHOD_NAMES), (int)v); }
const char *gn_deck_loss_name(gn_loss_kind v) { return enum_name(NAMES(LOSS_NAMES), (int)v); }
const char *gn_deck_activation_name(gn_activation v) { return enum_name(NAMES(ACT_NAMES), (int)v); }

/* ---------------------------------------------------------------- the key table */

typedef enum { K_INT, K_REAL, K_BOOL, K_STR, K_ENUM } key_type;

typedef struct {
  const char *group, *key;
  key_type type;
  size_t off, size;          /* field offset; buffer size of K_STR */
  const char *const *names;  /* K_ENUM */
  int n_names;
} key_def;

#define KI(g, k) {g, #k, K_INT, offsetof(gn_deck, k), 0, NULL, 0}
#define KR(g, k) {g, #k, K_REAL, offsetof(gn_deck, k), 0, NULL, 0}
#define KB(g, k) {g, #k, K_BOOL, offsetof(gn_deck, k), 0, NULL, 0}
#define KS(g, k) {g, #k, K_STR, offsetof(gn_deck, k), sizeof(((gn_deck *)0)->k), NULL, 0}
#define KE(g, k, n) {g, #k, K_ENUM, offsetof(gn_deck, k), 0, NAMES(n)}

/* Order = the order of the effective deck and of "valid keys" lists. */
static const key_def KEYS[] = {
    KS("run", name), KS("run", out_dir), KI("run", seed), KI("run", epochs), KI("run", max_steps),
    KI("run", log_every), KR("run", divergence_factor),
    KE("data", source, SOURCE_NAMES), KS("data", path), KI("data", n_train), KI("data", n_test),
    KI("data", batch_size), KB("data", shuffle), KI("data", dim), KI("data", classes),
    KI("data", synthetic_train), KI("data", synthetic_test),
    KI("model", blocks), KI("model", hidden), KE("model", activation, ACT_NAMES),
    KB("model", linear_first_block), KB("model", bias), KR("model", init_std), KR("model", proj_gain),
    KE("optim", method, METHOD_NAMES), KR("optim", lr), KE("optim", loss, LOSS_NAMES),
    KR("optim", momentum), KB("optim", nesterov), KR("optim", beta1), KR("optim", beta2),
    KR("optim", eps), KR("optim", weight_decay), KE("optim", output_hessian, HESS_NAMES),
    KE("optim", pinv, PINV_NAMES), KR("optim", rtol), KR("optim", atol), KR("optim", damping),
    KB("optim", gn_reference), KE("optim", damping_mode, DAMP_NAMES), KE("optim", keep_features, KEEP_NAMES),
    KI("checkpoint", every), KI("checkpoint", keep), KS("checkpoint", restart),
    KI("diagnostics", eval_every), KE("diagnostics", train_eval, TRAIN_EVAL_NAMES), KB("diagnostics", batch_change), KI("diagnostics", ntk_every),
    KI("diagnostics", ntk_samples), KB("diagnostics", ntk_save_matrix), KE("diagnostics", ntk_space, NTK_SPACE_NAMES),
    KI("diagnostics", ntk_output_samples), KE("diagnostics", ntk_probe, PROBE_NAMES),
    KE("diagnostics", ntk_output_probe, PROBE_NAMES), KI("diagnostics", cka_every),
    KI("diagnostics", cka_samples), KE("diagnostics", cka_probe, PROBE_NAMES), KI("diagnostics", probe_seed), KI("diagnostics", weights_every), KI("diagnostics", ggn_every),
    KI("diagnostics", ggn_samples), KE("diagnostics", ggn_mode, GGN_NAMES),
    KI("diagnostics", ggn_mc_samples), KI("diagnostics", ggn_top_k),
};
enum { N_KEYS = (int)(sizeof KEYS / sizeof KEYS[0]) };

static const char *const GROUPS[] = {"run", "data", "model", "optim", "checkpoint", "diagnostics"};
enum { N_GROUPS = (int)(sizeof GROUPS / sizeof GROUPS[0]) };

static int find_group(const char *name) {
  for (int g = 0; g < N_GROUPS; ++g)
    if (strcmp(GROUPS[g], name) == 0) return g;
  return -1;
}

static int find_key(const char *group, const char *key) {
  for (int k = 0; k < N_KEYS; ++k)
    if ((!group || strcmp(KEYS[k].group, group) == 0) && strcmp(KEYS[k].key, key) == 0) return k;
  return -1;
}

/* Index of a key known to exist (used by the checks below). */
static int kx(const char *key) { return find_key(NULL, key); }

static void *field(gn_deck *d, int k) { return (char *)d + KEYS[k].off; }
static const void *cfield(const gn_deck *d, int k) { return (const char *)d + KEYS[k].off; }

static void set_str(char *dst, size_t cap, const char *src) {
  memset(dst, 0, cap);
  snprintf(dst, cap, "%s", src);
}

const char *gn_deck_default_path(gn_source s) {
  switch (s) {
    case GN_SRC_FASHION_MNIST: return "/usr/share/datasets/fashion-mnist";
    case GN_SRC_MNIST: return "/usr/share/datasets/mnist";
    case GN_SRC_CIFAR10: return "data/cifar-10-batches-bin";
    default: return ""; /* hdf5: required; synthetic: unused */
  }
}

/* Fills the defaults that depend on other keys (out_dir from name, path from source) where the
 * deck left them empty. Returns false if runs/<name> does not fit. */
static bool resolve_derived(gn_deck *d) {
  bool ok = true;
  if (d->out_dir[0] == '\0') {
    memset(d->out_dir, 0, sizeof d->out_dir);
    ok = snprintf(d->out_dir, sizeof d->out_dir, "runs/%s", d->name) < (int)sizeof d->out_dir;
  }
  if (d->path[0] == '\0') set_str(d->path, sizeof d->path, gn_deck_default_path(d->source));
  return ok;
}

void gn_deck_defaults(gn_deck *d) {
  memset(d, 0, sizeof *d);
  set_str(d->name, sizeof d->name, "gnrev");
  d->seed = 42;
  d->epochs = 1;
  d->max_steps = 0;
  d->log_every = 10;
  d->divergence_factor = 1e3;
  d->source = GN_SRC_FASHION_MNIST;
  d->n_train = 0;
  d->n_test = 0;
  d->batch_size = 0;
  d->shuffle = true;
  d->dim = 32;
  d->classes = 4;
  d->synthetic_train = 512;
  d->synthetic_test = 256;
  d->blocks = 2;
  d->hidden = 8000;
  d->activation = GN_ACT_RELU;
  d->linear_first_block = true;
  d->bias = true;
  d->init_std = 1e-3;
  d->proj_gain = 1.0;
  d->method = GN_OPT_GN;
  d->lr = 0.1;
  d->loss = GN_LOSS_CE;
  d->momentum = 0.0;
  d->nesterov = false;
  d->beta1 = 0.9;
  d->beta2 = 0.999;
  d->eps = 1e-8;
  d->weight_decay = 0.0;
  d->output_hessian = GN_HESS_IDENTITY;
  d->pinv = GN_PINV_GRAM;
  d->rtol = 1e-2;
  d->atol = 1e-5;
  d->damping = 1e-3;
  d->gn_reference = false;
  d->damping_mode = GN_DAMP_CONSTANT;
  d->keep_features = GN_KEEP_AUTO;
  d->every = 0;
  d->keep = 3;
  set_str(d->restart, sizeof d->restart, "auto");
  d->eval_every = 10;
  d->train_eval = GN_TRAIN_RUNNING;
  d->batch_change = false;
  d->ntk_every = 0;
  d->ntk_samples = 32;
  d->ntk_space = GN_NTK_LOGITS;
  d->ntk_output_samples = 1024;
  d->ntk_probe = GN_PROBE_FIRST;
  d->ntk_output_probe = GN_PROBE_RANDOM;
  d->cka_probe = GN_PROBE_FIRST;
  d->probe_seed = -1;
  d->ntk_save_matrix = true;
  d->cka_every = 0;
  d->cka_samples = 256;
  d->weights_every = 0;
  d->ggn_every = 0;
  d->ggn_samples = 32;
  d->ggn_mode = GN_GGN_EXACT;
  d->ggn_mc_samples = 1;
  d->ggn_top_k = 10;
  resolve_derived(d);
}

/* ---------------------------------------------------------------- parse context */

/* Where a key got its value, so range and consistency errors can point at it. */
typedef struct {
  bool set;           /* assigned (successfully) by the deck or an override */
  bool bad;           /* an assignment failed: skip checks that involve this key */
  bool from_file;     /* the last assignment came from the deck file */
  const char *where;  /* file name or "-P spec" */
  const char *source; /* deck text for the echo; NULL for overrides */
  const char *text;   /* the value as written */
  int line, col, len; /* of the value */
  int key_line, key_col; /* of the key in the file, for duplicate messages */
} origin;

typedef struct {
  gn_deck d;
  origin org[N_KEYS];
  gn_nml_diag diag;
  const char *filename;
} pctx;

/* An error located at key k's value (or only at the file when the key kept its default). */
__attribute__((format(printf, 3, 4))) static void key_error(pctx *pc, int k, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const origin *o = &pc->org[k];
  if (o->set)
    gn_nml_diag_error(&pc->diag, o->where, o->source, o->line, o->col, o->len, "%s", msg);
  else
    gn_nml_diag_error(&pc->diag, pc->filename, NULL, 0, 0, 0, "%s (the default)", msg);
}

/* The value of key k as written, or formatted when it is the default. */
static const char *shown(const pctx *pc, int k, char *buf, size_t cap) {
  if (pc->org[k].set) return pc->org[k].text;
  const void *f = cfield(&pc->d, k);
  switch (KEYS[k].type) {
    case K_INT: snprintf(buf, cap, "%" PRId64, *(const int64_t *)f); break;
    case K_REAL: snprintf(buf, cap, "%g", *(const double *)f); break;
    case K_BOOL: snprintf(buf, cap, "%s", *(const bool *)f ? ".true." : ".false."); break;
    case K_STR: snprintf(buf, cap, "'%s'", (const char *)f); break;
    case K_ENUM: snprintf(buf, cap, "'%s'", enum_name(KEYS[k].names, KEYS[k].n_names, *(const int *)f)); break;
  }
  return buf;
}

static void note_valid_keys(pctx *pc, const char *group) {
  char list[1024];
  size_t used = 0;
  list[0] = '\0';
  for (int k = 0; k < N_KEYS; ++k)
    if (strcmp(KEYS[k].group, group) == 0 && used < sizeof list)
      used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", KEYS[k].key);
  gn_nml_diag_note(&pc->diag, "valid keys in &%s: %s", group, list);
}

static void note_enum_names(pctx *pc, int k) {
  char list[512];
  size_t used = 0;
  for (int j = 0; j < KEYS[k].n_names && used < sizeof list; ++j)
    used += (size_t)snprintf(list + used, sizeof list - used, "%s'%s'", j ? ", " : "", KEYS[k].names[j]);
  gn_nml_diag_note(&pc->diag, "valid values of %s: %s", KEYS[k].key, list);
}

static void describe(const gn_nml_value *v, char *buf, size_t cap) {
  switch (v->kind) {
    case GN_NML_INT: snprintf(buf, cap, "the integer %s", v->text); break;
    case GN_NML_REAL: snprintf(buf, cap, "the real number %s", v->text); break;
    case GN_NML_LOGICAL: snprintf(buf, cap, "the logical %s", v->text); break;
    case GN_NML_STRING: snprintf(buf, cap, "the string %s", v->text); break;
    case GN_NML_BARE: snprintf(buf, cap, "%s", v->text); break;
  }
}

static const char *expected_type(int k) {
  switch (KEYS[k].type) {
    case K_INT: return "an integer";
    case K_REAL: return "a real number";
    case K_BOOL: return "a logical (.true. or .false.)";
    default: return "a quoted string";
  }
}

static void unknown_key(pctx *pc, const char *group, const gn_nml_item *it, const char *where, const char *source) {
  gn_nml_diag_error(&pc->diag, where, source, it->line, it->col, it->len, "unknown variable '%s' in group &%s",
                    it->key, group);
  const char *cand[N_KEYS];
  int n = 0;
  for (int k = 0; k < N_KEYS; ++k)
    if (strcmp(KEYS[k].group, group) == 0) cand[n++] = KEYS[k].key;
  const char *s = gn_nml_suggest(it->key, cand, n);
  int elsewhere = find_key(NULL, it->key);
  if (elsewhere >= 0) {
    gn_nml_diag_note(&pc->diag, "'%s' belongs in &%s, not &%s", it->key, KEYS[elsewhere].group, group);
  } else if (s) {
    gn_nml_diag_note(&pc->diag, "did you mean '%s'?", s);
  } else {
    n = 0;
    for (int k = 0; k < N_KEYS; ++k) cand[n++] = KEYS[k].key;
    s = gn_nml_suggest(it->key, cand, n);
    if (s) gn_nml_diag_note(&pc->diag, "did you mean '%s' (in &%s)?", s, KEYS[find_key(NULL, s)].group);
  }
  note_valid_keys(pc, group);
}

/* Assigns one item of group `group` (a known group). */
static void apply_item(pctx *pc, const char *group, const gn_nml_item *it, const char *where, const char *source,
                       bool from_file) {
  int k = find_key(group, it->key);
  if (k < 0) {
    unknown_key(pc, group, it, where, source);
    return;
  }
  origin *o = &pc->org[k];
  const key_def *kd = &KEYS[k];
  if (from_file && o->key_line > 0) {
    gn_nml_diag_error(&pc->diag, where, source, it->line, it->col, it->len,
                      "duplicate variable '%s' in group &%s: set at line %d and again at line %d", it->key, group,
                      o->key_line, it->line);
    if (o->key_line == it->line) gn_nml_diag_note(&pc->diag, "first at column %d, again at column %d", o->key_col, it->col);
    gn_nml_diag_note(&pc->diag, "keep only one of the two lines");
    o->bad = true;
    return;
  }
  if (from_file) {
    o->key_line = it->line;
    o->key_col = it->col;
  }
  if (it->has_index) {
    gn_nml_diag_error(&pc->diag, where, source, it->line, it->col, it->len,
                      "'%s' in &%s is a scalar: write %s = value, not %s(%" PRId64 ") = value", it->key, group,
                      it->key, it->key, it->index);
    o->bad = true;
    return;
  }
  const gn_nml_value *v = &it->values[0];
  if (it->n_values != 1) {
    gn_nml_diag_error(&pc->diag, where, source, it->line, it->col, it->len,
                      "expected one value for '%s' in &%s, found %" PRId64 " values: %s is a scalar", it->key,
                      group, it->n_values, it->key);
    o->bad = true;
    return;
  }
  char found[160];
  describe(v, found, sizeof found);
  bool ok = true;
  void *f = field(&pc->d, k);
  switch (kd->type) {
    case K_INT:
      if (v->kind == GN_NML_INT) *(int64_t *)f = v->i;
      else ok = false;
      break;
    case K_REAL:
      if (v->kind == GN_NML_INT || v->kind == GN_NML_REAL) *(double *)f = v->r;
      else ok = false;
      break;
    case K_BOOL:
      if (v->kind == GN_NML_LOGICAL) *(bool *)f = v->l;
      else ok = false;
      break;
    case K_STR:
    case K_ENUM: {
      /* Bare words only from -P: the shell has eaten the quotes. */
      const char *s = v->kind == GN_NML_STRING ? v->str : (!from_file && v->kind != GN_NML_STRING) ? v->text : NULL;
      if (!s) {
        ok = false;
        break;
      }
      if (kd->type == K_STR) {
        if (strlen(s) >= kd->size) {
          gn_nml_diag_error(&pc->diag, where, source, v->line, v->col, v->len,
                            "value of '%s' in &%s is too long: %zu characters, at most %zu", it->key, group,
                            strlen(s), kd->size - 1);
          o->bad = true;
          return;
        }
        set_str(f, kd->size, s);
        break;
      }
      int e = -1;
      for (int j = 0; j < kd->n_names; ++j)
        if (strcasecmp(kd->names[j], s) == 0) e = j;
      if (e < 0) {
        gn_nml_diag_error(&pc->diag, where, source, v->line, v->col, v->len, "unknown %s '%s' in &%s", it->key, s,
                          group);
        const char *sug = gn_nml_suggest(s, kd->names, kd->n_names);
        if (sug) gn_nml_diag_note(&pc->diag, "did you mean '%s'?", sug);
        note_enum_names(pc, k);
        o->bad = true;
        return;
      }
      *(int *)f = e;
      break;
    }
  }
  if (!ok) {
    gn_nml_diag_error(&pc->diag, where, source, v->line, v->col, v->len, "wrong type for '%s' in &%s: expected %s, found %s",
                      it->key, group, expected_type(k), found);
    if (kd->type == K_ENUM) note_enum_names(pc, k);
    if ((kd->type == K_STR || kd->type == K_ENUM) && v->kind != GN_NML_STRING)
      gn_nml_diag_note(&pc->diag, "strings are quoted in a namelist: %s = '%s'", it->key, v->text);
    if (kd->type == K_INT && v->kind == GN_NML_REAL) gn_nml_diag_note(&pc->diag, "write an integer without a decimal point or exponent");
    o->bad = true;
    return;
  }
  *o = (origin){.set = true, .from_file = from_file, .where = where, .source = source, .text = v->text,
                .line = v->line, .col = v->col, .len = v->len, .key_line = o->key_line, .key_col = o->key_col};
}

/* ---------------------------------------------------------------- checks */

static void range_int(pctx *pc, const char *key, int64_t lo) {
  int k = kx(key);
  if (pc->org[k].bad) return;
  if (*(const int64_t *)cfield(&pc->d, k) < lo) {
    char buf[64];
    key_error(pc, k, "%s = %s is out of range in &%s: expected %s >= %" PRId64, key, shown(pc, k, buf, sizeof buf),
              KEYS[k].group, key, lo);
  }
}

/* lo < x (lo_open) or lo <= x; x < hi (hi_open) or x <= hi; an infinite bound is absent. */
static void range_real(pctx *pc, const char *key, double lo, bool lo_open, double hi, bool hi_open) {
  int k = kx(key);
  if (pc->org[k].bad) return;
  double x = *(const double *)cfield(&pc->d, k);
  bool ok = (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
  if (ok) return;
  char want[128], buf[64];
  if (isinf(hi))
    snprintf(want, sizeof want, "%s %s %g", key, lo_open ? ">" : ">=", lo);
  else
    snprintf(want, sizeof want, "%g %s %s %s %g", lo, lo_open ? "<" : "<=", key, hi_open ? "<" : "<=", hi);
  key_error(pc, k, "%s = %s is out of range in &%s: expected %s", key, shown(pc, k, buf, sizeof buf), KEYS[k].group,
            want);
}

static void nonempty(pctx *pc, const char *key, const char *what) {
  int k = kx(key);
  if (!pc->org[k].bad && ((const char *)cfield(&pc->d, k))[0] == '\0')
    key_error(pc, k, "%s in &%s must not be empty: %s", key, KEYS[k].group, what);
}

static void check_ranges(pctx *pc) {
  nonempty(pc, "name", "it names the run in every output");
  range_int(pc, "seed", 0);
  range_int(pc, "epochs", 1);
  range_int(pc, "max_steps", 0);
  range_int(pc, "log_every", 1);
  {
    /* A factor in (0, 1] would stop any run whose loss ever rises above its first value. */
    int k = kx("divergence_factor");
    double x = pc->d.divergence_factor;
    if (!pc->org[k].bad && !(x == 0 || (x > 1 && isfinite(x)))) {
      char buf[64];
      key_error(pc, k, "divergence_factor = %s is out of range in &run: expected 0 (off) or a finite value > 1",
                shown(pc, k, buf, sizeof buf));
    }
  }
  range_int(pc, "n_train", 0);
  range_int(pc, "n_test", 0);
  range_int(pc, "batch_size", 0);
  range_int(pc, "dim", 2);
  range_int(pc, "classes", 2);
  range_int(pc, "synthetic_train", 1);
  range_int(pc, "synthetic_test", 1);
  range_int(pc, "blocks", 1);
  range_int(pc, "hidden", 1);
  {
    /* BLAS and ScaLAPACK take int dimensions: the feature width h + 1 must fit one. */
    int k = kx("hidden");
    if (!pc->org[k].bad && pc->d.hidden > 2147483646) {
      char buf[64];
      key_error(pc, k, "hidden = %s is out of range in &model: expected hidden <= 2147483646 (BLAS int dimensions)",
                shown(pc, k, buf, sizeof buf));
    }
  }
  range_real(pc, "init_std", 0, false, INFINITY, false);
  range_real(pc, "proj_gain", 0, true, INFINITY, false);
  range_real(pc, "lr", 0, true, INFINITY, false);
  range_real(pc, "momentum", 0, false, INFINITY, false);
  range_real(pc, "beta1", 0, false, 1, true);
  range_real(pc, "beta2", 0, false, 1, true);
  range_real(pc, "eps", 0, true, INFINITY, false);
  range_real(pc, "weight_decay", 0, false, INFINITY, false);
  range_real(pc, "rtol", 0, true, 1, true);
  range_real(pc, "atol", 0, false, INFINITY, false);
  range_real(pc, "damping", 0, false, INFINITY, false);
  range_int(pc, "every", 0);
  range_int(pc, "keep", 1);
  nonempty(pc, "restart", "use 'auto', 'none' or the path of a checkpoint");
  range_int(pc, "eval_every", 0);
  range_int(pc, "ntk_every", 0);
  range_int(pc, "ntk_samples", 0);
  range_int(pc, "ntk_output_samples", 0);
  range_int(pc, "probe_seed", -1);
  range_int(pc, "cka_every", 0);
  range_int(pc, "cka_samples", 0);
  range_int(pc, "weights_every", 0);
  range_int(pc, "ggn_every", 0);
  range_int(pc, "ggn_samples", 0);
  range_int(pc, "ggn_mc_samples", 0);
  range_int(pc, "ggn_top_k", 0);
}

static bool usable(const pctx *pc, const char *a, const char *b) {
  return !pc->org[kx(a)].bad && !(b && pc->org[kx(b)].bad);
}

/* The error goes to whichever of the two keys the user set (the second if both did). */
static int blame(const pctx *pc, const char *a, const char *b) {
  return pc->org[kx(b)].set ? kx(b) : kx(a);
}

/* A diagnostic that is on (every > 0) needs at least one sample. */
static void needs_samples(pctx *pc, const char *every, const char *samples) {
  const gn_deck *d = &pc->d;
  if (!usable(pc, every, samples)) return;
  int64_t e = *(const int64_t *)cfield(d, kx(every)), s = *(const int64_t *)cfield(d, kx(samples));
  if (e > 0 && s < 1)
    key_error(pc, blame(pc, every, samples), "%s = %" PRId64 " in &diagnostics needs %s >= 1 (found %s = %" PRId64 ")",
              every, e, samples, samples, s);
}

static void check_consistency(pctx *pc) {
  const gn_deck *d = &pc->d;
  if (usable(pc, "method", "ggn_top_k") && d->method == GN_OPT_GN_VIVIT && d->ggn_top_k < 1)
    key_error(pc, blame(pc, "method", "ggn_top_k"),
              "method = 'gn_vivit' in &optim needs ggn_top_k >= 1 in &diagnostics (found ggn_top_k = %" PRId64 ")",
              d->ggn_top_k);
  if (usable(pc, "nesterov", "momentum") && d->nesterov && !(d->momentum > 0))
    key_error(pc, kx("nesterov"), "nesterov = .true. in &optim needs momentum > 0 (found momentum = %g)", d->momentum);
  if (usable(pc, "ggn_mode", "ggn_mc_samples") && d->ggn_mode == GN_GGN_MC && d->ggn_mc_samples < 1)
    key_error(pc, blame(pc, "ggn_mode", "ggn_mc_samples"),
              "ggn_mode = 'mc' in &diagnostics needs ggn_mc_samples >= 1 (found ggn_mc_samples = %" PRId64 ")",
              d->ggn_mc_samples);
  if (usable(pc, "source", "path") && d->source == GN_SRC_HDF5 && d->path[0] == '\0')
    key_error(pc, kx("source"), "source = 'hdf5' in &data needs path, the HDF5 file to read (path is empty)");
  if (usable(pc, "pinv", "damping") && d->pinv == GN_PINV_DAMPED && !(d->damping > 0))
    key_error(pc, blame(pc, "pinv", "damping"), "pinv = 'damped' in &optim needs damping > 0 (found damping = %g)",
              d->damping);
  if (usable(pc, "source", "dim") && d->source == GN_SRC_SYNTHETIC && d->dim % 2 != 0)
    key_error(pc, kx("dim"), "dim = %" PRId64 " in &data is odd: the model splits the state in halves, so d must be even",
              d->dim);
  needs_samples(pc, "ntk_every", "ntk_samples");
  if (usable(pc, "ntk_space", "ntk_output_samples") && d->ntk_every > 0 && d->ntk_space != GN_NTK_LOGITS &&
      d->ntk_output_samples < 1)
    key_error(pc, blame(pc, "ntk_space", "ntk_output_samples"),
              "ntk_space = '%s' in &diagnostics needs ntk_output_samples >= 1 (found %" PRId64 ")",
              NTK_SPACE_NAMES[d->ntk_space], d->ntk_output_samples);
  needs_samples(pc, "cka_every", "cka_samples");
  needs_samples(pc, "ggn_every", "ggn_samples");
}

/* ---------------------------------------------------------------- parse */

static void apply_file(pctx *pc, const gn_nml_file *f, const char *filename, const char *text) {
  int group_line[N_GROUPS] = {0};
  for (int64_t gi = 0; gi < f->n_groups; ++gi) {
    const gn_nml_group *g = &f->groups[gi];
    int gx = find_group(g->name);
    if (gx < 0) {
      gn_nml_diag_error(&pc->diag, filename, text, g->line, g->col, g->len, "unknown group &%s", g->name);
      const char *s = gn_nml_suggest(g->name, GROUPS, N_GROUPS);
      if (s) gn_nml_diag_note(&pc->diag, "did you mean &%s?", s);
      gn_nml_diag_note(&pc->diag, "valid groups: &run, &data, &model, &optim, &checkpoint, &diagnostics");
      continue;
    }
    if (group_line[gx] > 0) {
      gn_nml_diag_error(&pc->diag, filename, text, g->line, g->col, g->len,
                        "group &%s appears twice (first at line %d): put all its keys in one group", g->name,
                        group_line[gx]);
    }
    group_line[gx] = g->line;
    for (int64_t ii = 0; ii < g->n_items; ++ii) apply_item(pc, GROUPS[gx], &g->items[ii], filename, text, true);
  }
}

int gn_deck_check_bytes(const char *text, size_t len, const char *filename) {
  const char *nul = memchr(text, '\0', len);
  if (!nul) return GN_OK;
  size_t count = 0;
  for (const char *p = nul; p; p = memchr(p + 1, '\0', len - (size_t)(p + 1 - text))) ++count;
  int line = 1;
  const char *line_start = text;
  for (const char *p = text; p < nul; ++p)
    if (*p == '\n') {
      ++line;
      line_start = p + 1;
    }
  /* The echo of that line ends at the NUL (text is read as a C string there), so the caret falls
   * just behind the last byte shown: where the NUL sits. */
  char more[64] = "";
  if (count > 1) snprintf(more, sizeof more, " (the first of %zu)", count);
  gn_nml_diag diag = {0};
  gn_nml_diag_error(&diag, filename, text, line, (int)(nul - line_start) + 1, 1,
                    "a NUL byte%s: a deck is a text file, and everything behind a NUL would be dropped "
                    "without a word (is this a binary file?)",
                    more);
  size_t n = diag.text ? diag.len : 0;
  while (n > 0 && diag.text[n - 1] == '\n') --n;
  int status = diag.oom ? GN_RAISE(GN_ENOMEM, "out of memory while reporting a NUL byte in %s", filename)
                        : GN_RAISE(GN_EINPUT, "%.*s", (int)n, diag.text);
  gn_nml_diag_free(&diag);
  return status;
}

int gn_deck_require_groups(const char *text, const char *filename) {
  gn_nml_file file = {0};
  gn_nml_diag diag = {0};
  int status = gn_nml_parse(text, filename, &file, &diag);
  /* Syntax errors are gn_deck_parse's to report. */
  const bool empty = status == GN_OK && diag.n_errors == 0 && file.n_groups == 0;
  gn_nml_free(&file);
  gn_nml_diag_free(&diag);
  CHECK(status);
  if (empty) {
    gn_deck d;
    gn_deck_defaults(&d);
    char *safe = gn_escape_text(filename);
    status = GN_RAISE(GN_EINPUT,
                      "%s: error: the deck has no namelist group (it is empty or holds only comments): refusing "
                      "to train with every default (%s, the whole Fashion-MNIST training set, hidden = %" PRId64
                      "); write the groups you mean, e.g. &run out_dir = 'runs/first' / (docs/deck-reference.md)",
                      safe ? safe : filename, gn_deck_method_name(d.method), d.hidden);
    free(safe);
  }
  return status;
}

int gn_deck_parse(const char *text, const char *filename, const char *const *overrides, int n_overrides,
                  gn_deck *deck) {
  int status = GN_OK;
  gn_nml_file file = {0};
  gn_nml_group *og = NULL;
  char **owhere = NULL;
  pctx *pc = calloc(1, sizeof *pc);
  if (!pc) GN_FAIL(GN_ENOMEM, "out of memory while reading the deck %s", filename);
  pc->filename = filename;
  gn_deck_defaults(&pc->d);
  /* Derived defaults are recomputed after the deck has set name and source. */
  pc->d.out_dir[0] = '\0';
  pc->d.path[0] = '\0';

  CHECK_GOTO(gn_nml_parse(text, filename, &file, &pc->diag));
  apply_file(pc, &file, filename, text);

  if (n_overrides > 0) {
    og = calloc((size_t)n_overrides, sizeof *og);
    owhere = calloc((size_t)n_overrides, sizeof *owhere);
    if (!og || !owhere) FAIL_GOTO(GN_ENOMEM, "out of memory while reading %d overrides", n_overrides);
  }
  for (int i = 0; i < n_overrides; ++i) {
    size_t n = strlen(overrides[i]) + 4;
    owhere[i] = malloc(n);
    if (!owhere[i]) FAIL_GOTO(GN_ENOMEM, "out of memory while reading the overrides");
    snprintf(owhere[i], n, "-P %s", overrides[i]);
    CHECK_GOTO(gn_nml_parse_override(overrides[i], &og[i], &pc->diag));
    if (og[i].n_items == 0) continue;
    int gx = find_group(og[i].name);
    if (gx < 0) {
      gn_nml_diag_error(&pc->diag, owhere[i], NULL, 0, 0, 0, "unknown group '%s'", og[i].name);
      const char *s = gn_nml_suggest(og[i].name, GROUPS, N_GROUPS);
      if (s) gn_nml_diag_note(&pc->diag, "did you mean '%s'?", s);
      gn_nml_diag_note(&pc->diag, "valid groups: run, data, model, optim, checkpoint, diagnostics");
      continue;
    }
    apply_item(pc, GROUPS[gx], &og[i].items[0], owhere[i], NULL, false);
  }

  if (!resolve_derived(&pc->d))
    key_error(pc, kx("name"), "name is too long to form the default out_dir runs/<name>");
  check_ranges(pc);
  check_consistency(pc);

  if (pc->diag.oom) FAIL_GOTO(GN_ENOMEM, "out of memory while reporting deck errors");
  if (pc->diag.n_errors > 0) {
    gn_nml_diag_sort(&pc->diag);
    size_t len = pc->diag.len;
    while (len > 0 && pc->diag.text[len - 1] == '\n') --len;
    char tail[160] = "";
    if (pc->diag.n_errors > 1)
      snprintf(tail, sizeof tail, "\n%d errors in %s%s", pc->diag.n_errors, filename,
               pc->diag.n_errors > GN_NML_MAX_BLOCKS ? " (the first ones are shown)" : "");
    status = gn_error(GN_EINPUT, __FILE__, __LINE__, __func__, "%.*s%s", (int)len, pc->diag.text, tail);
    goto fail;
  }
  *deck = pc->d;
fail:
  gn_nml_free(&file);
  for (int i = 0; og && i < n_overrides; ++i) gn_nml_group_free(&og[i]);
  for (int i = 0; owhere && i < n_overrides; ++i) free(owhere[i]);
  free(og);
  free(owhere);
  if (pc) gn_nml_diag_free(&pc->diag);
  free(pc);
  return status;
}

int gn_deck_load(const char *path, const char *const *overrides, int n_overrides, gn_deck *deck) {
  FILE *fp = fopen(path, "rb");
  if (!fp) GN_FAIL(GN_EIO, "cannot open the deck %s: %s", path, strerror(errno));
  char *text = NULL;
  size_t len = 0, cap = 0;
  int status = GN_OK;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = cap ? 2 * cap : 16384;
      char *t = realloc(text, cap);
      if (!t) FAIL_GOTO(GN_ENOMEM, "out of memory while reading the deck %s", path);
      text = t;
    }
    size_t got = fread(text + len, 1, cap - len - 1, fp);
    len += got;
    if (got == 0) break;
  }
  if (ferror(fp)) FAIL_GOTO(GN_EIO, "cannot read the deck %s: %s", path, strerror(errno));
  text[len] = '\0';
  CHECK_GOTO(gn_deck_check_bytes(text, len, path));
  CHECK_GOTO(gn_deck_parse(text, path, overrides, n_overrides, deck));
fail:
  free(text);
  fclose(fp);
  return status;
}

/* ---------------------------------------------------------------- data-dependent checks */

int gn_deck_check_data(const gn_deck *deck, const char *filename, int64_t d, int64_t n_train, int64_t n_test) {
  gn_nml_diag diag = {0};
  const char *f = filename;
  if (d % 2 != 0)
    gn_nml_diag_error(&diag, f, NULL, 0, 0, 0, "the model splits the state in halves: d = %" PRId64 " is odd", d);
  if (d < 2) gn_nml_diag_error(&diag, f, NULL, 0, 0, 0, "the data have d = %" PRId64 " features: at least 2 are needed", d);
  if (deck->n_train > 0 && deck->n_train > n_train)
    gn_nml_diag_error(&diag, f, NULL, 0, 0, 0,
                      "n_train = %" PRId64 " in &data asks for more training samples than the data hold (%" PRId64 ")",
                      deck->n_train, n_train);
  if (deck->n_test > 0 && deck->n_test > n_test)
    gn_nml_diag_error(&diag, f, NULL, 0, 0, 0,
                      "n_test = %" PRId64 " in &data asks for more test samples than the data hold (%" PRId64 ")",
                      deck->n_test, n_test);
  if (n_train < 1) gn_nml_diag_error(&diag, f, NULL, 0, 0, 0, "the training set is empty (n_train = %" PRId64 ")", n_train);
  if (deck->batch_size > n_train && n_train >= 1)
    gn_nml_diag_error(&diag, f, NULL, 0, 0, 0,
                      "batch_size = %" PRId64 " in &data is larger than the training set (%" PRId64 " samples)",
                      deck->batch_size, n_train);
  int64_t batch = deck->batch_size > 0 && deck->batch_size < n_train ? deck->batch_size : n_train;
  /* A random probe draws from every training sample the source holds: the loader checks it. */
  if (deck->ntk_every > 0 && deck->ntk_space != GN_NTK_OUTPUT && deck->ntk_probe == GN_PROBE_FIRST &&
      deck->ntk_samples > n_train && n_train >= 1)
    gn_nml_diag_error(&diag, f, NULL, 0, 0, 0,
                      "ntk_samples = %" PRId64 " in &diagnostics is larger than the training set (%" PRId64 " samples)",
                      deck->ntk_samples, n_train);
  if (deck->ntk_every > 0 && deck->ntk_output_probe == GN_PROBE_FIRST && deck->ntk_space != GN_NTK_LOGITS &&
      deck->ntk_output_samples > n_train && n_train >= 1)
    gn_nml_diag_error(&diag, f, NULL, 0, 0, 0,
                      "ntk_output_samples = %" PRId64 " in &diagnostics is larger than the training set (%" PRId64
                      " samples); ntk_output_probe = 'random' draws from every training sample the data hold",
                      deck->ntk_output_samples, n_train);
  if (deck->cka_every > 0 && deck->cka_probe == GN_PROBE_FIRST && deck->cka_samples > n_train && n_train >= 1)
    gn_nml_diag_error(&diag, f, NULL, 0, 0, 0,
                      "cka_samples = %" PRId64 " in &diagnostics is larger than the training set (%" PRId64 " samples)",
                      deck->cka_samples, n_train);
  if (deck->ggn_every > 0 && deck->ggn_samples > batch && n_train >= 1)
    gn_nml_diag_error(&diag, f, NULL, 0, 0, 0,
                      "ggn_samples = %" PRId64 " in &diagnostics is larger than the batch (%" PRId64
                      " samples): the GGN is computed on the batch",
                      deck->ggn_samples, batch);
  if (diag.oom) {
    gn_nml_diag_free(&diag);
    GN_FAIL(GN_ENOMEM, "out of memory while reporting deck errors");
  }
  if (diag.n_errors == 0) return GN_OK;
  size_t len = diag.len;
  while (len > 0 && diag.text[len - 1] == '\n') --len;
  int status = gn_error(GN_EINPUT, __FILE__, __LINE__, __func__, "%.*s", (int)len, diag.text);
  gn_nml_diag_free(&diag);
  return status;
}

/* ---------------------------------------------------------------- effective deck */

typedef struct {
  char *s;
  size_t len, cap;
  bool oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (b->len + (size_t)n + 1 > cap) cap *= 2;
    char *t = realloc(b->s, cap);
    if (!t) {
      b->oom = true;
      return;
    }
    b->s = t;
    b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Shortest %.Ng (N = 15..17) that reads back as the same double, with a decimal point or an
 * exponent so that it reads as a real. */
static void format_real(double x, char *buf, size_t cap) {
  for (int prec = 15; prec <= 17; ++prec) {
    snprintf(buf, cap, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) break;
  }
  if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", cap - strlen(buf) - 1);
}

static void sb_quoted(sbuf *b, const char *s) {
  sb_printf(b, "'");
  for (; *s; ++s) sb_printf(b, *s == '\'' ? "''" : "%c", *s);
  sb_printf(b, "'");
}

char *gn_deck_format(const gn_deck *deck) {
  sbuf b = {0};
  sb_printf(&b, "! effective deck: every key, defaults filled in (gnrev)\n");
  for (int g = 0; g < N_GROUPS; ++g) {
    sb_printf(&b, "&%s\n", GROUPS[g]);
    for (int k = 0; k < N_KEYS; ++k) {
      if (strcmp(KEYS[k].group, GROUPS[g]) != 0) continue;
      const void *f = cfield(deck, k);
      sb_printf(&b, "  %s = ", KEYS[k].key);
      char num[64];
      switch (KEYS[k].type) {
        case K_INT: sb_printf(&b, "%" PRId64, *(const int64_t *)f); break;
        case K_REAL:
          format_real(*(const double *)f, num, sizeof num);
          sb_printf(&b, "%s", num);
          break;
        case K_BOOL: sb_printf(&b, "%s", *(const bool *)f ? ".true." : ".false."); break;
        case K_STR: sb_quoted(&b, (const char *)f); break;
        case K_ENUM: sb_quoted(&b, enum_name(KEYS[k].names, KEYS[k].n_names, *(const int *)f)); break;
      }
      sb_printf(&b, "\n");
    }
    sb_printf(&b, "/\n");
  }
  if (b.oom) {
    free(b.s);
    return NULL;
  }
  return b.s;
}
