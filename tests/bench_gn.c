/* bench_gn.c — `make bench`: the GN step against the SGD step and against the GEMM of gn_real's
 * precision (DGEMM in the double build, SGEMM in the single one), measured in the same run on the
 * same ranks, through the optimizer interface a real run uses, for the paper's MNIST-size model
 * (d = 784, h = 8000, B = 2) on a full batch of n = 1024. Prints a table on rank 0, the build's
 * precision on its first line. Flop counts are those of the matrix products the algorithms do, as
 * the modules count them (gn_model_flops_*, the GN sweep's own count); the eigensolver is timed,
 * not counted.
 *
 * usage: bench_gn [n [hidden [reps]]] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cblas.h>

#include "gnrev/core/blas.h"
#include "gnrev/core/par.h"
#include "gnrev/core/real.h"
#include "gnrev/core/rng.h"
#include "gnrev/core/shm.h"
#include "gnrev/model/model.h"
#include "gnrev/optim/gn_sweep.h"
#include "gnrev/optim/optim.h"

/* The BLAS GEMM the model's products run on: DGEMM or SGEMM (real.h, blas.h). */
#define GEMM_NAME GN_LA("DGEMM", "SGEMM")

/* GFLOP/s of GEMM_NAME on the forward's dominant product (rows x h x m) on this rank, best of reps;
 * every rep starts on all ranks of comm together, so that the ranks share the node as in a step. */
static double gemm_rate(MPI_Comm comm, int64_t M, int64_t N, int64_t K, int reps) {
  gn_real *A = malloc((size_t)(M * K) * sizeof(gn_real)), *B = malloc((size_t)(K * N) * sizeof(gn_real)),
          *C = calloc((size_t)(M * N), sizeof(gn_real));
  gn_rng_fill_normal_real(1, GN_RNG_TEST, 0, 0, (size_t)(M * K), 1.0, A);
  gn_rng_fill_normal_real(1, GN_RNG_TEST, 1, 0, (size_t)(K * N), 1.0, B);
  double best = 1e300;
  for (int r = 0; r <= reps; ++r) {
    MPI_Barrier(comm);
    const double t0 = gn_par_wtime();
    gn_cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0, A, (int)K, B, (int)N, 0.0, C,
                  (int)N);
    const double dt = gn_par_wtime() - t0;
    if (r > 0 && dt < best) best = dt; /* the first call warms up */
  }
  free(A);
  free(B);
  free(C);
  return 2.0 * (double)M * (double)N * (double)K / best / 1e9;
}

