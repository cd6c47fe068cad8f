/* containers.h - internals of dicts, strings and the sequence builtins
 * (dict.c, str.c, fmt.c, builtins_seq.c) that value.c and the evaluator
 * hook into. The public part is in value.h.
 */
#ifndef TT_CONTAINERS_H
#define TT_CONTAINERS_H

#include "value.h"

/* -- dict.c -- */
void rt_dict_clear(Interp *I, Dict *d, bool release); /* obj_clear's part */
bool rt_dict_equal(Interp *I, Dict *a, Dict *b);      /* ==: same keys, equal values */
void lib_register_dict(Interp *I);

/* -- str.c: UTF-8 -- */

/* Code points in s[0..n): a byte that does not start a valid UTF-8
 * sequence counts as one. */
size_t utf8_count(const char *s, size_t n);
/* The length in bytes of the code point starting at s[0] (1..4, within n). */
size_t utf8_step(const char *s, size_t n);
/* Writes the UTF-8 bytes of cp (1..4) to out. */
size_t utf8_encode(uint32_t cp, char *out);
/* The string of the code points start, start + step, ... (n of them) of s. */
Value str_slice(Interp *I, Value s, int64_t start, int64_t step, int64_t n);
/* The byte offset of code point i of str (0 <= i <= nchars). */
size_t str_offset(const Str *str, int64_t i);

/* -- fmt.c: format(x, spec) -- */
Value rt_format_spec(Interp *I, Value x, const char *spec);
void lib_register_fmt(Interp *I);

/* -- builtins_seq.c: sorted, tolist, range -- */
void lib_register_seq(Interp *I);

#endif
