/* build.h - helpers shared by the graph builders (build.c, build_sort.c,
 * build_quant.c). Private to compiler/build*.c. */
#ifndef TT_BUILD_H
#define TT_BUILD_H

#include "ir.h"

/* Writes the printf-style message to g->err and returns -1, so a builder
 * can `return build_fail(g, ...)`. */
int build_fail(IrGraph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True if id names a node of g; else sets g->err ("what: operand %id is not
 * a node of the graph") and returns false. */
bool build_valid(IrGraph *g, const char *what, int id);

#endif
