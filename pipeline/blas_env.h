/* blas_env: makes OpenBLAS's start-up choices deliberate before any rank
 * does work. Debian's OpenBLAS 0.3.21 does not know recent AVX-512 cores
 * (e.g. AMD Zen 4/5) and falls back to AVX2 kernels at half the sgemm speed;
 * it reads OPENBLAS_CORETYPE only when the library loads, so we set it and
 * re-exec ourselves once (before MPI_Init; exec keeps the pid, so mpirun is
 * unaffected). OPENBLAS_NUM_THREADS defaults to 1: one BLAS thread per rank.
 * SAGEPIPE_BLAS_AUTO=0 turns this off; explicit OPENBLAS_* values are kept. */
#ifndef SP_BLAS_ENV_H
#define SP_BLAS_ENV_H

/* May not return (re-exec). Call first thing in main. */
void sp_blas_setup(char **argv);
/* The core OpenBLAS runs with and how it was chosen, for the start-up log. */
const char *sp_blas_core(void);
const char *sp_blas_reason(void);

#endif
