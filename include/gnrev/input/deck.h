/* deck.h — the run configuration: every key of every namelist group, its default and its
 * meaning. The namelist syntax itself lives in nml.h; this module maps it onto gn_deck, checks
 * types, ranges and consistency, applies -P overrides and writes the effective deck back out. */
#ifndef GNREV_DECK_H
#define GNREV_DECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { GN_PATH_MAX = 1024, GN_NAME_MAX = 128 };

typedef enum { GN_SRC_FASHION_MNIST, GN_SRC_MNIST, GN_SRC_CIFAR10, GN_SRC_HDF5, GN_SRC_SYNTHETIC } gn_source;
typedef enum { GN_ACT_RELU, GN_ACT_IDENTITY, GN_ACT_TANH } gn_activation;
typedef enum { GN_OPT_SGD, GN_OPT_ADAM, GN_OPT_GN, GN_OPT_GN_VIVIT } gn_method;
typedef enum { GN_LOSS_CE, GN_LOSS_MSE } gn_loss_kind;
typedef enum { GN_HESS_IDENTITY, GN_HESS_EXACT } gn_output_hessian;
typedef enum { GN_PINV_GRAM, GN_PINV_SVD, GN_PINV_DAMPED } gn_pinv_kind;
typedef enum { GN_GGN_EXACT, GN_GGN_MC } gn_ggn_mode;
typedef enum { GN_DAMP_CONSTANT, GN_DAMP_BOOTSTRAP } gn_damping_mode;
typedef enum { GN_TRAIN_RUNNING, GN_TRAIN_FULL } gn_train_eval;
typedef enum { GN_NTK_LOGITS, GN_NTK_OUTPUT, GN_NTK_BOTH } gn_ntk_space;
typedef enum { GN_PROBE_FIRST, GN_PROBE_RANDOM } gn_probe_kind;
typedef enum { GN_KEEP_AUTO, GN_KEEP_YES, GN_KEEP_NO } gn_keep_features;

typedef struct {
  /* &run */
  char name[GN_NAME_MAX];     /* run name, recorded in outputs; default "gnrev" */
  char out_dir[GN_PATH_MAX];  /* output folder (created); default "runs/<name>" */
  int64_t seed;               /* master seed of every random stream; default 42 */
  int64_t epochs;             /* passes over the training set; default 1 */
  int64_t max_steps;          /* stop after this many updates; 0 = no limit; default 0 */
  int64_t log_every;          /* progress line every this many steps; default 10 */
  double divergence_factor;   /* stop (exit 5) when a batch loss exceeds this many times the lowest
                               * so far and the first; 0 = off; default 1e3 */
  /* &data */
  gn_source source;           /* default fashion-mnist */
  char path[GN_PATH_MAX];     /* folder (IDX, CIFAR) or file (HDF5); default per source */
  int64_t n_train;            /* first n training samples; 0 = all; default 0 */
  int64_t n_test;             /* first n test samples; 0 = all; default 0 */
  int64_t batch_size;         /* samples per step; 0 = full batch; default 0 */
  bool shuffle;               /* reshuffle every epoch; default .true. */
  int64_t dim;                /* synthetic only: input dimension d (even); default 32 */
  int64_t classes;            /* synthetic only: number of classes; default 4 */
  int64_t synthetic_train;    /* synthetic only: training set size; default 512 */
  int64_t synthetic_test;     /* synthetic only: test set size; default 256 */
  /* &model */
  int64_t blocks;             /* reversible blocks B; default 2 */
  int64_t hidden;             /* inverted-bottleneck width h; default 8000 */
  gn_activation activation;   /* phi; default relu */
  bool linear_first_block;    /* block 1 uses phi = identity; default .true. */
  bool bias;                  /* train b (the ones column of A); default .true. */
  double init_std;            /* std of initial W; default 1e-3 */
  double proj_gain;           /* C entries ~ N(0, proj_gain^2 / h); default 1 */
  /* &optim */
  gn_method method;           /* default gn */
  double lr;                  /* step size; default 0.1 */
  gn_loss_kind loss;          /* default ce */
  double momentum;            /* SGD momentum (PyTorch semantics); default 0 */
  bool nesterov;              /* SGD Nesterov momentum; default .false. */
  double beta1, beta2, eps;   /* Adam; defaults 0.9, 0.999, 1e-8 */
  double weight_decay;        /* L2 added to the gradient (PyTorch semantics); default 0 */
  gn_output_hessian output_hessian; /* GN residual for CE; default identity */
  gn_pinv_kind pinv;          /* GN pseudo-inverse; default gram */
  double rtol, atol;          /* pinv truncation; defaults 1e-2, 1e-5 */
  double damping;             /* pinv = damped: K + damping * mu_max * I; default 1e-3 */
  bool gn_reference;          /* Moore-Penrose GN step from the full NTK (small problems only) */
  gn_damping_mode damping_mode; /* gn_vivit; default constant */
  gn_keep_features keep_features; /* gn: the forward keeps every half-block's features for the sweep
                                   * (no inverse, no recomputed features); auto: when they fit in a
                                   * quarter of the node's free memory; default auto */
  /* &checkpoint */
  int64_t every;              /* checkpoint every this many steps; 0 = only at the end; default 0 */
  int64_t keep;               /* newest checkpoints kept (step 0 always kept); default 3 */
  char restart[GN_PATH_MAX];  /* "auto", "none" or a checkpoint path; default "auto" */
  /* &diagnostics */
  int64_t eval_every;         /* test-set evaluation every this many steps; 0 = only at the end */
  gn_train_eval train_eval;   /* mini-batch train columns: running mean over the epoch's batches, or
                               * the whole training set at each evaluation (full); default running */
  bool batch_change;          /* loss of the batch before and after its own update */
  int64_t ntk_every, ntk_samples;
  bool ntk_save_matrix;
  gn_ntk_space ntk_space;     /* NTK of the logits (matrix), of the d-wide output before U (matrix-free
                               * K v), or both; default logits */
  int64_t ntk_output_samples; /* probe size in output space; default 1024 */
  gn_probe_kind ntk_probe;    /* logit-space probe: the first samples of the training set, or drawn at
                               * random from every training sample the data hold; default first */
  gn_probe_kind ntk_output_probe; /* output-space probe, likewise; default random */
  int64_t cka_every, cka_samples;
  gn_probe_kind cka_probe;    /* as ntk_probe, for CKA; default first */
  int64_t probe_seed;         /* seed of the random probes; -1 = the run's seed; default -1 */
  int64_t weights_every;
  int64_t ggn_every, ggn_samples;
  gn_ggn_mode ggn_mode;
  int64_t ggn_mc_samples, ggn_top_k;
} gn_deck;

