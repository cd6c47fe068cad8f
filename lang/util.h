/* util.h - allocation, arenas, string buffers and internal assertions.
 *
 * The lowest layer of tt: everything else may include it. Allocation failure
 * is fatal (tt_xmalloc prints and aborts), so callers never check for NULL.
 */
#ifndef TT_UTIL_H
#define TT_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Internal invariant: prints file:line and aborts. Never a user error. */
#define TT_ASSERT(c)     ((c) ? (void)0 : tt_assert_fail(#c, __FILE__, __LINE__))
#define TT_UNREACHABLE() tt_assert_fail("unreachable", __FILE__, __LINE__)
_Noreturn void tt_assert_fail(const char *what, const char *file, int line);

void *tt_xmalloc(size_t n);
void *tt_xcalloc(size_t count, size_t size);
void *tt_xrealloc(void *p, size_t n);
char *tt_xstrdup(const char *s);

/* Grow a dynamic array: ptr, len, cap are lvalues. */
#define TT_VEC_PUSH(ptr, len, cap, val)                                                            \
    do {                                                                                           \
        if ((len) == (cap)) {                                                                      \
            (cap) = (cap) ? 2 * (cap) : 8;                                                         \
            (ptr) = tt_xrealloc((ptr), (size_t)(cap) * sizeof *(ptr));                             \
        }                                                                                          \
        (ptr)[(len)++] = (val);                                                                    \
    } while (0)

/* Bump arena: many small allocations freed together (one AST, one graph). */
typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
    ArenaBlock *head;
} Arena;

void arena_init(Arena *a);
void *arena_alloc(Arena *a, size_t n); /* zeroed, 16-byte aligned */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
void arena_free(Arena *a); /* frees every block; the arena may be reused */

/* Growable string. */
typedef struct StrBuf {
    char *s;
    size_t len, cap;
} StrBuf;

void sb_putc(StrBuf *b, char c);
void sb_puts(StrBuf *b, const char *s);
void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vprintf(StrBuf *b, const char *fmt, va_list ap);
void sb_free(StrBuf *b);

/* Writes the message to err (vsnprintf, cut to errlen) and returns false:
 * the one line of a check that fails with a message. */
bool tt_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reads a whole file (input.c): gunzips when the name ends in ".gz", stops
 * at the input limit (TT_MAX_INPUT_BYTES, see input.h), reads pipes but not
 * directories. Returns NULL and writes "<path>: <message>" to err on
 * failure. The result has a terminating NUL not counted in *len. */
char *tt_read_file(const char *path, size_t *len, char *err, size_t errlen);

#endif
