/* test_containers.c - dicts (the hash table under growth, keys hashed by
 * value), UTF-8 counting, format specs against CPython's results, `//` and
 * `%` on int tensors against Python's rule on both backends, and how the
 * parser reads `in`, `not in`, `//` and `a if c else b`.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "containers.h"
#include "interp_fixture.h"

TestSuite(containers, .init = fixture_open, .fini = fixture_close);

/* -- dicts -- */

Test(containers, dict_grows_and_keeps_insertion_order) {
    Value d = rt_dict(I);
    enum { N = 5000 };
    for (int i = 0; i < N; i++) {
        int64_t k = (int64_t)((i * 7919) % N); /* a permutation of 0..N-1 */
        rt_dict_set(I, d, vint(k), vint(i));
    }
    Dict *t = (Dict *)d.o;
    cr_assert_eq(t->len, N);
    cr_assert(3 * t->len <= 2 * t->icap, "index over 2/3 full: %d of %d", t->len, t->icap);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(t->entries[i].key.i, (int64_t)((i * 7919) % N));
        Value *v = rt_dict_find(I, d, vint(t->entries[i].key.i));
        cr_assert(v && v->kind == V_INT && v->i == i);
    }
    cr_assert_null(rt_dict_find(I, d, vint(N)));
    /* replacing keeps the entry (and its place) */
    rt_dict_set(I, d, vint(0), rt_cstr(I, "zero"));
    cr_assert_eq(t->len, N);
    cr_assert_eq(rt_dict_find(I, d, vint(0))->kind, V_STR);
    rt_release(I, d);
}

Test(containers, dict_keys_hash_by_value) {
    Value d = rt_dict(I);
    rt_dict_set(I, d, vint(1), vint(10));
    /* 1, 1.0 and true are one key; the first key is kept */
    cr_assert_not_null(rt_dict_find(I, d, vfloat(1.0)));
    cr_assert_not_null(rt_dict_find(I, d, vbool(true)));
    rt_dict_set(I, d, vfloat(1.0), vint(11));
    Dict *t = (Dict *)d.o;
    cr_assert_eq(t->len, 1);
    cr_assert_eq(t->entries[0].key.kind, V_INT);
    cr_assert_eq(t->entries[0].val.i, 11);
    /* 0 and -0.0 meet; 0.5 does not meet 0 */
    rt_dict_set(I, d, vint(0), vint(0));
    cr_assert_not_null(rt_dict_find(I, d, vfloat(-0.0)));
    cr_assert_null(rt_dict_find(I, d, vfloat(0.5)));
    /* equal strings and tuples are one key */
    Value s1 = rt_cstr(I, "key"), s2 = rt_cstr(I, "key");
    rt_dict_set(I, d, s1, vint(5));
    cr_assert_eq(rt_dict_find(I, d, s2)->i, 5);
    Value t1 = rt_tuple(I, 2), t2 = rt_tuple(I, 2);
    ((List *)t1.o)->items[0] = vint(1);
    ((List *)t1.o)->items[1] = rt_retain(s1);
    ((List *)t2.o)->items[0] = vfloat(1.0);
    ((List *)t2.o)->items[1] = rt_retain(s2);
    rt_dict_set(I, d, t1, vint(7));
    cr_assert_eq(rt_dict_find(I, d, t2)->i, 7);
    rt_release(I, s1);
    rt_release(I, s2);
    rt_release(I, t1);
    rt_release(I, t2);
    rt_release(I, d);
}

Test(containers, unhashable_keys_are_errors) {
    cr_assert_eq(fixture_run("let d = dict()\nd[[1]] = 2\n"), 1);
    cr_assert(strstr(fixture_diags(), "unhashable type: 'list'"), "%s", fixture_diags());
    cr_assert_eq(fixture_run("let e = dict()\ne[(1, [2])] = 2\n"), 1);
    cr_assert(strstr(fixture_diags(), "unhashable type: 'list'"), "%s", fixture_diags());
    cr_assert_eq(fixture_run("let f = dict()\nf[dict()] = 2\n"), 1);
    cr_assert(strstr(fixture_diags(), "unhashable type: 'dict'"), "%s", fixture_diags());
}