/* Local. Sets every field to its default. */
void gn_deck_defaults(gn_deck *deck);

/* Local. Parses the namelist text of file `filename` (used in messages only) into deck, starting
 * from the defaults, then applies the overrides ("group:key=value", value in namelist syntax).
 * On error returns GN_EINPUT with every problem found (not only the first) in the error message,
 * one per line, each as "file:line:col: error: ...", with the offending line and a caret, a
 * "did you mean" suggestion for misspelt names and the list of valid keys. */
int gn_deck_parse(const char *text, const char *filename, const char *const *overrides,
                  int n_overrides, gn_deck *deck);

/* Local. GN_EINPUT when the len bytes read from deck file `filename` hold a NUL byte, located as
 * "file:line:col: error: ..." with the line and a caret: gn_deck_parse reads its text as a C string,
 * so a NUL would silently hide the rest of the deck (a group, a key). Call it on the bytes as read,
 * before gn_deck_parse. */
int gn_deck_check_bytes(const char *text, size_t len, const char *filename);

/* Local. GN_EINPUT when the deck text holds no namelist group at all (empty, or only comments and
 * blanks): gnrev_mpi refuses such a deck rather than train every default. gn_deck_parse itself
 * accepts it (the defaults), and syntax errors are left to it (GN_OK here). */
int gn_deck_require_groups(const char *text, const char *filename);

/* Local. Reads the file and calls gn_deck_parse. */
int gn_deck_load(const char *path, const char *const *overrides, int n_overrides, gn_deck *deck);

/* Local. Consistency checks that need the data shape (odd d, batch_size > n_train, ...),
 * reported like parse errors. n_train and n_test are the effective sizes. */
int gn_deck_check_data(const gn_deck *deck, const char *filename, int64_t d, int64_t n_train,
                       int64_t n_test);

/* Local. The effective deck (every key, defaults filled in) as namelist text, malloc'ed. */
char *gn_deck_format(const gn_deck *deck);

/* Local. Names of enum values as written in decks ("fashion-mnist", "relu", ...). */
const char *gn_deck_source_name(gn_source v);
const char *gn_deck_method_name(gn_method v);
const char *gn_deck_loss_name(gn_loss_kind v);
const char *gn_deck_activation_name(gn_activation v);

/* Local. The folder (or "") that path defaults to for a source: /usr/share/datasets/mnist for
 * mnist (where `make data` installs it), /usr/share/datasets/fashion-mnist for fashion-mnist
 * (Debian's dataset-fashion-mnist), data/cifar-10-batches-bin for cifar10. */
const char *gn_deck_default_path(gn_source s);

#endif
