/* stack.h - how much C stack the recursive walks may still use.
 *
 * The checker, the evaluator and a few value walks recurse on the shape of
 * their input, and a left-associative chain (`1 + 1 + ... + 1`) is as deep
 * as it is long. Instead of running off the end of the C stack (SIGSEGV,
 * and in the REPL the session lost), each recursive entry point asks
 * tt_stack_exhausted() and reports "expression too deeply nested" at the
 * node it was about to walk.
 *
 * The budget is in bytes, not in levels: frames differ between functions,
 * compilers and builds (AddressSanitizer makes them several times larger),
 * so only a byte count holds everywhere. It is measured from a base frame
 * (tt_stack_init, called by rt_new_interp; else the first frame that asks)
 * down to the end of the thread's stack (ulimit -s for the main thread),
 * less a reserve for what runs below the last check (builtins, the JIT's
 * compiler, the error report). TT_STACK_LIMIT=BYTES (suffixes K, M, G)
 * lowers it, so tests can use small inputs.
 */
#ifndef TT_STACK_H
#define TT_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Makes the caller's frame the base of the current thread's budget and
 * reads TT_STACK_LIMIT (again: each call measures anew). */
void tt_stack_init(void);

/* True when the caller is more than the budget below the base. */
bool tt_stack_exhausted(void);

/* The budget in bytes (initializing it on first use). */
size_t tt_stack_budget(void);

/* An address in the caller's frame: compare two to measure stack use. */
uintptr_t tt_stack_pos(void);

/* "7 MiB", "96 KiB": the budget, for messages. */
void tt_stack_describe(char *buf, size_t n);

#endif
