/* diag_plan.c — what the switched-on diagnostics cost per rank and snapshot, from the shapes
 * alone (for --check and the memory plan). */
#include "gnrev/diag/diag_plan.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "gnrev/core/sysmem.h"
#include "gnrev/core/real.h"

typedef struct {
  double flops, bytes;
} cost;

/* Per rank and per snapshot, from the shapes alone. A backward pass through one half-block on r
 * rows costs about 8 r m h flops (features 2 r m h, output 2 r hp m, input and parameter VJPs
 * 4 r m h); a forward 4 r m h. */
static cost ntk_cost(const gn_par *par, const gn_deck *dk, int64_t p, int64_t d, int C) {
  const double P = par->size, m = (double)(d / 2), h = (double)dk->hidden, hp = h + (dk->bias ? 1 : 0);
  const double nh = 2.0 * (double)dk->blocks, pl = ceil((double)p / P), pc = (double)p * C;
  cost c;
  /* C backward passes over the local samples, then A A^T and g g^T for the local rows of K. */
  c.flops = nh * ((double)C * 8 * pl * m * h + 2 * pl * (double)p * hp + 2 * pl * C * pc * m);
  /* allgathered A (p x hp) and g (pC x m) of one half-block, and K's local rows. */
  c.bytes = ((double)p * hp + pc * m + ceil(pc / P) * pc) * sizeof(gn_real);
  return c;
}

