/* dump_text.h - the compiler's text dumps as strings, for tests to search.
 *
 * Each prints what the named dump prints into a malloc'd string (the
 * caller frees it), through open_memstream, so that a test can look for a
 * line with strstr or show the whole dump when a check fails.
 */
#ifndef TT_TEST_DUMP_TEXT_H
#define TT_TEST_DUMP_TEXT_H

#include "ir.h"
#include "loop.h"

char *tu_graph_text(const IrGraph *g);                 /* ir_print */
char *tu_prog_text(const LpProg *p, const IrGraph *g); /* lp_print (g may be NULL) */
char *tu_loops_text(const IrGraph *g);                 /* jit_emit_loops */
char *tu_gemm_explain_text(void);                      /* tt_gemm_explain */

#endif