Test(containers, dict_equality_ignores_order) {
    cr_assert_eq(
        fixture_run("let a = dict(x=1, y=[2])\nlet b = dict(y=[2], x=1.0)\nlet same = a == b\n"
                    "let c = dict(x=1)\nlet differ = a == c\n"),
        0, "%s", fixture_diags());
    cr_assert(fixture_global("same").b);
    cr_assert(!fixture_global("differ").b);
}

/* -- UTF-8 -- */

Test(containers, utf8_counts_code_points_and_stray_bytes) {
    cr_assert_eq(utf8_count("abc", 3), 3);
    cr_assert_eq(utf8_count("h\xc3\xa9", 3), 2);        /* hé */
    cr_assert_eq(utf8_count("\xe2\x82\xac", 3), 1);     /* € */
    cr_assert_eq(utf8_count("\xf0\x9f\x98\x80", 4), 1); /* 😀 */
    cr_assert_eq(utf8_count("\xff\xfe", 2), 2);         /* not UTF-8 */
    cr_assert_eq(utf8_count("\xc3", 1), 1);             /* truncated */
    cr_assert_eq(utf8_count("\xc0\xaf", 2), 2);         /* overlong */
    cr_assert_eq(utf8_count("\xe0\x80\xaf", 3), 3);     /* overlong */
    cr_assert_eq(utf8_count("\xf4\x90\x80\x80", 4), 4); /* above U+10FFFF */
    cr_assert_eq(utf8_count("\xe2\x82", 2), 2);         /* cut short */
    Value s = rt_cstr(I, "a\xc3\xa9\xe2\x82\xac!");
    cr_assert_eq(((Str *)s.o)->nchars, 4);
    cr_assert_eq(str_offset((Str *)s.o, 3), 6);
    Value c = rt_str_char(I, s, 2);
    cr_assert_str_eq(((Str *)c.o)->s, "\xe2\x82\xac");
    rt_release(I, c);
    rt_release(I, s);
}

/* -- format -- */

/* Expected results from CPython's format(). */
Test(containers, format_spec_matches_python) {
    static const struct {
        double x;
        bool is_int;
        const char *spec, *want;
    } cases[] = {
        {3.14159, false, ".3f", "3.142"},
        {2.5, false, ".0f", "2"},
        {1234567, true, ",", "1,234,567"},
        {1234567.891, false, ",.2f", "1,234,567.89"},
        {0.25, false, ".1%", "25.0%"},
        {42, true, "08d", "00000042"},
        {-42, true, "08d", "-0000042"},
        {255, true, "#x", "0xff"},
        {5, true, "#b", "0b101"},
        {11259375, true, "_x", "ab_cdef"},
        {1.5e-7, false, "e", "1.500000e-07"},
        {1234567.0, false, "g", "1.23457e+06"},
        {1.0, false, ".1", "1e+00"},
        {1.0, false, ".2", "1.0"},
        {1234.5, false, "010,.2f", "001,234.50"},
        {1234, true, "08,", "0,001,234"},
        {3, true, "*^6", "**3***"},
        {-3, true, "=6", "-    3"},
        {65, true, "5c", "    A"},
        {5, true, "<05", "50000"},
        {-0.0001, false, "z.2f", "0.00"},
        {1.5, false, "<10", "1.5       "},
        {9.999, false, ".2f", "10.00"},
        {1.0, false, "#.0f", "1."},
        {7, true, ".2f", "7.00"},
        {-9223372036854775807.0, true, "", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!*cases[i].spec) continue;
        Value x = cases[i].is_int ? vint((int64_t)cases[i].x) : vfloat(cases[i].x);
        Value r = rt_format_spec(I, x, cases[i].spec);
        cr_expect_str_eq(((Str *)r.o)->s, cases[i].want, "format(%g, \"%s\")", cases[i].x,
                         cases[i].spec);
        rt_release(I, r);
    }
    Value s = rt_cstr(I, "h\xc3\xa9llo");
    Value r = rt_format_spec(I, s, "*^9");
    cr_expect_str_eq(((Str *)r.o)->s, "**h\xc3\xa9llo**"); /* width counts code points */
    rt_release(I, r);
    rt_release(I, s);
}

/* -- floor division and modulo on int tensors, both backends -- */

static int64_t py_floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0))) q--;
    return q;
}

