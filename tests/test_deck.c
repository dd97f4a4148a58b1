/* test_deck.c — the deck module: namelist syntax (nml.c), mapping onto gn_deck, defaults, ranges,
 * consistency, overrides, the effective deck and the exact text of the error messages.
 *
 * With DECK_OUT_DIR set, also writes effective decks and value dumps there for the gfortran oracle
 * (tests/test_deck_fortran.sh), and loads every deck listed in DECK_EXAMPLES (blank-separated). */
// NP: 1
#include <inttypes.h>
#include <math.h>
#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnrev/input/deck.h"
#include "gnrev/core/err.h"
#include "gnrev/input/nml.h"
#include "testlib.h"

/* ---------------------------------------------------------------- helpers */

static int parse(const char *text, const char *const *ov, int n_ov, gn_deck *d) {
  gn_error_clear();
  return gn_deck_parse(text, "deck.nml", ov, n_ov, d);
}

static bool contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* The deck must be rejected with GN_EINPUT and the message must contain every needle (NULL-ended).
 * On failure the message is shown as "# " lines. */
static void expect_error_v(const char *name, const char *text, const char *const *ov, int n_ov, const char *const *needles) {
  gn_deck d;
  int st = parse(text, ov, n_ov, &d);
  const char *msg = gn_error_message();
  bool ok = st == GN_EINPUT;
  const char *missing = NULL;
  for (int i = 0; needles[i]; ++i)
    if (!contains(msg, needles[i])) {
      ok = false;
      missing = needles[i];
      break;
    }
  if (!GT_CHECK(ok, "%s", name)) {
    gt_note("status %d; missing: %s", st, missing ? missing : "(none)");
    gt_note("message was:\n%s", msg);
  }
}

