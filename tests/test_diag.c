// NP: 1 2
/* test_diag.c — the diagnostics orchestrator end to end on a tiny model and synthetic rows:
 * gn_diag_step at steps 0, 1, 2 and gn_diag_final at 3 write /ntk, /cka, /weights and /ggn with
 * the documented shapes; at step 0 CKA is 1, the NTK relative change 0 and its similarity 1, the
 * weight cosines 1; the saved K equals J J^T formed from per-logit gradients; later CKA values
 * equal a one-rank evaluation on the whole probe set; the GGN of the batch's first rows equals a
 * one-rank GGN of those rows (so the re-split of the batch is right); run.xmf names the saved
 * matrices; a checkpoint save/load cuts the diagnostics back to the snapshots before its step.
 *
 * Files go to $DIAG_TEST_DIR when set (tests/test_plot_xdmf.py then plots them and opens run.xmf),
 * else to a temporary directory removed at the end.
 *
 * theta, the batch rows and the test's own network evaluations are gn_real (real.h); what the run
 * file holds is double in both builds, and the test's references (J J^T, DSYEVD, cosines) are
 * formed in double. Rounding tolerances go through gt_tol (testlib.h). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gnrev/diag/cka.h"
#include "gnrev/diag/diag.h"
#include "gnrev/diag/diag_plan.h"
#include "gnrev/curvature/ggn.h"
#include "gnrev/core/rng.h"
#include "gnrev/linalg/scalapack.h"
#include "testlib.h"

static gn_par par, self;

enum { D = 8, NC = 3, NTRAIN = 24, P_NTK = 5, P_CKA = 7, N_GGN = 4, BATCH = 6 };

static gn_dataset make_set(float *x, int32_t *y) {
  for (int i = 0; i < NTRAIN; ++i) {
    for (int j = 0; j < D; ++j) x[i * D + j] = (float)gn_rng_normal(3, GN_RNG_TEST, 1, (uint64_t)(i * D + j));
    y[i] = (int32_t)gn_rng_below(3, GN_RNG_TEST, 2, (uint64_t)i, NC);
  }
  return (gn_dataset){.n = NTRAIN, .d = D, .classes = NC, .x = x, .y = y, .win = MPI_WIN_NULL, .heap = NULL};
}

/* K = J J^T of the first p samples, J rows from one backward pass per logit (replicated). */
static void direct_ntk(const gn_model *md, const gn_real *theta, const gn_dataset *set, int64_t p, double *K) {
  const int64_t pc = p * md->C;
  gn_real *J = calloc((size_t)pc * md->nparams, sizeof(gn_real));
  for (int64_t i = 0; i < p; ++i)
    for (int a = 0; a < md->C; ++a) {
      gn_real X[D], dX[D], logits[NC];
      int64_t idx = i;
      gn_data_gather(set, &idx, 1, X, NULL);
      gn_model_forward(md, theta, 1, X, logits);
      for (int k = 0; k < D; ++k) dX[k] = md->U[k * md->C + a];
      gn_model_backward(md, theta, 1, X, dX, J + (size_t)(i * md->C + a) * md->nparams);
    }
  for (int64_t r = 0; r < pc; ++r)
    for (int64_t c = 0; c < pc; ++c) {
      double s = 0;
      for (size_t k = 0; k < md->nparams; ++k) s += (double)J[r * md->nparams + k] * J[c * md->nparams + k];
      K[r * pc + c] = s;
    }
  free(J);
}

static double max_abs(const double *a, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = fmax(m, fabs(a[i]));
  return m;
}

static bool shape_is(gn_h5 *f, const char *path, int nd, int64_t d0, int64_t d1) {
  int n = 0;
  int64_t dims[3] = {0, 0, 0};
  if (gn_h5_shape(f, path, &n, dims) != GN_OK) return false;
  return n == nd && dims[0] == d0 && (nd < 2 || dims[1] == d1);
}

