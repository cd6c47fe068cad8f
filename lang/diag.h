/* diag.h - diagnostics: file:line:col: error: message, the source line, a caret.
 *
 *   model.tt:12:9: error: matmul shape mismatch: [B, 64] @ [128, 10] (inner 64 != 128)
 *      12 |     return x @ w
 *         |              ^
 *   model.tt:4:5: note: 'w' declared here as f32[128, 10]
 *
 * Source text is registered once per file so any layer can quote a line.
 */
#ifndef TT_DIAG_H
#define TT_DIAG_H

#include <stdio.h>

#include "util.h"

/* A source span. Lines and columns are 1-based; line 0 means "no location".
 * file points into the registry and lives until diag_shutdown(). */
typedef struct SrcLoc {
    const char *file;
    int line, col;
    int end_line, end_col; /* inclusive end; may equal line/col */
} SrcLoc;

#define SRCLOC_NONE ((SrcLoc){0})

/* Registers a file's text (copied) so diagnostics can quote its lines.
 * Returns the interned name to store in SrcLoc.file. Registering the same
 * name again replaces the text (the REPL registers "<stdin>" per entry). */
const char *diag_add_file(const char *name, const char *text, size_t len);

void diag_error(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_warning(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_note(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An error not tied to a source position, e.g. about a data file:
 *   "data/x.csv: error: line 3: expected 65 fields, got 64" is written by
 *   diag_file_error("data/x.csv", "line 3: expected ...") */
void diag_file_error(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int diag_error_count(void);
void diag_reset_count(void);
void diag_set_stream(FILE *f); /* default stderr; tests redirect */
void diag_shutdown(void);      /* frees the registry */

#endif