Test(containers, int_tensor_floordiv_and_mod_follow_python) {
    static const char *const backends[] = {"naive", "jit"};
    for (int be = 0; be < 2; be++) {
        char src[1024];
        snprintf(src, sizeof src,
                 "backend(\"%s\")\n"
                 "let a = tensor([-9, -8, -7, -5, -3, -1, 0, 1, 3, 5, 7, 8, 9, 2147483647], "
                 "dtype=\"i32\")\n"
                 "let qs = []\nlet ms = []\n"
                 "for b in [-4, -3, -1, 1, 2, 5] {\n"
                 "    qs.append(tolist(a // b))\n"
                 "    ms.append(tolist(a %% tensor(b, dtype=\"i32\")))\n"
                 "}\n",
                 backends[be]);
        cr_assert_eq(fixture_run(src), 0, "%s", fixture_diags());
        static const int64_t as[] = {-9, -8, -7, -5, -3, -1, 0, 1, 3, 5, 7, 8, 9, 2147483647};
        static const int64_t bs[] = {-4, -3, -1, 1, 2, 5};
        List *qs = (List *)fixture_global("qs").o, *ms = (List *)fixture_global("ms").o;
        for (int j = 0; j < 6; j++) {
            List *q = (List *)qs->items[j].o, *m = (List *)ms->items[j].o;
            for (int i = 0; i < 14; i++) {
                int64_t want = py_floordiv(as[i], bs[j]);
                cr_expect_eq(q->items[i].i, want, "%s: %lld // %lld = %lld, want %lld",
                             backends[be], (long long)as[i], (long long)bs[j],
                             (long long)q->items[i].i, (long long)want);
                cr_expect_eq(m->items[i].i, as[i] - want * bs[j], "%s: %lld %% %lld", backends[be],
                             (long long)as[i], (long long)bs[j]);
            }
        }
    }
}

/* -- parsing -- */

static const AstNode *parse_expr(Arena *ar, const char *src) {
    int nerr = 0;
    AstNode *p = parse_source(ar, "<test>", src, strlen(src), &nerr);
    cr_assert_eq(nerr, 0, "%s", fixture_diags());
    cr_assert_eq(p->list.len, 1);
    cr_assert_eq(p->list.items[0]->kind, AST_EXPR_STMT);
    return p->list.items[0]->a;
}

Test(containers, parser_reads_new_operators) {
    Arena ar;
    arena_init(&ar);
    /* a if c else b if d else e: right-nested */
    const AstNode *n = parse_expr(&ar, "a if c else b if d else e");
    cr_assert_eq(n->kind, AST_IFEXPR);
    cr_assert_eq(n->a->kind, AST_NAME);
    cr_assert_str_eq(n->b->str, "c");
    cr_assert_eq(n->c->kind, AST_IFEXPR);
    cr_assert_str_eq(n->c->b->str, "d");
    /* x or y if c else z: the conditional is below or */
    n = parse_expr(&ar, "x or y if c else z");
    cr_assert_eq(n->kind, AST_IFEXPR);
    cr_assert_eq(n->a->kind, AST_BINARY);
    cr_assert_eq(n->a->op, AOP_OR);
    /* not a in b is not (a in b); a + 1 not in b */
    n = parse_expr(&ar, "not a in b");
    cr_assert_eq(n->kind, AST_UNARY);
    cr_assert_eq(n->a->op, AOP_IN);
    n = parse_expr(&ar, "a + 1 not in b");
    cr_assert_eq(n->op, AOP_NOT_IN);
    cr_assert_eq(n->a->op, AOP_ADD);
    /* `not inside` is not `not in`; x in 0..n is x in (0..n) */
    n = parse_expr(&ar, "not inside");
    cr_assert_eq(n->kind, AST_UNARY);
    cr_assert_str_eq(n->a->str, "inside");
    n = parse_expr(&ar, "x in 0..n");
    cr_assert_eq(n->op, AOP_IN);
    cr_assert_eq(n->b->kind, AST_RANGE);
    /* // binds like * and is left-associative */
    n = parse_expr(&ar, "a // b * c + d");
    cr_assert_eq(n->op, AOP_ADD);
    cr_assert_eq(n->a->op, AOP_MUL);
    cr_assert_eq(n->a->a->op, AOP_FLOORDIV);
    arena_free(&ar);
}
