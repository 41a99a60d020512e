/* blas_env: OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS set before BLAS work. */
#include "blas_env.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *reason = "default";

void sp_blas_setup(char **argv) {
    const char *mark = getenv("SAGEPIPE_BLAS_SETUP");
    if (mark) {
        reason = strcmp(mark, "coretype") ? "default" : "set OPENBLAS_CORETYPE=SkylakeX (AVX-512 core unknown to OpenBLAS)";
        return;
    }
    const char *autoset = getenv("SAGEPIPE_BLAS_AUTO");
    if (autoset && !strcmp(autoset, "0")) {
        reason = "SAGEPIPE_BLAS_AUTO=0";
        return;
    }
    int again = 0;
    setenv("SAGEPIPE_BLAS_SETUP", "checked", 1);
    if (!getenv("OPENBLAS_NUM_THREADS")) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        openblas_set_num_threads(1);
    }
    if (getenv("OPENBLAS_CORETYPE")) {
        reason = "OPENBLAS_CORETYPE from the environment";
        return;
    }
    __builtin_cpu_init();
    const char *core = openblas_get_corename();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    int knows = core && (strstr(core, "kylake") || strstr(core, "ooperlake") || strstr(core, "apphire"));
    if (avx512 && !knows) {
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
        setenv("SAGEPIPE_BLAS_SETUP", "coretype", 1);
        again = 1;
    }
    if (again) {
        execv("/proc/self/exe", argv);
        reason = "re-exec failed; OpenBLAS may use AVX2 kernels";
    }
}

const char *sp_blas_core(void) {
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}
const char *sp_blas_reason(void) { return reason; }
