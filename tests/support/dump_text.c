/* dump_text.c - the compiler's text dumps as strings (dump_text.h). */
#include "dump_text.h"

#include <stdio.h>
#include <stdlib.h>

#include "gemm.h"
#include "jit.h"

/* Opens a stream into *buf; the dump's text is there once it is closed.
 * (The callers are not inlined into tests: GCC's -Wdangling-pointer then
 * mistook the result for the address of buf.) */
static FILE *open_text(char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    FILE *f = open_memstream(buf, len);
    if (!f) abort();
    return f;
}

char *tu_graph_text(const IrGraph *g) {
    char *buf;
    size_t len;
    FILE *f = open_text(&buf, &len);
    ir_print(f, g);
    fclose(f);
    return buf;
}

char *tu_prog_text(const LpProg *p, const IrGraph *g) {
    char *buf;
    size_t len;
    FILE *f = open_text(&buf, &len);
    lp_print(f, p, g);
    fclose(f);
    return buf;
}

char *tu_loops_text(const IrGraph *g) {
    char *buf;
    size_t len;
    FILE *f = open_text(&buf, &len);
    jit_emit_loops(f, g);
    fclose(f);
    return buf;
}

char *tu_gemm_explain_text(void) {
    char *buf;
    size_t len;
    FILE *f = open_text(&buf, &len);
    tt_gemm_explain(f);
    fclose(f);
    return buf;
}
