/* bench_gn.c — `make bench`: the GN step against the SGD step and against DGEMM, measured in the
 * same run on the same ranks, for the paper's MNIST-size model (d = 784, h = 8000, B = 2) on a
 * full batch of n = 1024. Prints a table on rank 0. Flop counts are those of the matrix products
 * the algorithms must do (docs/performance.md derives them); the eigensolver is timed, not counted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cblas.h>

#include "gnrev/optim/gn_sweep.h"
#include "gnrev/model/loss.h"
#include "gnrev/model/model.h"
#include "gnrev/optim/first_order.h"
#include "gnrev/core/par.h"
#include "gnrev/core/rng.h"
#include "testshm.h"

static double dgemm_rate(int64_t M, int64_t N, int64_t K, int reps) {
  double *A = malloc((size_t)(M * K) * sizeof(double)), *B = malloc((size_t)(K * N) * sizeof(double)),
         *C = calloc((size_t)(M * N), sizeof(double));
  gn_rng_fill_normal(1, GN_RNG_TEST, 0, 0, (size_t)(M * K), 1.0, A);
  gn_rng_fill_normal(1, GN_RNG_TEST, 1, 0, (size_t)(K * N), 1.0, B);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0, A, (int)K, B, (int)N, 0.0, C, (int)N);
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    double t0 = gn_par_wtime();
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0, A, (int)K, B, (int)N, 0.0, C, (int)N);
    double dt = gn_par_wtime() - t0;
    if (dt < best) best = dt;
  }
  free(A); free(B); free(C);
  return 2.0 * (double)M * (double)N * (double)K / best / 1e9;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  gn_par par;
  gn_par_open(MPI_COMM_WORLD, &par);
  const int64_t n = argc > 1 ? atoll(argv[1]) : 1024, hidden = argc > 2 ? atoll(argv[2]) : 8000;
  const int reps = argc > 3 ? atoi(argv[3]) : 3;
  const int64_t d = 784;
  const int C = 10;
  gn_deck dk;
  memset(&dk, 0, sizeof dk);
  dk.seed = 42; dk.blocks = 2; dk.hidden = hidden; dk.activation = GN_ACT_RELU;
  dk.linear_first_block = true; dk.bias = true; dk.init_std = 1e-3; dk.proj_gain = 1.0;
  dk.method = GN_OPT_GN; dk.loss = GN_LOSS_CE; dk.pinv = GN_PINV_GRAM; dk.rtol = 1e-2; dk.atol = 1e-5;
  dk.lr = 0.1;

  int64_t row0, nl;
  gn_par_rows(n, par.size, par.rank, &row0, &nl);
  /* DGEMM of the forward's dominant shape on this rank's rows, all ranks at once. */
  double rate = dgemm_rate(nl > 0 ? nl : 1, hidden, d / 2, reps);
  double rate_sum = rate;
  MPI_Allreduce(MPI_IN_PLACE, &rate_sum, 1, MPI_DOUBLE, MPI_SUM, par.comm);

  gn_model md;
  if (gn_model_create(NULL, &dk, d, C, &md) || gn_model_reserve(&md, nl)) gn_par_die(&par, GN_ENOMEM);
  const int64_t m = md.m, B = md.B;
  double *theta = malloc(md.nparams * sizeof(double)), *work = gt_shared(&par, md.nparams);
  double *X0 = malloc((size_t)(nl * d) * sizeof(double)), *X = malloc((size_t)(nl * d) * sizeof(double));
  double *dX = malloc((size_t)(nl * d) * sizeof(double)), *lg = malloc((size_t)(nl * C) * sizeof(double));
  double *dl = malloc((size_t)(nl * C) * sizeof(double));
  int32_t *y = malloc((size_t)(nl > 0 ? nl : 1) * sizeof(int32_t));
  gn_rng_fill_normal(2, GN_RNG_TEST, 0, (uint64_t)(row0 * d), (size_t)(nl * d), 1.0, X0);
  for (int64_t i = 0; i < nl; ++i) y[i] = (int32_t)((row0 + i) % C);
  gn_model_init_params(&md, &dk, 0, md.nparams, theta);

  /* forward */
  double t_fwd = 1e300;
  for (int r = 0; r < reps; ++r) {
    MPI_Barrier(par.comm);
    double t0 = gn_par_wtime();
    memcpy(X, X0, (size_t)(nl * d) * sizeof(double));
    gn_model_forward(&md, theta, nl, X, lg);
    MPI_Barrier(par.comm);
    double dt = gn_par_wtime() - t0;
    if (dt < t_fwd) t_fwd = dt;
  }
  /* SGD step: forward, gradient, backward, allreduce, update */
  gn_deck sg = dk;
  sg.method = GN_OPT_SGD;
  double t_sgd = 1e300, sgd_split[4] = {0, 0, 0, 0}; /* forward, backward, allreduce, update */
  for (int r = 0; r < reps; ++r) {
    MPI_Barrier(par.comm);
    double t0 = gn_par_wtime(), tp[5];
    tp[0] = t0;
    memcpy(X, X0, (size_t)(nl * d) * sizeof(double));
    gn_model_forward(&md, theta, nl, X, lg);
    gn_loss_grad(GN_LOSS_CE, nl, n, C, lg, y, dl);
    tp[1] = gn_par_wtime();
    if (nl > 0)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nl, (int)d, C, 1.0, dl, C, md.U, C, 0.0, dX, (int)d);
    memset(work, 0, md.nparams * sizeof(double));
    gn_model_backward(&md, theta, nl, X, dX, work);
    tp[2] = gn_par_wtime();
    gn_par_sum(&par, work, md.nparams);
    tp[3] = gn_par_wtime();
    gn_sgd_rule(&sg, 0.0, true, md.nparams, theta, work, NULL); /* lr 0: same weights for every repetition */
    tp[4] = gn_par_wtime();
    MPI_Barrier(par.comm);
    double dt = gn_par_wtime() - t0;
    if (dt < t_sgd) {
      t_sgd = dt;
      for (int k = 0; k < 4; ++k) sgd_split[k] = tp[k + 1] - tp[k];
    }
  }
  /* GN step */
  gn_sweep *gn = NULL;
  if (gn_sweep_create(&par, &md, &dk, &gn)) gn_par_die(&par, GN_ENOMEM);
  double t_gn = 1e300;
  gn_sweep_stats best;
  memset(&best, 0, sizeof best);
  int64_t kept0 = 0;
  for (int r = 0; r < reps; ++r) {
    MPI_Barrier(par.comm);
    double t0 = gn_par_wtime();
    int st = gn_sweep_direction(gn, theta, nl, n, X0, y, lg, work);
    if (st) gn_par_die(&par, st);
    for (size_t i = 0; i < md.nparams; ++i) theta[i] -= 0.0 * work[i];
    MPI_Barrier(par.comm);
    double dt = gn_par_wtime() - t0;
    if (dt < t_gn) {
      t_gn = dt;
      best = *gn_sweep_last(gn);
      kept0 = best.kept[0];
    }
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double rss = (double)ru.ru_maxrss / 1024.0 / 1024.0, rss_max = rss;
  MPI_Allreduce(MPI_IN_PLACE, &rss_max, 1, MPI_DOUBLE, MPI_MAX, par.comm);

  /* Flops of the products each algorithm performs, as the modules count them (linear block 0 goes
   * through C W when cheaper), summed over ranks. */
  double fl[3] = {gn_model_flops_forward(&md, nl),
                  gn_model_flops_forward(&md, nl) + 2.0 * (double)nl * (double)d * C + gn_model_flops_backward(&md, nl),
                  best.flops};
  MPI_Allreduce(MPI_IN_PLACE, fl, 3, MPI_DOUBLE, MPI_SUM, par.comm);
  const double f_fwd = fl[0], f_sgd = fl[1], f_gn = fl[2];
  if (par.rank == 0) {
    printf("gnrev bench: d = %lld, h = %lld, B = %lld, n = %lld (full batch), %d rank%s, %zu parameters\n",
           (long long)d, (long long)hidden, (long long)B, (long long)n, par.size, par.size > 1 ? "s" : "",
           md.nparams);
    printf("  DGEMM (%lld x %lld x %lld per rank, all ranks at once): %8.1f GFLOP/s in all\n",
           (long long)(nl > 0 ? nl : 1), (long long)hidden, (long long)m, rate_sum);
    printf("  %-22s %10s %12s %10s %12s\n", "phase", "time_s", "GFLOP", "GFLOP/s", "of DGEMM");
    struct { const char *name; double t, f; } rows[] = {
        {"forward", t_fwd, f_fwd}, {"SGD step", t_sgd, f_sgd}, {"GN step", t_gn, f_gn}};
    for (int i = 0; i < 3; ++i)
      printf("  %-22s %10.4f %12.2f %10.1f %11.0f%%\n", rows[i].name, rows[i].t, rows[i].f / 1e9,
             rows[i].f / rows[i].t / 1e9, 100.0 * rows[i].f / rows[i].t / 1e9 / rate_sum);
    printf("  GN step / SGD step: %.2f   (target <= 3)\n", t_gn / t_sgd);
    /* The allreduce includes waiting for the slowest rank's backward. */
    printf("  SGD split on rank 0 (s): forward %.4f, backward %.4f, allreduce %.4f (%.0f MB), update %.4f\n",
           sgd_split[0], sgd_split[1], sgd_split[2], md.nparams * 8.0 / 1e6, sgd_split[3]);
    printf("  GN split on rank 0 (s): forward %.4f, sweep %.4f, Gram %.4f, eigensolve %.4f, apply %.4f, "
           "communication %.4f\n", best.t_forward, best.t_sweep, best.t_gram, best.t_eig, best.t_apply, best.t_comm);
    printf("  singular values kept (block 0, F): %lld of %lld\n", (long long)kept0, (long long)n);
    printf("  peak memory per rank: %.2f GiB (max over ranks)\n", rss_max);
    fflush(stdout);
  }
  gn_sweep_free(gn);
  gn_model_free(&md);
  free(theta); gt_shared_free(work); free(X0); free(X); free(dX); free(lg); free(dl); free(y);
  gn_par_close(&par);
  MPI_Finalize();
  return 0;
}