__attribute__((format(printf, 4, 5))) static void fmt_line(char *buf, size_t cap, size_t *used, const char *fmt, ...) {
  if (*used >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  *used += (size_t)vsnprintf(buf + *used, cap - *used, fmt, ap);
  va_end(ap);
}

static void gflop_str(double f, char *buf, size_t cap) { snprintf(buf, cap, "%.3g GFLOP", f / 1e9); }

/* Bytes per rank of each diagnostic's snapshot, shared by the memory plan and the --check lines. */
static double ntk_bytes(const gn_par *par, const gn_deck *dk, int64_t d, int C) {
  const double P = par->size, p = (double)dk->ntk_samples, pc = p * C;
  /* the NTK helper's work space, K0 kept, K_t rows, probe rows, and the eigensolver's 2-D copies
   * and workspace (about 3 (pC)^2 / P) */
  return ntk_cost(par, dk, dk->ntk_samples, d, C).bytes +
         (ceil(pc / P) * pc + ceil(p / P) * (double)d + 3 * pc * pc / P) * sizeof(gn_real);
}

static double cka_bytes(const gn_par *par, const gn_deck *dk, int64_t d) {
  const double rows = ceil((double)dk->cka_samples / par->size), nh = 2.0 * (double)dk->blocks;
  return ((nh + 3) * rows * (double)d + 2.0 * (double)d * (double)d) * sizeof(gn_real);
}

static double ggn_bytes(const gn_par *par, const gn_deck *dk, int64_t d, int C) {
  const double P = par->size, N = (double)dk->ggn_samples, nl = ceil(N / P);
  const double cols = dk->ggn_mode == GN_GGN_MC ? (double)dk->ggn_mc_samples : C, nc = N * cols;
  /* the NTK of N samples, the gathered batch rows, T and Gram rows, the eigensolver (about
   * 3 nc^2 / P) and the top-k eigenvectors on every rank */
  return ntk_cost(par, dk, dk->ggn_samples, d, C).bytes +
         (N * (double)d + nl * C * nc + nl * cols * nc + 3 * nc * nc / P + (double)dk->ggn_top_k * nc) *
             sizeof(gn_real);
}

/* Output space: probe rows, v, K_0 v and K_t v, the state and cotangent of the VJP, one half-block of
 * J^T v on its way to node memory (J^T v itself is node-shared: gn_diag_shared_bytes). */
static double ntk_output_bytes(const gn_par *par, const gn_deck *dk, int64_t d) {
  const double rows = ceil((double)dk->ntk_output_samples / par->size), m = (double)(d / 2);
  const double hp = (double)dk->hidden + (dk->bias ? 1 : 0);
  return (6 * rows * (double)d + hp * m) * sizeof(gn_real);
}

size_t gn_diag_shared_bytes(const gn_deck *dk, int64_t d) {
  const double nparams = 2.0 * (double)dk->blocks * ((double)dk->hidden + (dk->bias ? 1 : 0)) * (double)(d / 2);
  const bool any = dk->ntk_every > 0 || dk->cka_every > 0 || dk->weights_every > 0 || dk->ggn_every > 0;
  const bool output = dk->ntk_every > 0 && dk->ntk_space != GN_NTK_LOGITS;
  return (size_t)((any ? nparams : 0) * sizeof(gn_real) + (output ? nparams : 0) * sizeof(gn_real));
}

size_t gn_diag_bytes(const gn_par *par, const gn_deck *dk, int64_t d, int C) {
  double bytes = 0;
  if (dk->ntk_every > 0 && dk->ntk_space != GN_NTK_OUTPUT) bytes += ntk_bytes(par, dk, d, C);
  if (dk->ntk_every > 0 && dk->ntk_space != GN_NTK_LOGITS) bytes += ntk_output_bytes(par, dk, d);
  if (dk->cka_every > 0) bytes += cka_bytes(par, dk, d);
  if (dk->ggn_every > 0) bytes += ggn_bytes(par, dk, d, C);
  return (size_t)bytes;
}

char *gn_diag_plan(const gn_par *par, const gn_deck *dk, int64_t d, int C) {
  const size_t cap = 4096;
  char *out = malloc(cap);
  if (!out) return NULL;
  size_t used = 0;
  out[0] = '\0';
  const double P = par->size, m = (double)(d / 2), h = (double)dk->hidden, hp = h + (dk->bias ? 1 : 0);
  const double nh = 2.0 * (double)dk->blocks, nparams = nh * hp * m;
  const bool any = dk->ntk_every > 0 || dk->cka_every > 0 || dk->weights_every > 0 || dk->ggn_every > 0;
  if (!any) return out;
  char fb[32], bb[32];
  fmt_line(out, cap, &used, "diagnostics (per rank, per snapshot; theta0 kept once per node: ");
  gn_sysmem_str((size_t)(nparams * sizeof(gn_real)), bb, sizeof bb);
  fmt_line(out, cap, &used, "%s):\n", bb);
  if (dk->ntk_every > 0 && dk->ntk_space != GN_NTK_LOGITS) {
    const double rows = ceil((double)dk->ntk_output_samples / P);
    /* one backpropagation and one forward-mode pass over the probe rows */
    double flops = 0;
    for (int64_t b = 0; b < dk->blocks; ++b) flops += 2 * (8 * rows * m * h + 8 * rows * m * h);
    gflop_str(flops, fb, sizeof fb);
    gn_sysmem_str((size_t)ntk_output_bytes(par, dk, d), bb, sizeof bb);
    fmt_line(out, cap, &used,
             "  ntk (output space) every %lld steps, %lld %s samples: %s (K v = J J^T v: one backpropagation and one "
             "forward-mode pass over %.0f rows), %s per rank and J^T v once per node\n",
             (long long)dk->ntk_every, (long long)dk->ntk_output_samples,
             dk->ntk_output_probe == GN_PROBE_RANDOM ? "random" : "first", fb, rows, bb);
  }
  if (dk->ntk_every > 0 && dk->ntk_space != GN_NTK_OUTPUT) {
    const double p = (double)dk->ntk_samples, pc = p * C;
    cost c = ntk_cost(par, dk, dk->ntk_samples, d, C);
    /* eigenvalues of the pC x pC K by PDSYEVD: ~ (4/3 + 8/3 + 4) (pC)^3 / P with vectors */
    const double eig = 8 * pc * pc * pc / P;
    gflop_str(c.flops + eig, fb, sizeof fb);
    gn_sysmem_str((size_t)ntk_bytes(par, dk, d, C), bb, sizeof bb);
    fmt_line(out, cap, &used,
             "  ntk     every %lld steps, p = %lld samples, K %.0f x %.0f: %s (%g backward passes over %.0f rows + "
             "p^2 hp + p^2 C^2 m per half-block, eigenvalues ~8 (pC)^3/P), %s (A p x hp, g pC x m, K_0 and K_t rows, eigensolver)%s\n",
             (long long)dk->ntk_every, (long long)dk->ntk_samples, pc, pc, fb, (double)C, ceil(p / P), bb,
             dk->ntk_save_matrix ? "; K saved each snapshot" : "");
    if (dk->ntk_save_matrix) {
      gn_sysmem_str((size_t)(pc * pc * sizeof(gn_real)), bb, sizeof bb);
      fmt_line(out, cap, &used, "          run.h5 grows by %s per snapshot\n", bb);
    }
  }
  if (dk->cka_every > 0) {
    const double rows = ceil((double)dk->cka_samples / P);
    const double flops = nh * (4 * rows * m * h + 3 * rows * (double)d * d);
    gflop_str(flops, fb, sizeof fb);
    gn_sysmem_str((size_t)cka_bytes(par, dk, d), bb, sizeof bb);
    fmt_line(out, cap, &used,
             "  cka     every %lld steps, %lld samples (%.0f per rank): %s (forward + 3 rows d^2 per half-block, "
             "allreduce 2 d^2), %s (2B step-0 states rows x d, 2 d x d products)\n",
             (long long)dk->cka_every, (long long)dk->cka_samples, rows, fb, bb);
  }
  if (dk->weights_every > 0) {
    gflop_str(4 * nparams, fb, sizeof fb);
    fmt_line(out, cap, &used, "  weights every %lld steps: %s, no extra memory beyond theta0\n", (long long)dk->weights_every, fb);
  }
  if (dk->ggn_every > 0) {
    const double N = (double)dk->ggn_samples, cols = dk->ggn_mode == GN_GGN_MC ? (double)dk->ggn_mc_samples : C;
    const double nc = N * cols;
    cost c = ntk_cost(par, dk, dk->ggn_samples, d, C);
    gflop_str(c.flops + 8 * nc * nc * nc / P + 2 * N * C * N * C * nc / P, fb, sizeof fb);
    gn_sysmem_str((size_t)ggn_bytes(par, dk, d, C), bb, sizeof bb);
    fmt_line(out, cap, &used,
             "  ggn     every %lld steps, N = %lld samples (%s, %.0f columns of S each), top %lld: %s (NTK of N "
             "samples + Gram S^T K S and its eigenvectors, %.0f x %.0f), %s (NTK buffers, N x d gathered batch rows, Gram rows, eigensolver)\n",
             (long long)dk->ggn_every, (long long)dk->ggn_samples, dk->ggn_mode == GN_GGN_MC ? "mc" : "exact", cols,
             (long long)dk->ggn_top_k, fb, nc, nc, bb);
  }
  return out;
}