/* Best time of reps steps of the deck's method (lr 0: the same weights every time). */
static double time_steps(const gn_par *par, const gn_deck *dk, const gn_model *md, gn_real *theta, const gn_batch *b,
                         int reps, gn_opt **keep) {
  gn_opt *opt = NULL;
  if (gn_opt_create(par, dk, md, &opt) != GN_OK) gn_par_die(par, GN_ENOMEM);
  double best = 1e300;
  for (int r = 0; r <= reps; ++r) {
    MPI_Barrier(par->comm);
    const double t0 = gn_par_wtime();
    gn_step_info info;
    const int st = gn_opt_step(opt, theta, b, &info);
    if (st != GN_OK) gn_par_die(par, st);
    MPI_Barrier(par->comm);
    const double dt = gn_par_wtime() - t0;
    if (r > 0 && dt < best) best = dt; /* the first step makes its contexts */
  }
  *keep = opt;
  return best;
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
  gn_deck_defaults(&dk);
  dk.seed = 42;
  dk.blocks = 2;
  dk.hidden = hidden;
  dk.lr = 0.0;
  dk.method = GN_OPT_GN;

  int64_t row0, nl;
  gn_par_rows(n, par.size, par.rank, &row0, &nl);
  /* GEMM of the forward's dominant shape on this rank's rows, all ranks at once. */
  /* A GEMM takes a tenth of a step: best of ten times as many reps, so that a neighbour's burst on
   * a shared machine does not set the reference every rate is divided by. */
  double rate_sum = gemm_rate(par.comm, nl > 0 ? nl : 1, hidden, d / 2, 10 * reps);
  MPI_Allreduce(MPI_IN_PLACE, &rate_sum, 1, MPI_DOUBLE, MPI_SUM, par.comm);

  gn_model md;
  if (gn_model_create(&par, &dk, d, C, &md) || gn_model_reserve(&md, nl > 0 ? nl : 1)) gn_par_die(&par, GN_ENOMEM);
  gn_shm theta_mem;
  if (gn_shm_alloc(&par, md.nparams * sizeof(gn_real), "theta", &theta_mem)) gn_par_die(&par, GN_ENOMEM);
  gn_real *theta = theta_mem.base;
  size_t lo, hi;
  gn_shm_slice(&par, md.nparams, sizeof(gn_real), &lo, &hi);
  gn_model_init_params(&md, &dk, lo, hi, theta);
  gn_shm_sync(&par);
  const size_t rows = (size_t)(nl > 0 ? nl : 1);
  gn_real *X0 = malloc(rows * (size_t)d * sizeof(gn_real)), *X = malloc(rows * (size_t)d * sizeof(gn_real));
  gn_real *lg = malloc(rows * (size_t)C * sizeof(gn_real));
  int32_t *y = malloc(rows * sizeof(int32_t));
  gn_rng_fill_normal_real(2, GN_RNG_TEST, 0, (uint64_t)(row0 * d), (size_t)(nl * d), 1.0, X0);
  for (int64_t i = 0; i < nl; ++i) y[i] = (int32_t)((row0 + i) % C);
  const gn_batch batch = {.step = 0, .n = nl, .n_global = n, .X0 = X0, .y = y};

  double t_fwd = 1e300;
  for (int r = 0; r <= reps; ++r) {
    MPI_Barrier(par.comm);
    const double t0 = gn_par_wtime();
    if (nl > 0) memcpy(X, X0, (size_t)(nl * d) * sizeof(gn_real));
    gn_model_forward(&md, theta, nl, X, lg);
    MPI_Barrier(par.comm);
    const double dt = gn_par_wtime() - t0;
    if (r > 0 && dt < t_fwd) t_fwd = dt;
  }
  gn_deck sg = dk;
  sg.method = GN_OPT_SGD;
  gn_opt *sgd = NULL, *gn = NULL;
  const double t_sgd = time_steps(&par, &sg, &md, theta, &batch, reps, &sgd);
  const double t_gn = time_steps(&par, &dk, &md, theta, &batch, reps, &gn);
  /* The split and flops of the last GN step (every step does the same work). */
  const gn_sweep_stats best = *gn_opt_sweep_stats(gn);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double rss_max = (double)ru.ru_maxrss / 1024.0 / 1024.0;
  MPI_Allreduce(MPI_IN_PLACE, &rss_max, 1, MPI_DOUBLE, MPI_MAX, par.comm);

  double fl[3] = {gn_model_flops_forward(&md, nl),
                  gn_model_flops_forward(&md, nl) + 2.0 * (double)nl * (double)d * C + gn_model_flops_backward(&md, nl),
                  best.flops};
  MPI_Allreduce(MPI_IN_PLACE, fl, 3, MPI_DOUBLE, MPI_SUM, par.comm);
  if (par.rank == 0) {
    printf("gnrev bench (%s precision, %s): d = %lld, h = %lld, B = %lld, n = %lld (full batch), %d rank%s, "
           "%zu parameters\n", GN_PRECISION_NAME, GEMM_NAME, (long long)d, (long long)hidden, (long long)md.B,
           (long long)n, par.size, par.size > 1 ? "s" : "", md.nparams);
    printf("  %s (%lld x %lld x %lld per rank, all ranks at once): %8.1f GFLOP/s in all\n", GEMM_NAME,
           (long long)(nl > 0 ? nl : 1), (long long)hidden, (long long)md.m, rate_sum);
    printf("  %-22s %10s %12s %10s %12s\n", "phase", "time_s", "GFLOP", "GFLOP/s", "of " GEMM_NAME);
    struct { const char *name; double t, f; } rows[] = {
        {"forward", t_fwd, fl[0]}, {"SGD step", t_sgd, fl[1]}, {"GN step", t_gn, fl[2]}};
    for (int i = 0; i < 3; ++i)
      printf("  %-22s %10.4f %12.2f %10.1f %11.0f%%\n", rows[i].name, rows[i].t, rows[i].f / 1e9,
             rows[i].f / rows[i].t / 1e9, 100.0 * rows[i].f / rows[i].t / 1e9 / rate_sum);
    printf("  GN step / SGD step: %.2f\n", t_gn / t_sgd);
    printf("  GN split on rank 0 (s): forward %.4f, sweep %.4f, Gram %.4f, eigensolve %.4f, apply %.4f, "
           "communication %.4f\n", best.t_forward, best.t_sweep, best.t_gram, best.t_eig, best.t_apply, best.t_comm);
    printf("  singular values kept (block 0, F): %lld of %lld\n", (long long)best.kept[0], (long long)n);
    printf("  peak memory per rank: %.2f GiB (max over ranks)\n", rss_max);
    fflush(stdout);
  }
  gn_opt_free(gn);
  gn_opt_free(sgd);
  gn_shm_free(&theta_mem);
  gn_model_free(&md);
  free(X0); free(X); free(lg); free(y);
  gn_par_close(&par);
  MPI_Finalize();
  return 0;
}
