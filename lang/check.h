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
 *     is unused), except the last one of a REPL entry, which is echoed.
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

#endif
