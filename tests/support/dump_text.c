/* dump_text.c - the compiler's text dumps as strings (dump_text.h). */
#include "dump_text.h"

#include <stdio.h>
#include <stdlib.h>

#include "gemm.h"
#include "jit.h"

/* A dump being written: text_open's stream writes into buf; text_close
 * closes it and returns buf. */
typedef struct Text {
    char *buf;
    size_t len;
    FILE *f;
} Text;

static FILE *text_open(Text *t) {
    t->buf = NULL;
    t->len = 0;
    t->f = open_memstream(&t->buf, &t->len);
    if (!t->f) abort();
    return t->f;
}

static char *text_close(Text *t) {
    fclose(t->f);
    return t->buf;
}

char *tu_graph_text(const IrGraph *g) {
    Text t;
    ir_print(text_open(&t), g);
    return text_close(&t);
}

char *tu_prog_text(const LpProg *p, const IrGraph *g) {
    Text t;
    lp_print(text_open(&t), p, g);
    return text_close(&t);
}

char *tu_loops_text(const IrGraph *g) {
    Text t;
    jit_emit_loops(text_open(&t), g);
    return text_close(&t);
}

char *tu_gemm_explain_text(void) {
    Text t;
    tt_gemm_explain(text_open(&t));
    return text_close(&t);
}