#define EXPECT_ERROR(name, text, ...) \
  expect_error_v(name, text, NULL, 0, (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_OVERRIDE_ERROR(name, text, ov, ...) \
  expect_error_v(name, text, (const char *const[]){ov}, 1, (const char *const[]){__VA_ARGS__, NULL})

static int count_substr(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) ++n;
  return n;
}

static bool same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Field-by-field comparison written out independently of deck.c's key table. */
static bool decks_equal(const gn_deck *a, const gn_deck *b) {
#define EQ(f) (a->f == b->f)
#define EQR(f) same_bits(a->f, b->f)
#define EQS(f) (strcmp(a->f, b->f) == 0)
  return EQS(name) && EQS(out_dir) && EQ(seed) && EQ(epochs) && EQ(max_steps) && EQ(log_every) &&
         EQR(divergence_factor) && EQ(source) &&
         EQS(path) && EQ(n_train) && EQ(n_test) && EQ(batch_size) && EQ(shuffle) && EQ(dim) && EQ(classes) &&
         EQ(synthetic_train) && EQ(synthetic_test) && EQ(blocks) && EQ(hidden) && EQ(activation) &&
         EQ(linear_first_block) && EQ(bias) && EQR(init_std) && EQR(proj_gain) && EQ(method) && EQR(lr) &&
         EQ(loss) && EQR(momentum) && EQ(nesterov) && EQR(beta1) && EQR(beta2) && EQR(eps) && EQR(weight_decay) &&
         EQ(output_hessian) && EQ(pinv) && EQR(rtol) && EQR(atol) && EQR(damping) && EQ(gn_reference) &&
         EQ(damping_mode) && EQ(every) && EQ(keep) && EQS(restart) && EQ(eval_every) && EQ(batch_change) &&
         EQ(ntk_every) && EQ(ntk_samples) && EQ(ntk_save_matrix) && EQ(cka_every) && EQ(cka_samples) &&
         EQ(weights_every) && EQ(ggn_every) && EQ(ggn_samples) && EQ(ggn_mode) && EQ(ggn_mc_samples) &&
         EQ(ggn_top_k);
#undef EQ
#undef EQR
#undef EQS
}

/* ---------------------------------------------------------------- namelist syntax (nml.c) */

static void test_nml_syntax(void) {
  const char *text =
      "! leading comment\n"
      "&Grp a = 1, 2, 3  b(2) = 5 ! trailing comment\n"
      "  c = 3*0.5 d = 2*'x''y' e = \"say \"\"hi\"\"\" /\n"
      "$other f = .TRUE. g = F h = -1.5D0\n"
      "$END\n";
  gn_nml_file f;
  gn_nml_diag diag = {0};
  int st = gn_nml_parse(text, "t.nml", &f, &diag);
  GT_CHECK(st == GN_OK && diag.n_errors == 0 && f.n_groups == 2, "nml: two groups ($...$end and &.../) parse without error");
  bool ok = f.n_groups == 2 && strcmp(f.groups[0].name, "grp") == 0 && f.groups[0].n_items == 5;
  GT_CHECK(ok, "nml: group names come back in lower case, with all items");
  if (ok) {
    const gn_nml_group *g = &f.groups[0];
    const gn_nml_item *a = &g->items[0], *b = &g->items[1], *c = &g->items[2], *d = &g->items[3], *e = &g->items[4];
    GT_CHECK(a->n_values == 3 && a->values[0].i == 1 && a->values[1].i == 2 && a->values[2].i == 3 &&
                 a->values[2].kind == GN_NML_INT,
             "nml: a = 1, 2, 3 gives three integers");
    GT_CHECK(b->has_index && b->index == 2 && b->n_values == 1 && b->values[0].i == 5, "nml: b(2) = 5 keeps the subscript");
    GT_CHECK(c->n_values == 3 && c->values[0].kind == GN_NML_REAL && c->values[2].r == 0.5,
             "nml: repeat 3*0.5 expands to three reals");
    GT_CHECK(d->n_values == 2 && strcmp(d->values[1].str, "x'y") == 0, "nml: repeat of a string with a doubled quote");
    GT_CHECK(e->n_values == 1 && strcmp(e->values[0].str, "say \"hi\"") == 0, "nml: double-quoted string with doubled quotes");
    GT_CHECK(a->line == 2 && a->col == 6 && c->line == 3 && c->col == 3 && a->values[1].col == 13,
             "nml: keys and values carry their line and column");
    const gn_nml_group *o = &f.groups[1];
    GT_CHECK(strcmp(o->name, "other") == 0 && o->n_items == 3 && o->items[0].values[0].kind == GN_NML_LOGICAL &&
                 o->items[0].values[0].l && !o->items[1].values[0].l && o->items[2].values[0].r == -1.5,
             "nml: $other group with .TRUE., F and -1.5D0");
  }
  gn_nml_free(&f);
  gn_nml_diag_free(&diag);

  /* Literal classification against hand-written expectations. */
  struct {
    const char *lit;
    gn_nml_kind kind;
    double r;
  } lits[] = {{"1.0d-3", GN_NML_REAL, 1e-3}, {"1e-3", GN_NML_REAL, 1e-3}, {"1.5D0", GN_NML_REAL, 1.5},
              {".5", GN_NML_REAL, 0.5},     {"5.", GN_NML_REAL, 5.0},    {"-2.5E+2", GN_NML_REAL, -250.0},
              {"+7", GN_NML_INT, 7},         {"-12", GN_NML_INT, -12},    {"1q2", GN_NML_REAL, 100.0},
              {".t.", GN_NML_LOGICAL, 1},    {"T", GN_NML_LOGICAL, 1},    {".False.", GN_NML_LOGICAL, 0},
              {"f", GN_NML_LOGICAL, 0},      {"true", GN_NML_LOGICAL, 1}, {"1.0.0", GN_NML_BARE, 0},
              {"e5", GN_NML_BARE, 0},        {"gn", GN_NML_BARE, 0},      {"1e", GN_NML_BARE, 0},
              {"inf", GN_NML_BARE, 0},       {"nan", GN_NML_BARE, 0}};
  int good = 0, n = (int)(sizeof lits / sizeof lits[0]);
  for (int i = 0; i < n; ++i) {
    char buf[128];
    snprintf(buf, sizeof buf, "&g x = %s /\n", lits[i].lit);
    gn_nml_diag dg = {0};
    gn_nml_parse(buf, "t", &f, &dg);
    const gn_nml_value *v = f.n_groups == 1 && f.groups[0].n_items == 1 ? &f.groups[0].items[0].values[0] : NULL;
    bool this_ok = v && dg.n_errors == 0 && v->kind == lits[i].kind &&
                   (lits[i].kind == GN_NML_BARE || (lits[i].kind == GN_NML_LOGICAL ? v->l == (lits[i].r != 0) : v->r == lits[i].r));
    if (this_ok) ++good;
    else gt_note("literal %s misread", lits[i].lit);
    gn_nml_free(&f);
    gn_nml_diag_free(&dg);
  }
  GT_CHECK(good == n, "nml: %d literals (reals with d/e/q exponents, .5, 5., logicals, bare words) classified as written", n);

  GT_CHECK(gn_nml_distance("learnig_rate", "learning_rate") == 1 && gn_nml_distance("mometum", "momentum") == 1 &&
               gn_nml_distance("bta1", "beta1") == 1 && gn_nml_distance("lr", "rl") == 1 && gn_nml_distance("abc", "xyz") == 3,
           "nml: Damerau distance counts insertions, deletions and transpositions as 1");
  const char *keys[] = {"method", "lr", "momentum", "batch_size", "weight_decay"};
  GT_CHECK(strcmp(gn_nml_suggest("learning_rate", keys, 5), "lr") == 0 &&
               strcmp(gn_nml_suggest("momentun", keys, 5), "momentum") == 0 &&
               strcmp(gn_nml_suggest("batch", keys, 5), "batch_size") == 0 &&
               strcmp(gn_nml_suggest("wd", keys, 5), "weight_decay") == 0 && gn_nml_suggest("zzz", keys, 5) == NULL,
           "nml: suggestions by spelling, initials and prefix, none for an unrelated name");
}

/* ---------------------------------------------------------------- valid decks */

static void test_defaults(void) {
  gn_deck d, e;
  gn_deck_defaults(&e);
  int st = parse("", NULL, 0, &d);
  GT_CHECK(st == GN_OK && decks_equal(&d, &e), "an empty deck gives gn_deck_defaults");
  /* The values deck.h documents, written out by hand. */
  GT_CHECK(strcmp(e.name, "gnrev") == 0 && strcmp(e.out_dir, "runs/gnrev") == 0 && e.seed == 42 && e.epochs == 1 &&
               e.max_steps == 0 && e.log_every == 10,
           "defaults of &run");
  GT_CHECK(e.source == GN_SRC_FASHION_MNIST && strcmp(e.path, "/usr/share/datasets/fashion-mnist") == 0 && e.n_train == 0 &&
               e.n_test == 0 && e.batch_size == 0 && e.shuffle && e.dim == 32 && e.classes == 4 &&
               e.synthetic_train == 512 && e.synthetic_test == 256,
           "defaults of &data");
  GT_CHECK(e.blocks == 2 && e.hidden == 8000 && e.activation == GN_ACT_RELU && e.linear_first_block && e.bias &&
               e.init_std == 1e-3 && e.proj_gain == 1.0,
           "defaults of &model");
  GT_CHECK(e.method == GN_OPT_GN && e.lr == 0.1 && e.loss == GN_LOSS_CE && e.momentum == 0 && !e.nesterov && e.beta1 == 0.9 &&
               e.beta2 == 0.999 && e.eps == 1e-8 && e.weight_decay == 0 && e.output_hessian == GN_HESS_IDENTITY &&
               e.pinv == GN_PINV_GRAM && e.rtol == 1e-2 && e.atol == 1e-5 && e.damping == 1e-3 && !e.gn_reference &&
               e.damping_mode == GN_DAMP_CONSTANT,
           "defaults of &optim");
  GT_CHECK(e.every == 0 && e.keep == 3 && strcmp(e.restart, "auto") == 0, "defaults of &checkpoint");
  GT_CHECK(e.eval_every == 10 && !e.batch_change && e.ntk_every == 0 && e.ntk_samples == 32 && e.ntk_save_matrix &&
               e.cka_every == 0 && e.cka_samples == 256 && e.weights_every == 0 && e.ggn_every == 0 &&
               e.ggn_samples == 32 && e.ggn_mode == GN_GGN_EXACT && e.ggn_mc_samples == 1 && e.ggn_top_k == 10,
           "defaults of &diagnostics");
}

static const char *SYNTAX_DECK =
    "! every syntax feature at once\n"
    "$OPTIM  Method = 'ADAM', LR = 1.0d-3   ! upper-case names and a d exponent\n"
    "  beta1 = .5 beta2 = 0.99  eps = 1e-10\n"
    "  weight_decay = 1.5D-4, momentum = 1*0.25\n"
    "  nesterov = .t.\n"
    "$end\n"
    "&run name = 'it''s \"quoted\"', seed = +7, epochs = 3 max_steps=100\n"
    "     out_dir = \"out/it's\" &end\n"
    "\n"
    "&data source = \"synthetic\"\n"
    "      dim = 16, classes = 3,\n"
    "      shuffle = F\n"
    "/\n"
    "&Model activation = 'Tanh' linear_first_block = .FALSE. bias = T init_std = 0 proj_gain = 2. /\n"
    "&checkpoint keep = 5, restart = 'none' /\n"
    "&diagnostics batch_change = true ntk_save_matrix = f ggn_mode = 'mc' ggn_mc_samples = 4 /\n";

static void test_syntax_deck(void) {
  gn_deck d;
  int st = parse(SYNTAX_DECK, NULL, 0, &d);
  if (!GT_CHECK(st == GN_OK, "a deck using every syntax feature parses")) gt_note("%s", gn_error_message());
  GT_CHECK(d.method == GN_OPT_ADAM && d.lr == 1e-3 && d.beta1 == 0.5 && d.beta2 == 0.99 && d.eps == 1e-10 &&
               d.weight_decay == 1.5e-4 && d.momentum == 0.25 && d.nesterov,
           "$optim ... $end: upper-case names, d exponents, .5, 1*0.25, .t.");
  GT_CHECK(strcmp(d.name, "it's \"quoted\"") == 0 && d.seed == 7 && d.epochs == 3 && d.max_steps == 100 &&
               strcmp(d.out_dir, "out/it's") == 0,
           "&run ... &end: doubled quotes in both quote styles, +7");
  GT_CHECK(d.source == GN_SRC_SYNTHETIC && d.dim == 16 && d.classes == 3 && !d.shuffle && strcmp(d.path, "") == 0,
           "&data over several lines with trailing comma; synthetic leaves path empty");
  GT_CHECK(d.activation == GN_ACT_TANH && !d.linear_first_block && d.bias && d.init_std == 0 && d.proj_gain == 2.0,
           "&Model: enum value in any case, .FALSE., T, 2.");
  GT_CHECK(d.keep == 5 && strcmp(d.restart, "none") == 0 && d.batch_change && !d.ntk_save_matrix &&
               d.ggn_mode == GN_GGN_MC && d.ggn_mc_samples == 4,
           "&checkpoint and &diagnostics, groups in any order");
}

static void test_derived_defaults(void) {
  gn_deck d;
  int st = parse("&run name = 'exp1' / &data source = 'mnist' /", NULL, 0, &d);
  GT_CHECK(st == GN_OK && strcmp(d.out_dir, "runs/exp1") == 0 && strcmp(d.path, "/usr/share/datasets/mnist") == 0,
           "out_dir defaults to runs/<name>, path to the source's folder (mnist)");
  st = parse("&data source = 'cifar10' /", NULL, 0, &d);
  GT_CHECK(st == GN_OK && strcmp(d.path, "data/cifar-10-batches-bin") == 0, "cifar10 path default");
  st = parse("&data source = 'hdf5', path = 'x.h5' / &run out_dir = 'elsewhere' /", NULL, 0, &d);
  GT_CHECK(st == GN_OK && strcmp(d.path, "x.h5") == 0 && strcmp(d.out_dir, "elsewhere") == 0,
           "explicit path and out_dir are kept");
}

static void test_overrides(void) {
  gn_deck d;
  const char *ov[] = {"optim:lr=0.5", "data:path='/data/my file.h5'", "run:name=quoted", "data:source=hdf5",
                      "optim:lr=2.5e-2", "MODEL:Blocks=4", "diagnostics:batch_change=.true."};
  int st = parse("&optim lr = 0.1 / &model blocks = 2 /", ov, 7, &d);
  if (!GT_CHECK(st == GN_OK, "overrides with quoted and bare strings parse")) gt_note("%s", gn_error_message());
  GT_CHECK(d.lr == 2.5e-2, "a later override of the same key wins over the earlier one and over the deck");
  GT_CHECK(strcmp(d.path, "/data/my file.h5") == 0 && d.source == GN_SRC_HDF5 && strcmp(d.name, "quoted") == 0 &&
               strcmp(d.out_dir, "runs/quoted") == 0,
           "bare words and quoted strings both set string keys from -P; derived out_dir follows");
  GT_CHECK(d.blocks == 4 && d.batch_change, "override names are case-insensitive; logical overrides");
}

static void test_round_trip(void) {
  gn_deck a;
  gn_deck_defaults(&a);
  snprintf(a.name, sizeof a.name, "rt 'single' \"double\" ! not a comment / not an end");
  snprintf(a.out_dir, sizeof a.out_dir, "/tmp/x y");
  a.seed = INT64_MAX;
  a.max_steps = 123456789012345;
  a.source = GN_SRC_CIFAR10;
  a.lr = 1.0 / 3.0;
  a.init_std = 1e-300;
  a.proj_gain = 12345678.9;
  a.beta2 = nextafter(1.0, 0.0);
  a.eps = 5e-324; /* smallest subnormal */
  a.momentum = 0.1;
  a.nesterov = true;
  a.method = GN_OPT_GN_VIVIT;
  a.loss = GN_LOSS_MSE;
  a.activation = GN_ACT_IDENTITY;
  a.output_hessian = GN_HESS_EXACT;
  a.pinv = GN_PINV_DAMPED;
  a.ggn_mode = GN_GGN_MC;
  a.damping_mode = GN_DAMP_BOOTSTRAP;
  a.shuffle = false;
  a.gn_reference = true;
  snprintf(a.restart, sizeof a.restart, "runs/x/ckpt_000010.h5");
  char *text = gn_deck_format(&a);
  gn_deck b;
  int st = text ? parse(text, NULL, 0, &b) : -1;
  if (!GT_CHECK(st == GN_OK && decks_equal(&a, &b), "format then parse gives the identical deck (reals bit for bit)")) {
    gt_note("%s", text ? text : "(null)");
    gt_note("%s", gn_error_message());
  }
  char *again = st == GN_OK ? gn_deck_format(&b) : NULL;
  GT_CHECK(again && strcmp(text, again) == 0, "formatting the re-parsed deck gives the same text");
  GT_CHECK(text && contains(text, "  lr = 0.3333333333333333\n") && contains(text, "  proj_gain = 12345678.9\n") &&
               contains(text, "  weight_decay = 0.0\n") && contains(text, "  method = 'gn_vivit'\n") &&
               contains(text, "  source = 'cifar10'\n") && contains(text, "  nesterov = .true.\n") &&
               contains(text, "  name = 'rt ''single'' \"double\" ! not a comment / not an end'\n"),
           "effective deck: shortest round-trip digits (up to %%.17g), reals look real, enum names and strings quoted");
  int groups = text ? count_substr(text, "\n&") : 0, ends = text ? count_substr(text, "\n/\n") : 0;
  GT_CHECK(groups == 6 && ends == 6, "effective deck has all six groups, each closed");
  free(text);
  free(again);
}

static void test_names(void) {
  GT_CHECK(strcmp(gn_deck_source_name(GN_SRC_FASHION_MNIST), "fashion-mnist") == 0 &&
               strcmp(gn_deck_source_name(GN_SRC_SYNTHETIC), "synthetic") == 0 &&
               strcmp(gn_deck_method_name(GN_OPT_GN_VIVIT), "gn_vivit") == 0 &&
               strcmp(gn_deck_method_name(GN_OPT_SGD), "sgd") == 0 && strcmp(gn_deck_loss_name(GN_LOSS_MSE), "mse") == 0 &&
               strcmp(gn_deck_activation_name(GN_ACT_TANH), "tanh") == 0,
           "enum names as written in decks");
}

/* ---------------------------------------------------------------- malformed decks */

static void test_errors(void) {
  EXPECT_ERROR("unknown key: file:line:col, echo, caret, did you mean, valid keys",
               "&optim\n  learning_rate = 0.1\n/\n",
               "deck.nml:2:3: error: unknown variable 'learning_rate' in group &optim\n"
               "    2 |   learning_rate = 0.1\n"
               "      |   ^~~~~~~~~~~~~\n"
               "  did you mean 'lr'?\n"
               "  valid keys in &optim: method, lr, loss, momentum, nesterov, beta1, beta2, eps, weight_decay, "
               "output_hessian, pinv, rtol, atol, damping, gn_reference, damping_mode");
  EXPECT_ERROR("misspelt key: did you mean by spelling", "&optim mometum = 0.9 /",
               "deck.nml:1:8: error: unknown variable 'mometum' in group &optim", "did you mean 'momentum'?");
  EXPECT_ERROR("key in the wrong group names the right one", "&model lr = 0.1 /",
               "deck.nml:1:8: error: unknown variable 'lr' in group &model", "'lr' belongs in &optim, not &model",
               "valid keys in &model: blocks, hidden, activation");
  EXPECT_ERROR("unknown group with suggestion and the valid groups", "&optimizer lr = 0.1 /",
               "deck.nml:1:1: error: unknown group &optimizer\n", "did you mean &optim?",
               "valid groups: &run, &data, &model, &optim, &checkpoint, &diagnostics");
  EXPECT_ERROR("duplicate key names both lines", "&optim\n  lr = 0.1\n  method = 'sgd'\n  lr = 0.2\n/",
               "deck.nml:4:3: error: duplicate variable 'lr' in group &optim: set at line 2 and again at line 4");
  EXPECT_ERROR("duplicate group names both lines", "&optim lr = 0.1 /\n&run /\n&optim method = 'sgd' /",
               "deck.nml:3:1: error: group &optim appears twice (first at line 1)");
  EXPECT_ERROR("string for an integer", "&model blocks = 'two' /",
               "deck.nml:1:17: error: wrong type for 'blocks' in &model: expected an integer, found the string 'two'");
  EXPECT_ERROR("real for an integer", "&model\n hidden = 1.5e3\n/",
               "deck.nml:2:11: error: wrong type for 'hidden' in &model: expected an integer, found the real number 1.5e3",
               "without a decimal point");
  EXPECT_ERROR("integer for a logical", "&data shuffle = 1 /",
               "error: wrong type for 'shuffle' in &data: expected a logical (.true. or .false.), found the integer 1");
  EXPECT_ERROR("string for a logical", "&data shuffle = 'yes' /",
               "expected a logical (.true. or .false.), found the string 'yes'");
  EXPECT_ERROR("logical for a real", "&optim lr = .true. /",
               "wrong type for 'lr' in &optim: expected a real number, found the logical .true.");
  EXPECT_ERROR("non-number for a real", "&optim lr = 1.0.0 /",
               "deck.nml:1:13: error: wrong type for 'lr' in &optim: expected a real number, found 1.0.0");
  EXPECT_ERROR("integer for a string", "&run name = 5 /",
               "wrong type for 'name' in &run: expected a quoted string, found the integer 5", "name = '5'");
  EXPECT_ERROR("unquoted enum value is a type error with the fix", "&optim method = gn_vivit /",
               "deck.nml:1:17: error: wrong type for 'method' in &optim: expected a quoted string, found gn_vivit",
               "valid values of method: 'sgd', 'adam', 'gn', 'gn_vivit'", "method = 'gn_vivit'");
  EXPECT_ERROR("unknown enum value lists the valid ones", "&optim method = 'newton' /",
               "deck.nml:1:17: error: unknown method 'newton' in &optim",
               "valid values of method: 'sgd', 'adam', 'gn', 'gn_vivit'");
  EXPECT_ERROR("misspelt enum value suggests", "&data source = 'fashion_mnist' /",
               "unknown source 'fashion_mnist' in &data", "did you mean 'fashion-mnist'?");
  EXPECT_ERROR("negative lr", "&optim lr = -0.1 /",
               "deck.nml:1:13: error: lr = -0.1 is out of range in &optim: expected lr > 0\n"
               "    1 | &optim lr = -0.1 /\n"
               "      |             ^~~~");
  EXPECT_ERROR("blocks < 1", "&model blocks = 0 /", "blocks = 0 is out of range in &model: expected blocks >= 1");
  EXPECT_ERROR("hidden < 1", "&model hidden = -5 /", "hidden = -5 is out of range in &model: expected hidden >= 1");
  EXPECT_ERROR("batch_size < 0", "&data batch_size = -1 /", "batch_size = -1 is out of range in &data: expected batch_size >= 0");
  EXPECT_ERROR("rtol = 0", "&optim rtol = 0 /", "rtol = 0 is out of range in &optim: expected 0 < rtol < 1");
  EXPECT_ERROR("rtol = 1", "&optim rtol = 1.0 /", "rtol = 1.0 is out of range in &optim: expected 0 < rtol < 1");
  EXPECT_ERROR("beta1 = 1", "&optim beta1 = 1d0 /", "beta1 = 1d0 is out of range in &optim: expected 0 <= beta1 < 1");
  EXPECT_ERROR("beta2 < 0", "&optim beta2 = -0.5 /", "beta2 = -0.5 is out of range in &optim: expected 0 <= beta2 < 1");
  EXPECT_ERROR("eps = 0", "&optim eps = 0. /", "eps = 0. is out of range in &optim: expected eps > 0");
  EXPECT_ERROR("init_std < 0", "&model init_std = -1e-3 /", "init_std = -1e-3 is out of range in &model: expected init_std >= 0");
  EXPECT_ERROR("keep < 1", "&checkpoint keep = 0 /", "keep = 0 is out of range in &checkpoint: expected keep >= 1");
  EXPECT_ERROR("momentum < 0", "&optim momentum = -0.9 /", "momentum = -0.9 is out of range in &optim: expected momentum >= 0");
  EXPECT_ERROR("empty name", "&run name = '' /", "name in &run must not be empty");
  EXPECT_ERROR("unterminated string", "&run\n  name = 'abc\n/\n",
               "deck.nml:2:10: error: unterminated string for 'name': the closing ' is missing on this line\n"
               "    2 |   name = 'abc\n"
               "      |          ^~~~");
  EXPECT_ERROR("missing / at the end of the file", "&optim\n  lr = 0.1\n",
               "deck.nml:1:1: error: group &optim is not closed: expected '/' (or &end) before the end of the file");
  EXPECT_ERROR("missing / before the next group", "&optim lr = 0.1\n&model blocks = 3 /\n",
               "deck.nml:1:1: error: group &optim is not closed: expected '/' (or &end) before the next group",
               "the next group starts at line 2: &model");
  EXPECT_ERROR("garbage outside a group", "lr = 0.1\n&optim /\n",
               "deck.nml:1:1: error: 'lr' outside any namelist group: a group starts with &name (as in &optim) and ends with /");
  EXPECT_ERROR("list for a scalar", "&optim lr = 0.1, 0.2 /",
               "deck.nml:1:8: error: expected one value for 'lr' in &optim, found 2 values: lr is a scalar");
  EXPECT_ERROR("repeat for a scalar", "&optim lr = 3*0.1 /", "expected one value for 'lr' in &optim, found 3 values");
  EXPECT_ERROR("subscript on a scalar", "&optim lr(2) = 0.1 /",
               "deck.nml:1:8: error: 'lr' in &optim is a scalar: write lr = value, not lr(2) = value");
  EXPECT_ERROR("bad repeat count 0", "&optim lr = 0*0.1 /",
               "deck.nml:1:13: error: bad repeat count in '0*0.1' for 'lr': expected a positive integer before '*'");
  EXPECT_ERROR("bad repeat count not an integer", "&optim lr = 2.5*0.1 /", "bad repeat count in '2.5*0.1' for 'lr'");
  EXPECT_ERROR("repeat without a value", "&optim lr = 2* /", "repeat '2*' for 'lr' has no value after '*'");
  EXPECT_ERROR("empty value between commas", "&optim lr = , method = 'sgd' /",
               "deck.nml:1:13: error: empty value for 'lr' (null values are not supported");
  EXPECT_ERROR("no value before the end of the group", "&optim lr = /", "deck.nml:1:8: error: no value given for 'lr'");
  EXPECT_ERROR("missing =", "&optim lr 0.1 /", "deck.nml:1:11: error: expected '=' after 'lr', found '0.1'");
  EXPECT_ERROR("bad subscript", "&optim lr(1:2) = 0.1 /", "bad subscript after 'lr': only a single positive integer");
  EXPECT_ERROR("& without a group name", "& lr = 1 /", "deck.nml:1:1: error: expected a group name right after '&'");
  EXPECT_ERROR("integer overflow", "&run seed = 99999999999999999999 /", "integer 99999999999999999999 is out of range");
  EXPECT_ERROR("real overflow", "&optim lr = 1d999 /", "real number 1d999 is out of the range of double precision");
  char longname[300];
  snprintf(longname, sizeof longname, "&run name = '%0200d' /", 0);
  EXPECT_ERROR("string longer than its field", longname, "value of 'name' in &run is too long: 200 characters, at most 127");
  EXPECT_ERROR("gn_vivit needs ggn_top_k >= 1", "&optim method = 'gn_vivit' /\n&diagnostics ggn_top_k = 0 /",
               "deck.nml:2:26: error: method = 'gn_vivit' in &optim needs ggn_top_k >= 1 in &diagnostics (found ggn_top_k = 0)");
  EXPECT_ERROR("nesterov needs momentum > 0", "&optim method = 'sgd'\n  nesterov = .true. /",
               "deck.nml:2:14: error: nesterov = .true. in &optim needs momentum > 0 (found momentum = 0)");
  EXPECT_ERROR("ggn_mode mc needs ggn_mc_samples >= 1", "&diagnostics ggn_mode = 'mc', ggn_mc_samples = 0 /",
               "ggn_mode = 'mc' in &diagnostics needs ggn_mc_samples >= 1 (found ggn_mc_samples = 0)");
  EXPECT_ERROR("hdf5 source needs a path", "&data source = 'hdf5' /",
               "deck.nml:1:16: error: source = 'hdf5' in &data needs path, the HDF5 file to read");
  EXPECT_ERROR("ntk on needs ntk_samples >= 1", "&diagnostics ntk_every = 5 ntk_samples = 0 /",
               "ntk_every = 5 in &diagnostics needs ntk_samples >= 1 (found ntk_samples = 0)");
  EXPECT_ERROR("cka on needs cka_samples >= 1", "&diagnostics cka_samples = 0, cka_every = 1 /",
               "cka_every = 1 in &diagnostics needs cka_samples >= 1 (found cka_samples = 0)");
  EXPECT_ERROR("damped pinv needs damping > 0", "&optim pinv = 'damped' damping = 0 /",
               "pinv = 'damped' in &optim needs damping > 0");
  EXPECT_ERROR("synthetic dim must be even", "&data source = 'synthetic' dim = 33 /",
               "dim = 33 in &data is odd: the model splits the state in halves");
  {
    gn_deck d;
    GT_CHECK(parse("&diagnostics ntk_samples = 0 cka_samples = 0 ggn_samples = 0 /", NULL, 0, &d) == GN_OK,
             "zero samples are fine while the diagnostic is off");
  }
}

static void test_override_errors(void) {
  EXPECT_OVERRIDE_ERROR("override with a bad real: no line, names the override", "", "optim:lr=abc",
                        "-P optim:lr=abc: error: wrong type for 'lr' in &optim: expected a real number, found abc");
  EXPECT_OVERRIDE_ERROR("override without a group", "", "lr=0.1", "-P lr=0.1: error: expected group:key=value");
  EXPECT_OVERRIDE_ERROR("override of an unknown group", "", "optm:lr=0.1", "-P optm:lr=0.1: error: unknown group 'optm'",
                        "did you mean 'optim'?");
  EXPECT_OVERRIDE_ERROR("override of an unknown key", "", "optim:learning_rate=0.1",
                        "-P optim:learning_rate=0.1: error: unknown variable 'learning_rate' in group &optim",
                        "did you mean 'lr'?");
  EXPECT_OVERRIDE_ERROR("override out of range points at the override", "&optim lr = 0.1 /", "optim:lr=-2",
                        "-P optim:lr=-2: error: lr = -2 is out of range in &optim: expected lr > 0");
  EXPECT_OVERRIDE_ERROR("override with two values", "", "optim:lr=0.1,0.2",
                        "-P optim:lr=0.1,0.2: error: expected one value for 'lr' in &optim, found 2 values");
  EXPECT_OVERRIDE_ERROR("override with an unknown enum", "", "optim:method=newton",
                        "-P optim:method=newton: error: unknown method 'newton' in &optim");
  EXPECT_OVERRIDE_ERROR("override with no value", "", "optim:lr=", "-P optim:lr=: error: no value given for 'lr'");
}

static void test_all_errors_reported(void) {
  const char *text =
      "&optim\n"
      "  learning_rate = 0.1\n" /* 2: unknown key */
      "  beta1 = 2\n"           /* 3: range */
      "  method = 'sgd'\n"
      "/\n"
      "&model blocks = 'x' /\n"  /* 6: type */
      "&foo a = 1 /\n"           /* 7: unknown group */
      "&run name = 'abc /\n";    /* 8: unterminated string, then unclosed group */
  gn_deck d;
  int st = parse(text, (const char *const[]){"data:batch_size=-3"}, 1, &d);
  const char *m = gn_error_message();
  const char *p2 = strstr(m, "deck.nml:2:3:"), *p3 = strstr(m, "deck.nml:3:11:"), *p6 = strstr(m, "deck.nml:6:17:"),
             *p7 = strstr(m, "deck.nml:7:1:"), *p8 = strstr(m, "deck.nml:8:13:"), *pg = strstr(m, "deck.nml:8:1:"),
             *po = strstr(m, "-P data:batch_size=-3: error: batch_size = -3 is out of range");
  bool all = st == GN_EINPUT && p2 && p3 && p6 && p7 && p8 && pg && po;
  if (!GT_CHECK(all, "every problem of a deck with seven errors is reported")) gt_note("%s", m);
  GT_CHECK(all && p2 < p3 && p3 < p6 && p6 < p7 && p7 < pg && pg < p8 && p8 < po,
           "errors are listed in deck order, overrides last");
  GT_CHECK(count_substr(m, ": error: ") == 7 && contains(m, "\n7 errors in deck.nml"), "the report ends with the error count");
}

static void test_check_data(void) {
  gn_deck d;
  gn_deck_defaults(&d);
  d.batch_size = 100;
  gn_error_clear();
  GT_CHECK(gn_deck_check_data(&d, "deck.nml", 784, 1000, 100) == GN_OK, "check_data accepts d = 784, batch 100 of 1000");
  gn_error_clear();
  int st = gn_deck_check_data(&d, "input/deck.nml", 785, 1000, 100);
  GT_CHECK(st == GN_EINPUT && contains(gn_error_message(), "input/deck.nml: error: the model splits the state in halves: d = 785 is odd"),
           "check_data: odd d");
  gn_error_clear();
  st = gn_deck_check_data(&d, "deck.nml", 784, 50, 100);
  GT_CHECK(st == GN_EINPUT && contains(gn_error_message(), "deck.nml: error: batch_size = 100 in &data is larger than the training set (50 samples)"),
           "check_data: batch_size > n_train");
  gn_deck_defaults(&d);
  d.ntk_every = 1;
  d.ntk_samples = 64;
  d.cka_every = 1;
  d.cka_samples = 256;
  d.ggn_every = 1;
  d.ggn_samples = 40;
  d.batch_size = 32;
  d.n_train = 500;
  gn_error_clear();
  st = gn_deck_check_data(&d, "deck.nml", 784, 50, 100);
  const char *m = gn_error_message();
  bool ok = st == GN_EINPUT && contains(m, "ntk_samples = 64 in &diagnostics is larger than the training set (50 samples)") &&
            contains(m, "cka_samples = 256 in &diagnostics is larger than the training set (50 samples)") &&
            contains(m, "ggn_samples = 40 in &diagnostics is larger than the batch (32 samples): the GGN is computed on the batch") &&
            contains(m, "n_train = 500 in &data asks for more training samples than the data hold (50)");
  if (!GT_CHECK(ok, "check_data reports every sample-count problem, naming the key")) gt_note("%s", m);
  gn_deck_defaults(&d);
  gn_error_clear();
  st = gn_deck_check_data(&d, "deck.nml", 784, 0, 0);
  GT_CHECK(st == GN_EINPUT && contains(gn_error_message(), "the training set is empty"), "check_data: empty training set");
}

static void test_load(void) {
  gn_deck d;
  gn_error_clear();
  int st = gn_deck_load("/nonexistent/dir/deck.nml", NULL, 0, &d);
  GT_CHECK(st == GN_EIO && contains(gn_error_message(), "/nonexistent/dir/deck.nml") &&
               contains(gn_error_message(), "No such file or directory"),
           "loading a missing deck names the path and the system's reason");
  char path[] = "/tmp/test_deck_XXXXXX";
  int fd = mkstemp(path);
  FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (fp) {
    fputs("&optim\n  lr = 0.25\n  bogus = 1\n/\n", fp);
    fclose(fp);
  }
  gn_error_clear();
  st = gn_deck_load(path, NULL, 0, &d);
  char want[128];
  snprintf(want, sizeof want, "%s:3:3: error: unknown variable 'bogus' in group &optim", path);
  GT_CHECK(fp && st == GN_EINPUT && contains(gn_error_message(), want), "a loaded deck's errors carry its path");
  remove(path);
}

/* ---------------------------------------------------------------- oracle files */

/* One line per key in deck.h order: integers in decimal, reals as the int64 of their bits (exact),
 * logicals T/F, strings and enum names raw. The Fortran oracle prints the same. */
static void dump(FILE *fp, const gn_deck *d) {
#define I(k) fprintf(fp, "%s %" PRId64 "\n", #k, d->k)
#define R(k)                                   \
  do {                                         \
    int64_t bits_;                             \
    memcpy(&bits_, &d->k, sizeof bits_);       \
    fprintf(fp, "%s %" PRId64 "\n", #k, bits_); \
  } while (0)
#define L(k) fprintf(fp, "%s %s\n", #k, d->k ? "T" : "F")
#define S(k) fprintf(fp, "%s %s\n", #k, d->k)
  S(name); S(out_dir); I(seed); I(epochs); I(max_steps); I(log_every); R(divergence_factor);
  fprintf(fp, "source %s\n", gn_deck_source_name(d->source));
  S(path); I(n_train); I(n_test); I(batch_size); L(shuffle); I(dim); I(classes); I(synthetic_train); I(synthetic_test);
  I(blocks); I(hidden);
  fprintf(fp, "activation %s\n", gn_deck_activation_name(d->activation));
  L(linear_first_block); L(bias); R(init_std); R(proj_gain);
  fprintf(fp, "method %s\n", gn_deck_method_name(d->method));
  R(lr);
  fprintf(fp, "loss %s\n", gn_deck_loss_name(d->loss));
  R(momentum); L(nesterov); R(beta1); R(beta2); R(eps); R(weight_decay);
  fprintf(fp, "output_hessian %s\n", (const char *[]){"identity", "exact"}[d->output_hessian]);
  fprintf(fp, "pinv %s\n", (const char *[]){"gram", "svd", "damped"}[d->pinv]);
  R(rtol); R(atol); R(damping); L(gn_reference);
  fprintf(fp, "damping_mode %s\n", (const char *[]){"constant", "bootstrap"}[d->damping_mode]);
  fprintf(fp, "keep_features %s\n", (const char *[]){"auto", "yes", "no"}[d->keep_features]);
  I(every); I(keep); S(restart);
  I(eval_every);
  fprintf(fp, "train_eval %s\n", (const char *[]){"running", "full"}[d->train_eval]);
  L(batch_change); I(ntk_every); I(ntk_samples); L(ntk_save_matrix);
  fprintf(fp, "ntk_space %s\n", (const char *[]){"logits", "output", "both"}[d->ntk_space]);
  I(ntk_output_samples);
  fprintf(fp, "ntk_probe %s\n", (const char *[]){"first", "random"}[d->ntk_probe]);
  fprintf(fp, "ntk_output_probe %s\n", (const char *[]){"first", "random"}[d->ntk_output_probe]);
  I(cka_every); I(cka_samples);
  fprintf(fp, "cka_probe %s\n", (const char *[]){"first", "random"}[d->cka_probe]);
  I(probe_seed);
  I(weights_every); I(ggn_every); I(ggn_samples);
  fprintf(fp, "ggn_mode %s\n", (const char *[]){"exact", "mc"}[d->ggn_mode]);
  I(ggn_mc_samples); I(ggn_top_k);
#undef I
#undef R
#undef L
#undef S
}

static bool write_text(const char *dir, const char *name, const char *ext, const char *text) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
  FILE *fp = fopen(path, "w");
  if (!fp) return false;
  fputs(text, fp);
  return fclose(fp) == 0;
}

/* name.eff.nml (effective deck), name.expect (dump) and, when the deck came from a source text,
 * name.src.nml (that text) and name.groups (the groups it holds, one per line). */
static bool write_case(const char *dir, const char *name, const gn_deck *d, const char *src) {
  char *eff = gn_deck_format(d);
  bool ok = eff && write_text(dir, name, ".eff.nml", eff);
  free(eff);
  if (src) {
    ok = ok && write_text(dir, name, ".src.nml", src);
    /* The groups the source holds, so the oracle knows which reads must succeed. */
    gn_nml_file f;
    gn_nml_diag diag = {0};
    gn_nml_parse(src, name, &f, &diag);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.groups", dir, name);
    FILE *fp = fopen(path, "w");
    for (int64_t g = 0; fp && g < f.n_groups; ++g) fprintf(fp, "%s\n", f.groups[g].name);
    ok = ok && fp && fclose(fp) == 0 && diag.n_errors == 0;
    gn_nml_free(&f);
    gn_nml_diag_free(&diag);
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.expect", dir, name);
  FILE *fp = fopen(path, "w");
  if (!fp) return false;
  dump(fp, d);
  return fclose(fp) == 0 && ok;
}

static char *slurp(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (s) s[fread(s, 1, (size_t)n, fp)] = '\0';
  fclose(fp);
  return s;
}

static void write_oracle_files(const char *dir) {
  gn_deck d;
  gn_deck_defaults(&d);
  GT_CHECK(write_case(dir, "defaults", &d, NULL), "oracle: wrote the default effective deck to %s", dir);
  int st = parse(SYNTAX_DECK, NULL, 0, &d);
  GT_CHECK(st == GN_OK && write_case(dir, "syntax", &d, SYNTAX_DECK), "oracle: wrote the syntax deck and its effective deck");
  gn_deck_defaults(&d);
  snprintf(d.name, sizeof d.name, "odd 'name' \"x\"");
  d.lr = 1.0 / 3.0;
  d.init_std = 1e-300;
  d.beta2 = nextafter(1.0, 0.0);
  d.eps = 5e-324;
  d.seed = INT64_MAX;
  d.method = GN_OPT_SGD;
  d.source = GN_SRC_HDF5;
  snprintf(d.path, sizeof d.path, "/data/set.h5");
  d.ggn_mode = GN_GGN_MC;
  d.shuffle = false;
  GT_CHECK(write_case(dir, "custom", &d, NULL), "oracle: wrote a non-default effective deck");
  const char *ex = getenv("DECK_EXAMPLES");
  char *list = ex ? strdup(ex) : NULL;
  int i = 0;
  for (char *save = NULL, *tok = list ? strtok_r(list, " \t\n", &save) : NULL; tok; tok = strtok_r(NULL, " \t\n", &save)) {
    gn_error_clear();
    st = gn_deck_load(tok, NULL, 0, &d);
    if (!GT_CHECK(st == GN_OK, "example deck %s is accepted by gnrev", tok)) gt_note("%s", gn_error_message());
    char *src = slurp(tok), name[32];
    snprintf(name, sizeof name, "example%d", i++);
    if (st == GN_OK && src) write_case(dir, name, &d, src);
    free(src);
  }
  free(list);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  /* 111 checks, each GT_CHECK made once; with DECK_OUT_DIR 3 more for the oracle files and one per
   * deck in DECK_EXAMPLES. */
  const char *dir = getenv("DECK_OUT_DIR"), *examples = getenv("DECK_EXAMPLES");
  int n_examples = 0;
  for (const char *c = examples ? examples : ""; *c; ++c)
    n_examples += !strchr(" \t\n", *c) && (c == examples || strchr(" \t\n", c[-1]));
  gt_plan(111 + (dir && *dir ? 3 + n_examples : 0));
  test_nml_syntax();
  test_defaults();
  test_syntax_deck();
  test_derived_defaults();
  test_overrides();
  test_round_trip();
  test_names();
  test_errors();
  test_override_errors();
  test_all_errors_reported();
  test_check_data();
  test_load();
  if (dir && *dir) write_oracle_files(dir);
  MPI_Finalize();
  return gt_finish();
}