static double *read_all(gn_h5 *f, const char *path, int nd, int64_t d0, int64_t d1) {
  int64_t dims[2] = {d0, d1};
  double *v = malloc((size_t)(d0 * (nd > 1 ? d1 : 1)) * sizeof(double));
  if (gn_h5_read_f64(f, path, nd, dims, v) != GN_OK) {
    free(v);
    return NULL;
  }
  return v;
}

static bool file_has(const char *path, const char *needle) {
  FILE *f = fopen(path, "r");
  if (!f) return false;
  char buf[65536];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return strstr(buf, needle) != NULL;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  gt_plan(38); /* the GT_CHECKs below, each made once */
  if (gn_par_open(MPI_COMM_WORLD, &par) != GN_OK || gn_par_open(MPI_COMM_SELF, &self) != GN_OK)
    MPI_Abort(MPI_COMM_WORLD, 1);
  char dir[4096];
  const char *env = getenv("DIAG_TEST_DIR");
  if (env) {
    snprintf(dir, sizeof dir, "%s", env);
  } else {
    snprintf(dir, sizeof dir, "%s/gnrev_diag_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (par.rank == 0 && !mkdtemp(dir)) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
  }
  char run_path[4200], xmf_path[4200], ckpt_path[4200];
  snprintf(run_path, sizeof run_path, "%s/run.h5", dir);
  snprintf(xmf_path, sizeof xmf_path, "%s/run.xmf", dir);
  snprintf(ckpt_path, sizeof ckpt_path, "%s/ckpt.h5", dir);

  gn_deck deck;
  gn_deck_defaults(&deck);
  snprintf(deck.name, sizeof deck.name, "diag-test");
  deck.blocks = 2;
  deck.hidden = 12;
  deck.init_std = 0.3;
  deck.linear_first_block = true;
  deck.ntk_every = 2;
  deck.ntk_samples = P_NTK;
  deck.ntk_save_matrix = true;
  deck.cka_every = 2;
  deck.cka_samples = P_CKA;
  deck.weights_every = 1;
  deck.ggn_every = 2;
  deck.ggn_samples = N_GGN;
  deck.ggn_top_k = 3;

  float x[NTRAIN * D];
  int32_t y[NTRAIN];
  gn_dataset train = make_set(x, y);
  gn_model model;
  memset(&model, 0, sizeof model);
  int st = gn_model_create(NULL, &deck, D, NC, &model);
  if (st == GN_OK) st = gn_model_reserve(&model, 3); /* smaller than the probe sets: chunked */
  GT_CHECK(st == GN_OK, "tiny model created");
  const size_t np = model.nparams;
  gn_real *theta0 = malloc(np * sizeof(gn_real)), *theta = malloc(np * sizeof(gn_real));
  gn_model_init_params(&model, &deck, 0, model.nparams, theta0);
  memcpy(theta, theta0, np * sizeof(gn_real));

  /* The batch: rows [0, BATCH) of the set, this rank's gn_par_rows share. */
  int64_t b0, bn;
  gn_par_rows(BATCH, par.size, par.rank, &b0, &bn);
  gn_real Xb[BATCH * D];
  int32_t yb[BATCH];
  int64_t idx[BATCH];
  for (int64_t i = 0; i < bn; ++i) idx[i] = b0 + i;
  gn_data_gather(&train, idx, bn, Xb, yb);

  gn_h5 *run = NULL;
  gn_diag *dg = NULL;
  st = gn_h5_create(&par, run_path, &run);
  if (st == GN_OK) st = gn_h5_attr_str(run, "/", "deck", "&run\n  name = 'diag-test'\n/\n");
  if (st == GN_OK) st = gn_diag_create(&par, &deck, &model, &train, theta0, run, run_path, xmf_path, &dg);
  GT_CHECK(st == GN_OK, "gn_diag_create on a tiny model (%s)", st ? gn_error_message() : "");
  if (st != GN_OK) MPI_Abort(MPI_COMM_WORLD, 1);

  st = gn_diag_step(dg, 0, theta, bn, BATCH, Xb, yb);
  GT_CHECK(st == GN_OK, "gn_diag_step at step 0 (%s)", st ? gn_error_message() : "");
  /* Steps 1 and 2: theta moves by a fixed Gaussian perturbation. */
  gn_real *dtheta = malloc(np * sizeof(gn_real));
  gn_rng_fill_normal_real(3, GN_RNG_TEST, 9, 0, np, 0.05, dtheta);
  for (int s = 1; s <= 2; ++s) {
    for (size_t k = 0; k < np; ++k) theta[k] += dtheta[k];
    st = gn_diag_step(dg, s, theta, bn, BATCH, Xb, yb);
    GT_CHECK(st == GN_OK, "gn_diag_step at step %d (%s)", s, st ? gn_error_message() : "");
  }
  gn_real *theta2 = malloc(np * sizeof(gn_real));
  memcpy(theta2, theta, np * sizeof(gn_real));
  for (size_t k = 0; k < np; ++k) theta[k] += dtheta[k];
  st = gn_diag_final(dg, 3, theta);
  GT_CHECK(st == GN_OK, "gn_diag_final at step 3 (%s)", st ? gn_error_message() : "");
  GT_CHECK(gn_h5_flush(run) == GN_OK, "run file flushed");

  const int64_t pc = P_NTK * NC, nh = 4, nt = 8;
  /* NTK: snapshots at 0, 2 (period 2) and 3 (final). */
  GT_CHECK(shape_is(run, "/ntk/step", 1, 3, 0) && shape_is(run, "/ntk/rel_change", 1, 3, 0) &&
               shape_is(run, "/ntk/similarity", 1, 3, 0) && shape_is(run, "/ntk/alignment", 1, 3, 0) &&
               shape_is(run, "/ntk/scale", 1, 3, 0),
           "ntk_series_have_one_entry_per_snapshot");
  GT_CHECK(shape_is(run, "/ntk/K_00000000", 2, pc, pc) && shape_is(run, "/ntk/K_00000002", 2, pc, pc) &&
               shape_is(run, "/ntk/K_00000003", 2, pc, pc) && !gn_h5_exists(run, "/ntk/K_00000001"),
           "ntk_matrices_saved_at_due_steps_with_shape_pC_x_pC");
  GT_CHECK(shape_is(run, "/ntk/eigenvalues", 2, 3, 15), "ntk_eigenvalue_table_is_snapshots_x_min_pC_20");
  double *steps = read_all(run, "/ntk/step", 1, 3, 0), *rel = read_all(run, "/ntk/rel_change", 1, 3, 0),
         *sim = read_all(run, "/ntk/similarity", 1, 3, 0);
  GT_CHECK(steps && steps[0] == 0 && steps[1] == 2 && steps[2] == 3, "ntk_steps_are_0_2_3");
  GT_CHECK(rel && sim && rel[0] == 0 && fabs(sim[0] - 1) < gt_tol(1e-14),
           "ntk_rel_change_0_and_similarity_1_at_step_0");
  GT_CHECK(rel && sim && rel[1] > 1e-3 && rel[2] > rel[1] && sim[1] < 1, "ntk_moves_when_theta_moves (%.3g, %.3g)",
           rel ? rel[1] : NAN, rel ? rel[2] : NAN);
  const double rel_step2 = rel ? rel[1] : NAN;
  /* rel_change^2 = 1 + scale^2 - 2 scale alignment ties the three Frobenius measures together. */
  double *al = read_all(run, "/ntk/alignment", 1, 3, 0), *sc = read_all(run, "/ntk/scale", 1, 3, 0);
  double worst = al && sc && rel ? 0 : NAN;
  for (int i = 0; al && sc && rel && i < 3; ++i)
    worst = fmax(worst, fabs(rel[i] * rel[i] - (1 + sc[i] * sc[i] - 2 * sc[i] * al[i])));
  GT_CHECK(al && sc && fabs(al[0] - 1) < gt_tol(1e-14) && sc[0] == 1 && al[2] < 1 && worst < gt_tol(1e-12),
           "ntk_alignment_and_scale_1_at_step_0_and_consistent_with_rel_change (%.2e)", worst);
  free(steps); free(rel); free(sim); free(al); free(sc);
  double *Kf = read_all(run, "/ntk/K_00000002", 2, pc, pc), *Kd = malloc((size_t)(pc * pc) * sizeof(double));
  direct_ntk(&model, theta2, &train, P_NTK, Kd);
  double *ht = read_all(run, "/ntk/half_trace", 2, 3, nh), trK = 0, hsum = 0;
  for (int64_t k = 0; Kf && k < pc; ++k) trK += Kf[k * pc + k];
  for (int64_t k = 0; ht && k < nh; ++k) hsum += ht[nh + k];
  GT_CHECK(ht && Kf && fabs(hsum - trK) <= gt_tol(1e-13) * trK, "ntk_half_traces_of_step_2_sum_to_trace_of_saved_K (%.2e)",
           ht && Kf ? fabs(hsum - trK) / trK : NAN);
  free(ht);
  if (Kf)
    for (int64_t k = 0; k < pc * pc; ++k) Kf[k] -= Kd[k];
  /* Both are sums of ~nparams products of O(1) gradients: agreement to ~1e-14 of max |K|. */
  GT_CHECK(Kf && max_abs(Kf, pc * pc) <= gt_tol(1e-11) * max_abs(Kd, pc * pc),
           "saved_ntk_equals_J_JT_from_per_logit_gradients");
  double *eig = read_all(run, "/ntk/eigenvalues", 2, 3, 15);
  {
    /* Every row descending and positive; the row of step 2 equals serial DSYEVD of the direct K. */
    bool desc = eig != NULL;
    for (int r = 0; desc && r < 3; ++r)
      for (int k = 0; k < 15; ++k) desc = desc && eig[r * 15 + k] > 0 && (k == 0 || eig[r * 15 + k] <= eig[r * 15 + k - 1]);
    int n = (int)pc, lwork = 1 + 6 * n + 2 * n * n + 64, liwork = 3 + 5 * n + 64, info = 0;
    double *Kc = malloc((size_t)(pc * pc) * sizeof(double)), *w = malloc((size_t)pc * sizeof(double));
    double *work = malloc((size_t)lwork * sizeof(double));
    int *iwork = malloc((size_t)liwork * sizeof(int));
    memcpy(Kc, Kd, (size_t)(pc * pc) * sizeof(double));
    dsyevd_("N", "L", &n, Kc, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    double ed = 0;
    for (int k = 0; eig && k < n; ++k) ed = fmax(ed, fabs(eig[15 + k] - w[n - 1 - k]));
    GT_CHECK(desc && info == 0 && ed <= gt_tol(1e-11) * w[n - 1],
             "ntk_eigenvalues_descending_positive_and_equal_serial_dsyevd_of_direct_K (max diff / mu_max %.2e)",
             ed / w[n - 1]);
    free(Kc); free(w); free(work); free(iwork);
  }
  free(Kf); free(Kd); free(eig);

  /* CKA: snapshots 0, 2, 3 x 4 half-blocks. */
  GT_CHECK(shape_is(run, "/cka/step", 1, 3, 0) && shape_is(run, "/cka/value", 2, 3, nh), "cka_table_is_snapshots_x_half_blocks");
  double *cka = read_all(run, "/cka/value", 2, 3, nh);
  const double ctol = gt_tol(1e-12);
  GT_CHECK(cka && fabs(cka[0] - 1) < ctol && fabs(cka[1] - 1) < ctol && fabs(cka[2] - 1) < ctol &&
               fabs(cka[3] - 1) < ctol,
           "cka_is_one_at_step_0");
  {
    /* One rank, whole probe set: the state after each half-block at theta0 and theta2. */
    gn_real S0[P_CKA * D], S2[P_CKA * D];
    int64_t ci[P_CKA];
    for (int i = 0; i < P_CKA; ++i) ci[i] = i;
    gn_data_gather(&train, ci, P_CKA, S0, NULL);
    memcpy(S2, S0, sizeof S0);
    double worst = 0;
    bool ok = cka != NULL;
    for (int k = 0; k < nh && ok; ++k) {
      const int b = k / 2, s = k % 2, m = D / 2;
      for (int i = 0; i < P_CKA; ++i) {
        gn_real *r0 = S0 + i * D, *r2 = S2 + i * D;
        if (s == 0) {
          gn_model_half_forward(&model, theta0, b, 0, 1, r0 + m, D, 1.0, r0, D);
          gn_model_half_forward(&model, theta2, b, 0, 1, r2 + m, D, 1.0, r2, D);
        } else {
          gn_model_half_forward(&model, theta0, b, 1, 1, r0, D, 1.0, r0 + m, D);
          gn_model_half_forward(&model, theta2, b, 1, 1, r2, D, 1.0, r2 + m, D);
        }
      }
      double v = NAN;
      ok = gn_cka(&self, P_CKA, P_CKA, D, S0, D, D, S2, D, &v) == GN_OK;
      worst = fmax(worst, fabs(v - cka[nh + k]));
    }
    GT_CHECK(ok && worst < ctol, "cka_at_step_2_equals_one_rank_evaluation_of_each_half_block (diff %.2e)", worst);
    GT_CHECK(cka && cka[nh + 3] < 1 && cka[2 * nh + 3] < cka[nh + 3] + ctol, "cka_drops_below_one_as_theta_moves");
  }
  free(cka);

  /* Weights: every step 0, 1, 2 and the final 3; 8 tensors (W and b of 4 half-blocks). */
  GT_CHECK(shape_is(run, "/weights/step", 1, 4, 0) && shape_is(run, "/weights/cosine", 2, 4, nt) &&
               shape_is(run, "/weights/norm_ratio", 2, 4, nt) && shape_is(run, "/weights/norm", 2, 4, nt),
           "weights_tables_are_snapshots_x_tensors");
  char *names = NULL;
  st = gn_h5_read_attr_str(run, "/weights", "tensors", &names);
  GT_CHECK(st == GN_OK && strcmp(names, "block_000/F/W,block_000/F/b,block_000/G/W,block_000/G/b,"
                                        "block_001/F/W,block_001/F/b,block_001/G/W,block_001/G/b") == 0,
           "weights_tensor_names_attribute (%s)", names ? names : "");
  free(names);
  double *wc = read_all(run, "/weights/cosine", 2, 4, nt), *wr = read_all(run, "/weights/norm_ratio", 2, 4, nt);
  bool w0 = wc && wr;
  for (int k = 0; w0 && k < nt; k += 2)
    w0 = fabs(wc[k] - 1) < gt_tol(1e-14) && fabs(wr[k] - 1) < gt_tol(1e-14) && isnan(wc[k + 1]);
  GT_CHECK(w0, "weights_cosine_and_norm_ratio_are_one_at_step_0_and_nan_for_zero_biases");
  {
    /* Tensor 4 = block 1, F, W at step 2 (row 2), directly. */
    const size_t off = gn_model_offset(&model, 1, 0), len = (size_t)(model.h * model.m);
    double a = 0, z = 0, az = 0;
    for (size_t i = 0; i < len; ++i) {
      a += (double)theta2[off + i] * theta2[off + i];
      z += (double)theta0[off + i] * theta0[off + i];
      az += (double)theta2[off + i] * theta0[off + i];
    }
    GT_CHECK(wc && wr && fabs(wc[2 * nt + 4] - az / sqrt(a * z)) < gt_tol(1e-13) &&
                 fabs(wr[2 * nt + 4] - sqrt(a / z)) < gt_tol(1e-13),
             "weights_cosine_and_ratio_match_direct_computation_at_step_2");
  }
  free(wc); free(wr);

  /* GGN: steps 0 and 2 (none at the final row, which has no batch). */
  const int64_t width = N_GGN * NC;
  GT_CHECK(shape_is(run, "/ggn/step", 1, 2, 0) && shape_is(run, "/ggn/eigenvalues", 2, 2, width) &&
               shape_is(run, "/ggn/gamma_snr", 2, 2, 3) && shape_is(run, "/ggn/lambda_mean", 2, 2, 3),
           "ggn_tables_are_snapshots_x_width");
  double *gk = read_all(run, "/ggn/k", 1, 2, 0);
  const int64_t k0 = gk ? (int64_t)gk[1] : 0;
  GT_CHECK(k0 >= 1 && shape_is(run, "/ggn/gamma_00000002", 2, N_GGN, k0) && shape_is(run, "/ggn/lambda_00000002", 2, N_GGN, k0),
           "ggn_per_snapshot_gamma_lambda_are_N_x_k");
  free(gk);
  {
    /* One rank, the first N_GGN rows of the batch: same spectrum as the distributed re-split. */
    gn_real Xg[N_GGN * D];
    int32_t yg[N_GGN];
    int64_t gi[N_GGN];
    for (int i = 0; i < N_GGN; ++i) gi[i] = i;
    gn_data_gather(&train, gi, N_GGN, Xg, yg);
    gn_ggn g;
    memset(&g, 0, sizeof g);
    st = gn_ggn_compute(&self, &model, &deck, theta2, N_GGN, N_GGN, Xg, yg, 2, &g);
    double *ev = read_all(run, "/ggn/eigenvalues", 2, 2, width);
    double worst = 0;
    bool ok = st == GN_OK && ev && g.n_eig >= 1;
    for (int64_t k = 0; ok && k < g.n_eig && k < width; ++k) worst = fmax(worst, fabs(ev[width + k] - g.eigenvalues[k]));
    GT_CHECK(ok && worst <= gt_tol(1e-10) * g.eigenvalues[0],
             "ggn_of_first_batch_rows_equals_one_rank_ggn_of_those_rows (diff %.2e)", worst);
    gn_ggn_free(&g);
    free(ev);
  }

  /* The ParaView index names every saved matrix and the CKA table. */
  GT_CHECK(access(xmf_path, R_OK) == 0 && file_has(xmf_path, "run.h5:/ntk/K_00000000") &&
               file_has(xmf_path, "run.h5:/ntk/K_00000003") && file_has(xmf_path, "run.h5:/cka/value") &&
               file_has(xmf_path, "CollectionType=\"Temporal\""),
           "run_xmf_lists_ntk_series_and_cka_table");

  /* Checkpoint of step 2: a new diag loading it keeps only the snapshots before step 2. */
  gn_h5 *ck = NULL;
  st = gn_h5_create(&par, ckpt_path, &ck);
  if (st == GN_OK) st = gn_h5_attr_i64(ck, "/", "step", 2);
  if (st == GN_OK) st = gn_diag_save(dg, ck);
  if (ck) gn_h5_close(ck);
  GT_CHECK(st == GN_OK, "gn_diag_save (%s)", st ? gn_error_message() : "");
  gn_diag_free(dg);
  dg = NULL;
  gn_real *junk = malloc(np * sizeof(gn_real));
  for (size_t k = 0; k < np; ++k) junk[k] = 1.0;
  st = gn_diag_create(&par, &deck, &model, &train, junk, run, run_path, xmf_path, &dg);
  ck = NULL;
  if (st == GN_OK) st = gn_h5_open(&par, ckpt_path, false, &ck);
  if (st == GN_OK) st = gn_diag_load(dg, ck);
  if (ck) gn_h5_close(ck);
  GT_CHECK(st == GN_OK, "gn_diag_load (%s)", st ? gn_error_message() : "");
  GT_CHECK(shape_is(run, "/ntk/step", 1, 1, 0) && shape_is(run, "/ntk/eigenvalues", 2, 1, 15) &&
               shape_is(run, "/cka/value", 2, 1, nh) && shape_is(run, "/weights/cosine", 2, 2, nt) &&
               shape_is(run, "/ggn/step", 1, 1, 0) && shape_is(run, "/ggn/eigenvalues", 2, 1, width),
           "load_cuts_diagnostics_back_to_snapshots_before_the_checkpoint_step");
  GT_CHECK(!file_has(xmf_path, "K_00000003") && file_has(xmf_path, "K_00000000"), "load_rewrites_run_xmf_without_cut_snapshots");
  GT_CHECK(!gn_h5_exists(run, "/ntk/K_00000003") && !gn_h5_exists(run, "/ntk/K_00000002") &&
               gn_h5_exists(run, "/ntk/K_00000000") && shape_is(run, "/ntk/half_trace", 2, 1, nh),
           "load_removes_the_interrupted_runs_ntk_matrices_past_the_checkpoint_step");
  st = dg ? gn_diag_step(dg, 2, theta2, bn, BATCH, Xb, yb) : GN_EINTERNAL;
  double *rel2 = read_all(run, "/ntk/rel_change", 1, 2, 0), *cka2 = read_all(run, "/cka/value", 2, 2, nh);
  /* Baselines rebuilt from the saved theta0, not from the (junk) theta0 given to create. */
  GT_CHECK(st == GN_OK && rel2 && cka2 && fabs(rel2[1] - rel_step2) <= gt_tol(1e-12) * rel_step2 &&
               fabs(cka2[0] - 1) < ctol,
           "restarted_step_2_compares_against_the_saved_theta0");
  double *wc2 = read_all(run, "/weights/cosine", 2, 3, nt);
  GT_CHECK(wc2 && fabs(wc2[0] - 1) < gt_tol(1e-14) && fabs(wc2[2 * nt] - 1) > 1e-6,
           "restarted_weights_table_continues_after_row_1");
  free(rel2); free(cka2); free(wc2); free(junk);

  char *plan = gn_diag_plan(&par, &deck, D, NC);
  GT_CHECK(plan && strstr(plan, "ntk") && strstr(plan, "cka") && strstr(plan, "weights") && strstr(plan, "ggn") &&
               strstr(plan, "GFLOP") && gn_diag_bytes(&par, &deck, D, NC) > np * sizeof(gn_real),
           "plan_names_cost_and_memory_of_each_diagnostic");
  if (plan && par.rank == 0) printf("# %s", plan);
  free(plan);
  gn_deck off;
  gn_deck_defaults(&off);
  plan = gn_diag_plan(&par, &off, D, NC);
  GT_CHECK(plan && plan[0] == '\0' && gn_diag_bytes(&par, &off, D, NC) == 0, "plan_is_empty_when_every_diagnostic_is_off");
  free(plan);

  gn_diag_free(dg);
  gn_h5_close(run);
  gn_model_free(&model);
  free(theta0); free(theta); free(theta2); free(dtheta);
  MPI_Barrier(MPI_COMM_WORLD);
  if (!env && par.rank == 0) {
    unlink(run_path);
    unlink(xmf_path);
    unlink(ckpt_path);
    rmdir(dir);
  }
  gn_par_close(&self);
  gn_par_close(&par);
  MPI_Finalize();
  return gt_finish();
}
