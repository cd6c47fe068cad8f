/* test_gemm_oom.c - tt_gemm_new reports running out of memory for its
 * packing buffers through its error result (compiler/gemm/gemm_driver.c).
 *
 * aligned_alloc is interposed for this executable: it forwards to
 * posix_memalign, except that while fail_big is set it refuses blocks of a
 * megabyte or more (the packed-B buffer is about 4 MB; nothing else that
 * tt_gemm_new allocates before it is that large).
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

static bool fail_big;

void *aligned_alloc(size_t align, size_t size) {
    if (fail_big && size >= ((size_t)1 << 20)) return NULL;
    if (align < sizeof(void *)) align = sizeof(void *);
    void *p = NULL;
    return posix_memalign(&p, align, size ? size : 1) == 0 ? p : NULL;
}

Test(gemm_oom, new_reports_out_of_memory) {
    char err[128] = "";
    fail_big = true;
    TtGemm *g = tt_gemm_new(err, sizeof err);
    fail_big = false;
    cr_assert_null(g, "the buffers could not be allocated");
    cr_expect(strstr(err, "out of memory"), "%s", err);
    /* nothing was kept: the next call allocates and compiles */
    err[0] = 0;
    g = tt_gemm_new(err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    float A[4] = {1, 2, 3, 4}, B[4] = {5, 6, 7, 8}, C[4] = {0};
    tt_gemm_run(g, 2, 2, 2, A, 2, false, B, 2, false, C, 2, false, 1, NULL);
    cr_expect_eq(C[0], 19.0f);
    cr_expect_eq(C[3], 50.0f);
    tt_gemm_free(g);
}
