/* import.h - `import "path.tt"` and `import "path.tt" as m`
 * (spec/language.md, "Imports").
 *
 * Two phases, as for the file that imports:
 *
 *   - loading, before the file is checked: rt_imports_load finds each
 *     top-level import, resolves its path against the importing file's
 *     directory (the current directory for the REPL and in-memory sources),
 *     and parses and checks the imported file, its own imports first. A
 *     file is loaded once per interpreter, keyed by its canonical path
 *     (realpath); a file already on the chain being loaded is a cycle,
 *     reported at the import that closes it with the chain
 *     (`import cycle: a.tt -> b.tt -> a.tt`). The import node keeps the
 *     module's program in `b` (check.c reads the names from it) and the
 *     module's number + 1 in `ival`.
 *   - running: when an import statement runs, the module's statements run
 *     (the first time only) in a scope of its own whose parent is the
 *     globals; then its names are bound in the importing scope, or the
 *     module value (printed `module "path.tt"`) is bound to the `as` name.
 */
#ifndef TT_IMPORT_H
#define TT_IMPORT_H

#include "eval.h"

/* The loading phase for prog, the program of `file` (a path, or a name
 * starting with '<' for the REPL and in-memory sources). False after
 * diagnostics. */
bool rt_imports_load(Interp *I, AstNode *prog, const char *file);

/* Runs an import statement in env (exec_stmt). */
void rt_import_exec(Interp *I, Env *env, const AstNode *imp);

/* ttc: imported modules run only their fn, model and import statements. */
void rt_imports_defs_only(Interp *I, bool on);

/* After an error: a module whose statements did not finish runs again at
 * its next import, and modules that failed to load are forgotten (the
 * REPL may import them again once fixed). */
void rt_imports_after_error(Interp *I);

/* Checks prog against the globals (check.h), with the builtins for the
 * shadowing warning; the number of errors. */
int rt_check_ast(Interp *I, const AstNode *prog, bool repl);

void rt_modules_free(Interp *I);

/* The global names a user sees (the REPL completes them, and
 * spec/builtins.md documents those of a fresh interpreter): every global
 * except private ones, whose names start with '_' (the standard library's
 * helpers, the REPL's __ir__). Appended to *out. */
void rt_public_names(Interp *I, const char ***out, int *n, int *cap);

#endif
