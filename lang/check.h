/* check.h - static checks run before a program executes.
 *
 *   - every name used is declared somewhere visible (a builtin, a prelude
 *     definition, a top-level definition, a let, a parameter, a loop
 *     variable, a model member, a dimension name bound by an annotation);
 *     otherwise `unknown name 'foo'` with a "did you mean 'fou'?" note;
 *   - an assignment `x = e` targets a declared variable;
 *   - calls to fns and models defined once at top level have an argument
 *     list that fits their parameters;
 *   - an expression statement that is not a call gets a warning (its value
 *     is unused), except the last one of a REPL entry, which is echoed;
 *   - a `let` that shadows a builtin (a C builtin or a standard-library
 *     definition) gets a warning naming it;
 *   - `import` appears only at the top level; its names are known: the
 *     runtime's loader (runtime/eval/import.c) has parsed and checked each
 *     imported file and left its AST_PROGRAM in the import's `b`.
 *
 * Every problem is reported (diag_error / diag_warning); the result is the
 * number of errors.
 */
#ifndef TT_CHECK_H
#define TT_CHECK_H

#include "ast.h"

/* globals: the names already defined (builtins, prelude, earlier REPL
 * entries). repl: the program is one REPL entry. */
int check_program(const AstNode *prog, const char *const *globals, int nglobals, bool repl);

typedef struct CheckOptions {
    const char *const *globals; /* the names already defined */
    int nglobals;
    const char *const *builtins; /* the builtins and the standard library's
                                    names: a `let` of one of them warns */
    int nbuiltins;
    bool repl; /* the program is one REPL entry */
} CheckOptions;

/* check_program with every option. */
int check_program_opts(const AstNode *prog, const CheckOptions *o);

/* The names an imported program brings in: its top-level fn, model and let
 * names, appended to *out (pointers into the AST). */
void check_module_names(const AstNode *prog, const char ***out, int *n, int *cap);

#endif
