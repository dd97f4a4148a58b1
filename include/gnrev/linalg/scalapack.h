/* scalapack.h — our own prototypes for the BLACS, PBLAS, ScaLAPACK and serial LAPACK routines
 * gnrev calls (Debian ships no C header for them).
 *
 * Fortran conventions: names carry a trailing underscore, every argument is passed by pointer
 * (INTEGER is int), and each CHARACTER argument adds a hidden length argument of type size_t at
 * the end of the list (gfortran >= 8). Pass 1 for each of them. Source arrays the routine only
 * reads are declared const. Array descriptors are int[GN_DLEN]. */
#ifndef GNREV_SCALAPACK_H
#define GNREV_SCALAPACK_H

#include <mpi.h>
#include <stddef.h>
#include "gnrev/core/real.h"

/* Descriptor length and the 0-based positions of the fields gnrev reads. */
enum { GN_DLEN = 9, GN_DESC_CTXT = 1, GN_DESC_M = 2, GN_DESC_N = 3, GN_DESC_MB = 4,
       GN_DESC_NB = 5, GN_DESC_LLD = 8 };

/* BLACS, C interface. */
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_get(int ctxt, int what, int *val);
/* what = GN_BLACS_TOPSREPEAT, val = 1: combines (sums, max) take a fixed tree instead of
 * MPI_Allreduce, so repeated runs give bit-identical results; TOPSCOHRNT makes every process of
 * the scope get the same bits. */
enum { GN_BLACS_TOPSREPEAT = 15, GN_BLACS_TOPSCOHRNT = 16 };
void Cblacs_set(int ctxt, int what, const int *val);
void Cblacs_gridinit(int *ctxt, const char *order, int nprow, int npcol);
/* usermap: column-major ldumap x npcol ranks of the system context; processes outside get -1. */
void Cblacs_gridmap(int *ctxt, int *usermap, int ldumap, int nprow, int npcol);
void Cblacs_gridinfo(int ctxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ctxt);
/* Cblacs_exit(0) would call MPI_Finalize: only ever Cblacs_exit(1), at the very end of a run. */
void Cblacs_exit(int keep_mpi);

/* ScaLAPACK tools. */
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc,
               const int *icsrc, const int *ictxt, const int *lld, int *info);

/* The routines below are declared for gn_real (real.h) under gnrev's names, gn_<routine without
 * its precision letter>: pdgemr2d_ in the double build, psgemr2d_ in the single one. */
#define gn_pgemr2d GN_LA(pdgemr2d_, psgemr2d_)
#define gn_psyrk GN_LA(pdsyrk_, pssyrk_)
#define gn_pgemm GN_LA(pdgemm_, psgemm_)
#define gn_psyevd GN_LA(pdsyevd_, pssyevd_)
#define gn_pgeqrf GN_LA(pdgeqrf_, psgeqrf_)
#define gn_plaset GN_LA(pdlaset_, pslaset_)
#define gn_pgesvd GN_LA(pdgesvd_, psgesvd_)
#define gn_syevd GN_LA(dsyevd_, ssyevd_)
#define gn_gesdd GN_LA(dgesdd_, sgesdd_)

/* Redistribution between any two block-cyclic layouts; ictxt covers both grids. */
void gn_pgemr2d(const int *m, const int *n, const gn_real *a, const int *ia, const int *ja,
               const int *desca, gn_real *b, const int *ib, const int *jb, const int *descb,
               const int *ictxt);

/* PBLAS. */
void gn_psyrk(const char *uplo, const char *trans, const int *n, const int *k, const gn_real *alpha,
             const gn_real *a, const int *ia, const int *ja, const int *desca, const gn_real *beta,
             gn_real *c, const int *ic, const int *jc, const int *descc, size_t uplo_len,
             size_t trans_len);
void gn_pgemm(const char *transa, const char *transb, const int *m, const int *n, const int *k,
             const gn_real *alpha, const gn_real *a, const int *ia, const int *ja, const int *desca,
             const gn_real *b, const int *ib, const int *jb, const int *descb, const gn_real *beta,
             gn_real *c, const int *ic, const int *jc, const int *descc, size_t transa_len,
             size_t transb_len);

/* ScaLAPACK solvers. */
void gn_psyevd(const char *jobz, const char *uplo, const int *n, gn_real *a, const int *ia,
              const int *ja, const int *desca, gn_real *w, gn_real *z, const int *iz, const int *jz,
              const int *descz, gn_real *work, const int *lwork, int *iwork, const int *liwork,
              int *info, size_t jobz_len, size_t uplo_len);
void gn_pgeqrf(const int *m, const int *n, gn_real *a, const int *ia, const int *ja, const int *desca,
              gn_real *tau, gn_real *work, const int *lwork, int *info);
void gn_plaset(const char *uplo, const int *m, const int *n, const gn_real *alpha, const gn_real *beta,
              gn_real *a, const int *ia, const int *ja, const int *desca, size_t uplo_len);
void gn_pgesvd(const char *jobu, const char *jobvt, const int *m, const int *n, gn_real *a,
              const int *ia, const int *ja, const int *desca, gn_real *s, gn_real *u, const int *iu,
              const int *ju, const int *descu, gn_real *vt, const int *ivt, const int *jvt,
              const int *descvt, gn_real *work, const int *lwork, int *info, size_t jobu_len,
              size_t jobvt_len);

/* Serial LAPACK (column-major), from the LAPACK that ScaLAPACK links against: no -llapacke. */
void gn_syevd(const char *jobz, const char *uplo, const int *n, gn_real *a, const int *lda, gn_real *w,
             gn_real *work, const int *lwork, int *iwork, const int *liwork, int *info,
             size_t jobz_len, size_t uplo_len);
void gn_gesdd(const char *jobz, const int *m, const int *n, gn_real *a, const int *lda, gn_real *s,
             gn_real *u, const int *ldu, gn_real *vt, const int *ldvt, gn_real *work, const int *lwork,
             int *iwork, int *info, size_t jobz_len);

/* Serial LAPACK in double whatever the build (tests' independent references; pieces that need
 * double in a single-precision build). In the double build these are the routines above. */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info,
             size_t jobz_len, size_t uplo_len);
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s,
             double *u, const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork,
             int *iwork, int *info, size_t jobz_len);

#endif
