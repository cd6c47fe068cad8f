/* test_parser.c - the lexer, the newline filter, the grammar, the AST shape,
 * source spans and syntax error messages (lang/lexer.l, lang/parser.y). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"

/* ---- helpers ---- */

typedef struct Parsed {
    Arena arena;
    AstNode *prog;
    int nerrors;
    char *diag; /* everything the parse wrote through diag_* */
    size_t diag_len;
} Parsed;

static Parsed *parse_text(const char *text) {
    Parsed *p = calloc(1, sizeof *p);
    arena_init(&p->arena);
    FILE *f = open_memstream(&p->diag, &p->diag_len);
    diag_set_stream(f);
    p->prog = parse_source(&p->arena, "t.tt", text, strlen(text), &p->nerrors);
    diag_set_stream(NULL);
    fclose(f);
    return p;
}

static void parsed_free(Parsed *p) {
    arena_free(&p->arena);
    free(p->diag);
    free(p);
}

/* A compact S-expression of a tree: (+ a (* b c)). */
static void sx(StrBuf *b, const AstNode *n);

static void sx_list(StrBuf *b, const AstList *l) {
    for (int i = 0; i < l->len; i++) {
        sb_putc(b, ' ');
        sx(b, l->items[i]);
    }
}

static void sx(StrBuf *b, const AstNode *n) {
    if (!n) {
        sb_puts(b, "_");
        return;
    }
    switch (n->kind) {
    case AST_INT:
        sb_printf(b, "%lld", (long long)n->ival);
        break;
    case AST_FLOAT:
        sb_printf(b, "%g", n->fval);
        break;
    case AST_STR:
        sb_printf(b, "\"%s\"", n->str);
        break;
    case AST_BOOL:
        sb_puts(b, n->ival ? "true" : "false");
        break;
    case AST_NONE:
        sb_puts(b, "none");
        break;
    case AST_NAME:
        sb_puts(b, n->str);
        break;
    case AST_ELLIPSIS:
        sb_puts(b, "...");
        break;
    case AST_UNARY:
        sb_printf(b, "(%s ", n->op == AOP_NEG ? "neg" : "not");
        sx(b, n->a);
        sb_putc(b, ')');
        break;
    case AST_BINARY:
        sb_printf(b, "(%s ", ast_op_str(n->op));
        sx(b, n->a);
        sb_putc(b, ' ');
        sx(b, n->b);
        sb_putc(b, ')');
        break;
    case AST_RANGE:
        sb_puts(b, "(.. ");
        sx(b, n->a);
        sb_putc(b, ' ');
        sx(b, n->b);
        sb_putc(b, ')');
        break;
    case AST_CALL:
        sb_puts(b, "(call ");
        sx(b, n->a);
        sx_list(b, &n->list);
        sb_putc(b, ')');
        break;
    case AST_ARG:
        if (n->str) sb_printf(b, "%s=", n->str);
        sx(b, n->a);
        break;
    case AST_INDEX:
        sb_puts(b, "(index ");
        sx(b, n->a);
        sx_list(b, &n->list);
        sb_putc(b, ')');
        break;
    case AST_SLICE:
        sb_puts(b, "(slice ");
        sx(b, n->a);
        sb_putc(b, ' ');
        sx(b, n->b);
        sb_putc(b, ' ');
        sx(b, n->c);
        sb_putc(b, ')');
        break;
    case AST_MEMBER:
        sb_puts(b, "(. ");
        sx(b, n->a);
        sb_printf(b, " %s)", n->str);
        break;
    case AST_LIST:
        sb_puts(b, "(list");
        sx_list(b, &n->list);
        sb_putc(b, ')');
        break;
    case AST_TUPLE:
        sb_puts(b, "(tuple");
        sx_list(b, &n->list);
        sb_putc(b, ')');
        break;
    case AST_RECORD:
        sb_puts(b, "(record");
        sx_list(b, &n->list);
        sb_putc(b, ')');
        break;
    case AST_REPEAT:
        sb_puts(b, "(repeat ");
        sx(b, n->a);
        sb_putc(b, ' ');
        sx(b, n->b);
        sb_putc(b, ')');
        break;
    default:
        sb_printf(b, "<%s>", ast_kind_name(n->kind));
        break;
    }
}

/* Parses one expression statement and returns its S-expression. */
static char *expr_sx(const char *src) {
    Parsed *p = parse_text(src);
    cr_assert_eq(p->nerrors, 0, "errors in %s:\n%s", src, p->diag);
    cr_assert_eq(p->prog->list.len, 1, "%s: %d statements", src, p->prog->list.len);
    const AstNode *s = p->prog->list.items[0];
    cr_assert_eq(s->kind, AST_EXPR_STMT, "%s: %s", src, ast_kind_name(s->kind));
    StrBuf b = {0};
    sx(&b, s->a);
    parsed_free(p);
    return b.s;
}

#define ASSERT_SX(src, want)                                                                       \
    do {                                                                                           \
        char *got_ = expr_sx(src);                                                                 \
        cr_assert_str_eq(got_, want, "%s", src);                                                   \
        free(got_);                                                                                \
    } while (0)

/* Expects exactly n errors and that the diagnostics contain `want`. */
#define ASSERT_ERRORS(src, n, want)                                                                \
    do {                                                                                           \
        Parsed *p_ = parse_text(src);                                                              \
        cr_assert_eq(p_->nerrors, n, "%s: %d errors:\n%s", src, p_->nerrors, p_->diag);            \
        cr_assert(strstr(p_->diag, want), "%s: no '%s' in:\n%s", src, want, p_->diag);             \
        parsed_free(p_);                                                                           \
    } while (0)

static int stmt_count(const char *src) {
    Parsed *p = parse_text(src);
    cr_assert_eq(p->nerrors, 0, "errors in %s:\n%s", src, p->diag);
    int n = p->prog->list.len;
    parsed_free(p);
    return n;
}

/* ---- the programs of spec/design.md section 3, verbatim ---- */

static const char design_0[] =
    "# Comments start with '#'. Statements end at a newline (or ';').\n"
    "\n"
    "# -- tensors (also the REPL's daily bread) --\n"
    "let a = tensor([[1.0, 2.0], [3.0, 4.0]])    # f32[2, 2]\n"
    "let b = ones([2, 2])\n"
    "let c = a @ b + 1                             # matmul; NumPy broadcasting\n"
    "print(c)                                      # NumPy-style printing\n"
    "print(c.shape, sum(c), mean(c, axis=0), argmax(c, axis=1))\n"
    "let r = randn([3, 4], seed=0)\n"
    "print(r[0, 1:3], transpose(r).shape, reshape(r, [2, 6]))\n"
    "\n"
    "# -- models: parameters, submodules, a forward --\n"
    "model Linear(fan_in: int, fan_out: int) {\n"
    "    param w = randn([fan_in, fan_out]) * sqrt(2.0 / fan_in)\n"
    "    param b = zeros([fan_out])\n"
    "    forward(x: f32[..., fan_in]) -> f32[..., fan_out] {\n"
    "        return x @ w + b\n"
    "    }\n"
    "}\n"
    "\n"
    "model DigitsNet {\n"
    "    fc1 = Linear(64, 128)\n"
    "    fc2 = Linear(128, 10)\n"
    "    forward(x: f32[B, 64]) -> f32[B, 10] {\n"
    "        return fc2(relu(fc1(x)))\n"
    "    }\n"
    "}\n"
    "\n"
    "# -- data, training, evaluation, saving --\n"
    "let data = load_csv(\"data/digits.csv.gz\", label=-1)   # x: f32[1797, 64], y: i32[1797]\n"
    "let (train, test) = split(data, 0.8, seed=1)\n"
    "let net = DigitsNet()\n"
    "let opt = Adam(net, lr=0.01)\n"
    "for epoch in 0..20 {\n"
    "    for (x, y) in batches(train, 32, shuffle=true) {\n"
    "        let loss = cross_entropy(net(x), y)\n"
    "        backward(loss)\n"
    "        opt.step()\n"
    "    }\n"
    "    print(\"epoch\", epoch, \"test accuracy\", accuracy(net(test.x), test.y))\n"
    "}\n"
    "save(net, \"digits.safetensors\")\n"
    "\n"
    "# the one-call form, with a progress bar and a loss curve:\n"
    "fit(net, train, loss=cross_entropy, opt=Adam(net, lr=0.01), epochs=20,\n"
    "    batch=32, valid=test, plot=\"loss.svg\")\n";

static const char design_1[] =
    "# -- transformers, generation with a KV cache --\n"
    "model Block(d: int, heads: int) {\n"
    "    ln1 = LayerNorm(d)\n"
    "    attn = CausalSelfAttention(d, heads)\n"
    "    ln2 = LayerNorm(d)\n"
    "    mlp = MLP(d, 4 * d)\n"
    "    forward(x) {\n"
    "        x = x + attn(ln1(x))\n"
    "        return x + mlp(ln2(x))\n"
    "    }\n"
    "}\n"
    "\n"
    "model TinyGPT(vocab: int, d: int, heads: int, layers: int, ctx: int) {\n"
    "    tok = Embedding(vocab, d)\n"
    "    pos = Embedding(ctx, d)\n"
    "    blocks = [Block(d, heads); layers]          # `layers` independent instances\n"
    "    ln = LayerNorm(d)\n"
    "    head = Linear(d, vocab)\n"
    "    forward(idx: i32[B, T]) -> f32[B, T, vocab] {\n"
    "        let x = tok(idx) + pos(arange(T))\n"
    "        for blk in blocks { x = blk(x) }\n"
    "        return head(ln(x))\n"
    "    }\n"
    "}\n"
    "\n"
    "let text = read_text(\"data/corpus.txt\")\n"
    "let tok = char_tokenizer(text)\n"
    "let gpt = TinyGPT(tok.vocab, 64, 4, 2, 128)\n"
    "# ... train on windows of encode(tok, text) ...\n"
    "let out = generate(gpt, encode(tok, \"The \"), 200, temperature=0.8, seed=0)  # KV cache on\n"
    "let slow = generate(gpt, encode(tok, \"The \"), 200, cache=false, seed=0)     # same tokens\n"
    "print(decode(tok, out))\n";

static const char design_2[] =
    "# -- the optimization toolbox --\n"
    "let q = quantize(net, calib=train.x[0:256])          # INT8 weights and activations\n"
    "print(bytes(net), bytes(q), accuracy(q(test.x), test.y))\n"
    "let p = prune(net, 0.7)                               # magnitude, unstructured\n"
    "let s = prune(net, 0.5, structured=true)              # removes hidden units: shapes shrink\n"
    "let student = distill(net, DigitsNet(), train, temperature=4.0, epochs=10)\n"
    "profile { net(test.x) }                               # per-op table: time, %, GFLOP/s, "
    "bytes\n"
    "let r = bench(net, test.x, runs=100)                  # r.ms, r.peak_mb\n"
    "backend(\"naive\")                                      # switch for what follows\n";

static void assert_parses(const char *src) {
    Parsed *p = parse_text(src);
    cr_assert_eq(p->nerrors, 0, "%s", p->diag);
    cr_assert_eq(p->prog->kind, AST_PROGRAM);
    parsed_free(p);
}

Test(parser, design_tensors_models_training) {
    assert_parses(design_0);
    Parsed *p = parse_text(design_0);
    /* let a, let b, let c, print, print, let r, print, model, model, let data,
     * let (train, test), let net, let opt, for, save, fit */
    cr_assert_eq(p->prog->list.len, 16);
    const AstNode *lin = p->prog->list.items[7];
    cr_assert_eq(lin->kind, AST_MODEL);
    cr_assert_str_eq(lin->str, "Linear");
    cr_assert_eq(lin->list.len, 2);
    cr_assert_eq(lin->b->list.len, 3);
    cr_assert_eq(lin->b->list.items[0]->kind, AST_PARAM_DECL);
    cr_assert_str_eq(lin->b->list.items[0]->str, "w");
    const AstNode *fwd = lin->b->list.items[2];
    cr_assert_eq(fwd->kind, AST_FN);
    cr_assert_str_eq(fwd->str, "forward");
    cr_assert_eq(fwd->type->kind, AST_TYPE);
    cr_assert_str_eq(fwd->type->str, "f32");
    cr_assert_eq(fwd->type->list.items[0]->kind, AST_ELLIPSIS);
    const AstNode *split = p->prog->list.items[10];
    cr_assert_eq(split->kind, AST_LET);
    cr_assert_eq(split->ival, 1);
    cr_assert_eq(split->list.len, 2);
    const AstNode *digits = p->prog->list.items[8];
    cr_assert_eq(digits->list.len, 0);
    cr_assert_eq(digits->b->list.items[0]->kind, AST_FIELD);
    parsed_free(p);
}

Test(parser, design_transformer) {
    assert_parses(design_1);
    Parsed *p = parse_text(design_1);
    const AstNode *gpt = p->prog->list.items[1];
    cr_assert_str_eq(gpt->str, "TinyGPT");
    const AstNode *blocks = gpt->b->list.items[2];
    cr_assert_eq(blocks->kind, AST_FIELD);
    cr_assert_eq(blocks->a->kind, AST_REPEAT);
    parsed_free(p);
}

Test(parser, design_toolbox) {
    assert_parses(design_2);
}

/* ---- precedence ---- */

Test(parser, precedence) {
    ASSERT_SX("-x ** 2", "(neg (** x 2))");
    ASSERT_SX("a + b * c @ d", "(+ a (@ (* b c) d))");
    ASSERT_SX("a @ b + 1", "(+ (@ a b) 1)");
    ASSERT_SX("0..n+1", "(.. 0 (+ n 1))");
    ASSERT_SX("not a == b", "(not (== a b))");
    ASSERT_SX("not a and b", "(and (not a) b)");
    ASSERT_SX("a or b and not c", "(or a (and b (not c)))");
    ASSERT_SX("2 ** 3 ** 2", "(** 2 (** 3 2))");
    ASSERT_SX("a - b - c", "(- (- a b) c)");
    ASSERT_SX("a / b % c * d", "(* (% (/ a b) c) d)");
    ASSERT_SX("x ** -y", "(** x (neg y))");
    ASSERT_SX("-a.b(c)[d]", "(neg (index (call (. a b) c) d))");
    ASSERT_SX("a < b + 1", "(< a (+ b 1))");
    ASSERT_SX("a..b == c", "(== (.. a b) c)");
    ASSERT_SX("--x", "(neg (neg x))");
}

Test(parser, comparisons_do_not_chain) {
    ASSERT_ERRORS("a < b < c\n", 1, "comparisons do not chain");
    ASSERT_ERRORS("0..1..2\n", 1, "unexpected '..'");
}

/* ---- literals ---- */

Test(parser, literals) {
    ASSERT_SX("1_000", "1000");
    ASSERT_SX("2.5e3", "2500");
    ASSERT_SX("1e-3", "0.001");
    ASSERT_SX("0.5", "0.5");
    ASSERT_SX("0..20", "(.. 0 20)");
    ASSERT_SX("true", "true");
    ASSERT_SX("none", "none");
    ASSERT_SX("x[...]", "(index x ...)");
}

Test(parser, string_escapes) {
    Parsed *p = parse_text("\"a\\n\\t\\\\\\\"\\x41\\0b\\r\"\n");
    cr_assert_eq(p->nerrors, 0, "%s", p->diag);
    const AstNode *s = p->prog->list.items[0]->a;
    cr_assert_eq(s->kind, AST_STR);
    cr_assert_eq(s->ival, 9);
    cr_assert(memcmp(s->str, "a\n\t\\\"A\0b\r", 9) == 0);
    parsed_free(p);
}

Test(parser, float_needs_digits_on_both_sides) {
    ASSERT_ERRORS("let x = .5\n", 1, "1:9: error: '.5' is not a number");
    ASSERT_ERRORS("let x = 1.\n", 1, "1:9: error: '1.' is not a number");
    ASSERT_ERRORS("let x = 1.", 1, "write '1.0'");
    /* x.5 is a member access with a bad name, not a float */
    ASSERT_ERRORS("x.5\n", 1, "unexpected integer '5', expected identifier");
}

/* ---- expressions ---- */

Test(parser, calls_and_keyword_args) {
    ASSERT_SX("f(x=3)", "(call f x=3)");
    ASSERT_SX("f(x, lr=0.01,)", "(call f x lr=0.01)");
    ASSERT_SX("f()", "(call f)");
    ASSERT_SX("f(x == 3)", "(call f (== x 3))");
    ASSERT_SX("opt.step()", "(call (. opt step))");
    ASSERT_ERRORS("f(a=1, 2)\n", 1, "positional argument after a keyword argument");
}

Test(parser, parens_tuples_records) {
    ASSERT_SX("(a)", "a");
    ASSERT_SX("(a,)", "(tuple a)");
    ASSERT_SX("(a, b)", "(tuple a b)");
    ASSERT_SX("(a, b,)", "(tuple a b)");
    ASSERT_SX("()", "(tuple)");
    ASSERT_SX("(ms=1.5, peak_mb=3)", "(record ms=1.5 peak_mb=3)");
    ASSERT_SX("(0.9, 0.999)", "(tuple 0.9 0.999)");
    ASSERT_ERRORS("(a=1, 2)\n", 1, "a record needs a name for every field");
}

Test(parser, lists_and_repeat) {
    ASSERT_SX("[a, b]", "(list a b)");
    ASSERT_SX("[]", "(list)");
    ASSERT_SX("[[1.0, 2.0], [3.0, 4.0]]", "(list (list 1 2) (list 3 4))");
    ASSERT_SX("[Block(d, heads); layers]", "(repeat (call Block d heads) layers)");
}

Test(parser, subscripts_and_slices) {
    ASSERT_SX("r[0, 1:3]", "(index r 0 (slice 1 3 _))");
    ASSERT_SX("x[::2]", "(index x (slice _ _ 2))");
    ASSERT_SX("x[:]", "(index x (slice _ _ _))");
    ASSERT_SX("x[1:]", "(index x (slice 1 _ _))");
    ASSERT_SX("x[..., 0]", "(index x ... 0)");
    ASSERT_SX("x[a+1:b:-1]", "(index x (slice (+ a 1) b (neg 1)))");
    ASSERT_SX("train.x[0:256]", "(index (. train x) (slice 0 256 _))");
    ASSERT_ERRORS("f(1:2)\n", 1, "unexpected ':'");
}

/* ---- newlines ---- */

Test(parser, newline_rules) {
    /* a trailing operator continues the line */
    cr_assert_eq(stmt_count("let x = 1 +\n    2\nprint(x)\n"), 2);
    cr_assert_eq(stmt_count("let ok = a and\n  b\n"), 1);
    /* inside ( and [ newlines are dropped */
    cr_assert_eq(stmt_count("f(a,\n  b,\n  c\n)\nlet l = [\n 1,\n 2\n]\n"), 2);
    /* else and { may start the next line */
    cr_assert_eq(stmt_count("if a {\n  x = 1\n}\nelse {\n  x = 2\n}\n"), 1);
    cr_assert_eq(stmt_count("if a\n{\n  x = 1\n}\n\nelse\n{\n  x = 2\n}\n"), 1);
    cr_assert_eq(stmt_count("fn f(a)\n{\n  return a\n}\n"), 1);
    /* blank lines, comments and ';' */
    cr_assert_eq(stmt_count("\n\n# c\n  # d\nx = 1; y = 2;\n\nz = 3 # e\n"), 3);
    cr_assert_eq(stmt_count(""), 0);
    cr_assert_eq(stmt_count("# only a comment"), 0);
    cr_assert_eq(stmt_count(";;\n;"), 0);
    /* newlines separate statements inside blocks */
    Parsed *p = parse_text("for b in blocks {\n  x = b(x)\n  y = 2\n}\n");
    cr_assert_eq(p->nerrors, 0, "%s", p->diag);
    cr_assert_eq(p->prog->list.items[0]->b->list.len, 2);
    parsed_free(p);
}

Test(parser, leading_operator_starts_a_statement) {
    Parsed *p = parse_text("let x = a\n    - b\n");
    cr_assert_eq(p->nerrors, 0);
    cr_assert_eq(p->prog->list.len, 2);
    cr_assert(strstr(p->diag, "2:5: warning:"), "%s", p->diag);
    parsed_free(p);
}

/* ---- statements ---- */

Test(parser, let_and_assignment) {
    Parsed *p = parse_text("let x: f32[2, 3] = zeros([2, 3])\n"
                           "let (a, b) = pair\n"
                           "x = 1\nnet.fc1.w = w\nx[0, 1] = 2\nx += 1\nx -= 1\nx *= 2\nx /= 2\n");
    cr_assert_eq(p->nerrors, 0, "%s", p->diag);
    AstNode **s = p->prog->list.items;
    cr_assert_eq(s[0]->kind, AST_LET);
    cr_assert_eq(s[0]->ival, 0);
    cr_assert_str_eq(s[0]->list.items[0]->str, "x");
    cr_assert_eq(s[0]->type->ival, 1);
    cr_assert_eq(s[0]->type->list.len, 2);
    cr_assert_eq(s[1]->ival, 1);
    cr_assert_str_eq(s[1]->list.items[1]->str, "b");
    cr_assert_eq(s[2]->kind, AST_ASSIGN);
    cr_assert_eq(s[2]->op, AOP_NONE);
    cr_assert_eq(s[3]->a->kind, AST_MEMBER);
    cr_assert_eq(s[4]->a->kind, AST_INDEX);
    cr_assert_eq(s[5]->op, AOP_ADD);
    cr_assert_eq(s[6]->op, AOP_SUB);
    cr_assert_eq(s[7]->op, AOP_MUL);
    cr_assert_eq(s[8]->op, AOP_DIV);
    parsed_free(p);
    ASSERT_ERRORS("f(x) = 3\n", 1, "cannot assign to a call");
    ASSERT_ERRORS("a + b = 3\n", 1, "cannot assign to this expression");
}

Test(parser, control_flow) {
    Parsed *p = parse_text("if a { x } else if b { y } else { z }\n"
                           "while i < 10 { i += 1; if i == 5 { break } else { continue } }\n"
                           "for (x, y) in batches(train, 32, shuffle=true) { step(x, y) }\n"
                           "fn f() { return }\n"
                           "profile { net(test.x) }\n");
    cr_assert_eq(p->nerrors, 0, "%s", p->diag);
    AstNode **s = p->prog->list.items;
    cr_assert_eq(s[0]->kind, AST_IF);
    cr_assert_eq(s[0]->c->kind, AST_IF);
    cr_assert_eq(s[0]->c->c->kind, AST_BLOCK);
    cr_assert_eq(s[1]->kind, AST_WHILE);
    cr_assert_eq(s[1]->b->list.len, 2);
    cr_assert_eq(s[2]->kind, AST_FOR);
    cr_assert_eq(s[2]->ival, 1);
    cr_assert_eq(s[2]->list.len, 2);
    cr_assert_eq(s[3]->b->list.items[0]->kind, AST_RETURN);
    cr_assert_null(s[3]->b->list.items[0]->a);
    cr_assert_eq(s[4]->kind, AST_PROFILE);
    cr_assert_eq(s[4]->b->kind, AST_BLOCK);
    parsed_free(p);
}

Test(parser, functions_and_models) {
    Parsed *p = parse_text("fn f(a, b: int = 1, c: f32[B, 64],) -> float { return a }\n"
                           "model M(n: int) {\n"
                           "    param w: f32[n] = zeros([n])\n"
                           "    let k = 2\n"
                           "    sub = Linear(n, n)\n"
                           "    fn helper(x) { return x }\n"
                           "    forward(x: f32[B, n]) -> f32[B, n] { return sub(x) * w }\n"
                           "}\n"
                           "model E {}\n");
    cr_assert_eq(p->nerrors, 0, "%s", p->diag);
    AstNode **s = p->prog->list.items;
    cr_assert_eq(s[0]->kind, AST_FN);
    cr_assert_eq(s[0]->list.len, 3);
    const AstNode *b = s[0]->list.items[1];
    cr_assert_eq(b->kind, AST_PARAMDEF);
    cr_assert_str_eq(b->type->str, "int");
    cr_assert_eq(b->type->ival, 0);
    cr_assert_eq(b->a->ival, 1);
    cr_assert_str_eq(s[0]->type->str, "float");
    const AstList *decls = &s[1]->b->list;
    cr_assert_eq(decls->len, 5);
    cr_assert_eq(decls->items[0]->kind, AST_PARAM_DECL);
    cr_assert_not_null(decls->items[0]->type);
    cr_assert_eq(decls->items[1]->kind, AST_LET);
    cr_assert_eq(decls->items[2]->kind, AST_FIELD);
    cr_assert_eq(decls->items[3]->kind, AST_FN);
    cr_assert_eq(decls->items[4]->kind, AST_FN);
    cr_assert_eq(s[2]->b->list.len, 0);
    parsed_free(p);
}

Test(parser, param_and_forward_are_not_reserved) {
    cr_assert_eq(stmt_count("let param = 1\nlet forward = param + 1\n"), 2);
    ASSERT_ERRORS("model M { parm w = 1 }\n", 1, "unknown declaration 'parm w'");
    ASSERT_ERRORS("model M { print(1) }\n", 1, "syntax error");
}

/* ---- spans ---- */

Test(parser, source_spans) {
    Parsed *p = parse_text("let c = a @ b + 1\n  f(x,\n    y)\n");
    cr_assert_eq(p->nerrors, 0, "%s", p->diag);
    const AstNode *let = p->prog->list.items[0];
    cr_assert_str_eq(let->loc.file, "t.tt");
    cr_assert_eq(let->loc.line, 1);
    cr_assert_eq(let->loc.col, 1);
    cr_assert_eq(let->loc.end_col, 17);
    const AstNode *add = let->a;
    cr_assert_eq(add->op, AOP_ADD);
    cr_assert_eq(add->op_col, 15);
    const AstNode *mm = add->a;
    cr_assert_eq(mm->op, AOP_MATMUL);
    cr_assert_eq(mm->loc.col, 9);
    cr_assert_eq(mm->loc.end_col, 13);
    cr_assert_eq(mm->op_line, 1);
    cr_assert_eq(mm->op_col, 11);
    const AstNode *call = p->prog->list.items[1]->a;
    cr_assert_eq(call->loc.line, 2);
    cr_assert_eq(call->loc.col, 3);
    cr_assert_eq(call->loc.end_line, 3);
    cr_assert_eq(call->loc.end_col, 6);
    parsed_free(p);
}

/* ---- errors ---- */

Test(parser, syntax_errors) {
    ASSERT_ERRORS("if x = 3 { y = 1 }\n", 1,
                  "1:6: error: syntax error: unexpected '=', expected '{'");
    ASSERT_ERRORS("print(x y)\n", 1, "unexpected identifier 'y', expected ')' or ','");
    ASSERT_ERRORS("let x = )\n", 1, "unexpected ')', expected expression");
    ASSERT_ERRORS("let x = 1 +\n", 1, "unexpected end of file, expected expression");
    ASSERT_ERRORS("}\n", 1, "no matching '{' is open");
    ASSERT_ERRORS("else { x }\n", 1, "unexpected 'else'");
    ASSERT_ERRORS("x = 1 y = 2\n", 1, "expected end of line");
}

Test(parser, several_errors_are_reported) {
    Parsed *p = parse_text("let a = )\nlet b = 2\nlet c = * 3\nif x { y z }\nlet d = 4\n");
    cr_assert_eq(p->nerrors, 3, "%s", p->diag);
    cr_assert(strstr(p->diag, "t.tt:1:9: error:"), "%s", p->diag);
    cr_assert(strstr(p->diag, "t.tt:3:9: error:"), "%s", p->diag);
    cr_assert(strstr(p->diag, "t.tt:4:10: error:"), "%s", p->diag);
    /* the good statements are still there */
    cr_assert_geq(p->prog->list.len, 2);
    parsed_free(p);
}

Test(parser, unclosed_brackets) {
    ASSERT_ERRORS("let x = (1 + 2\n", 1, "1:9: error: unclosed '('");
    ASSERT_ERRORS("let x = [1, 2\n\n", 1, "1:9: error: unclosed '['");
    ASSERT_ERRORS("if a {\n  x = 1\n", 1, "1:6: error: unclosed '{'");
    Parsed *p = parse_text("f(a, [1,\n  { \n");
    cr_assert_eq(p->nerrors, 4, "%s", p->diag); /* '{' cannot start an expression */
    cr_assert(strstr(p->diag, "1:2: error: unclosed '('"), "%s", p->diag);
    cr_assert(strstr(p->diag, "1:6: error: unclosed '['"), "%s", p->diag);
    cr_assert(strstr(p->diag, "2:3: error: unclosed '{'"), "%s", p->diag);
    parsed_free(p);
}

Test(parser, lexical_errors) {
    ASSERT_ERRORS("let s = \"abc\nlet y = 2\n", 1, "1:9: error: unterminated string");
    ASSERT_ERRORS("let s = \"a\\qb\"\n", 1, "1:11: error: bad escape in string: '\\q'");
    ASSERT_ERRORS("let s = \"\\x4\"\n", 1, "'\\x' needs two hex digits");
    ASSERT_ERRORS("let x = 3 $ 4\nlet y = `\n", 4, "1:11: error: unexpected character '$'");
    ASSERT_ERRORS("let x = 99999999999999999999\n", 1, "integer literal is too large");
    ASSERT_ERRORS("let x = a && b\n", 1, "tt writes 'and'");
    ASSERT_ERRORS("let s = \"\xe2\x80\x9c\"\nlet t = \xe2\x80\x9cx\n", 1, "non-ASCII");
}

Test(parser, error_cap) {
    StrBuf b = {0};
    for (int i = 0; i < 100; i++) sb_puts(&b, "let = )\n");
    Parsed *p = parse_text(b.s);
    cr_assert_eq(p->nerrors, 20, "%d", p->nerrors);
    cr_assert(strstr(p->diag, "too many errors"), "%s", p->diag);
    parsed_free(p);
    sb_free(&b);
}

Test(parser, deep_nesting_does_not_crash) {
    StrBuf b = {0};
    for (int i = 0; i < 5000; i++) sb_putc(&b, '(');
    sb_putc(&b, '1');
    for (int i = 0; i < 5000; i++) sb_putc(&b, ')');
    Parsed *p = parse_text(b.s);
    cr_assert_geq(p->nerrors, 1);
    cr_assert(strstr(p->diag, "nested too deeply"), "%.300s", p->diag);
    parsed_free(p);
    sb_free(&b);
}

/* Each input either parses cleanly or is reported: at least one error,
 * written as file:line:col: error: ... (a crash, a silent failure or an
 * error without a message all fail). */
Test(parser, garbage_is_reported) {
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        bool ok;    /* valid syntax (names are checked later, not here) */
    } inputs[] = {
        {"", 0, true},
        {"\n", 0, true},
        {"1.e5", 0, true},
        {"for (x,) in y {}", 0, true},
        {"\"", 0, false},
        {"\\", 0, false},
        {"(", 0, false},
        {")", 0, false},
        {"]", 0, false},
        {"}", 0, false},
        {"{", 0, false},
        {"[;", 0, false},
        {"model", 0, false},
        {"model M(", 0, false},
        {"fn", 0, false},
        {"let (", 0, false},
        {"x[", 0, false},
        {"x[:", 0, false},
        {"x[::", 0, false},
        {"f(a=", 0, false},
        {"\0\0\0", 3, false},
        {"let x = \"\\", 0, false},
        {"..........", 0, false},
        {"if if if", 0, false},
        {"model M { param }", 0, false},
        {"model M { param w }", 0, false},
        {"x.", 0, false},
        {"a ** ** b", 0, false},
    };
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        const char *text = inputs[i].text;
        size_t len = inputs[i].len ? inputs[i].len : strlen(text);
        Arena ar;
        arena_init(&ar);
        char *diag = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&diag, &n);
        diag_set_stream(f);
        int ne = 0;
        AstNode *prog = parse_source(&ar, "g.tt", text, len, &ne);
        diag_set_stream(NULL);
        fclose(f);
        cr_assert_not_null(prog, "input %zu", i);
        cr_assert_eq(prog->kind, AST_PROGRAM, "input %zu", i);
        if (inputs[i].ok) {
            cr_expect_eq(ne, 0, "input %zu (%s) is valid: %s", i, text, diag);
            cr_expect_null(strstr(diag, "error"), "input %zu (%s): %s", i, text, diag);
        } else {
            cr_expect_geq(ne, 1, "input %zu (%s) must be reported", i, text);
            cr_expect(strncmp(diag, "g.tt:", 5) == 0 && strstr(diag, ": error: "),
                      "input %zu (%s): %s", i, text, diag);
        }
        free(diag);
        arena_free(&ar);
    }
}

/* ---- the REPL's continuation check ---- */

Test(parser, is_incomplete) {
#define INC(s) parse_is_incomplete(s, strlen(s))
    cr_assert(INC("f(1,"));
    cr_assert(INC("model M {\n  x = 1\n"));
    cr_assert(INC("let l = [1, 2"));
    cr_assert(INC("print(\"abc"));
    cr_assert(INC("let x = 1 +"));
    cr_assert(INC("let ok = a and"));
    cr_assert(!INC("let x = 1"));
    cr_assert(!INC("f(1)"));
    cr_assert(!INC("print(\"(\")"));
    cr_assert(!INC("x = 1 # (unclosed in a comment"));
    cr_assert(!INC("if a { b }"));
    cr_assert(!INC(""));
    cr_assert(!INC("x[...]"));
#undef INC
}

/* ---- printing ---- */

Test(parser, ast_print_tree) {
    Parsed *p = parse_text("let c = a @ b + 1\n");
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    ast_print(f, p->prog);
    fclose(f);
    cr_assert_str_eq(out, "PROGRAM 1:1\n"
                          "  LET c 1:1\n"
                          "    value: BINARY + 1:9\n"
                          "      BINARY @ 1:9\n"
                          "        NAME a 1:9\n"
                          "        NAME b 1:13\n"
                          "      INT 1 1:17\n");
    free(out);
    parsed_free(p);
    cr_assert_str_eq(ast_kind_name(AST_PARAM_DECL), "PARAM_DECL");
    cr_assert_str_eq(ast_op_str(AOP_MATMUL), "@");
    cr_assert_str_eq(ast_op_str(AOP_NOT), "not");
}

/* A very long line is quoted as a window around the caret, not whole. */
Test(parser, long_lines_are_quoted_around_the_caret) {
    StrBuf src = {0};
    sb_puts(&src, "let x = 1");
    for (int i = 0; i < 5000; i++) sb_puts(&src, " + 1");
    sb_puts(&src, " + )\n"); /* the error is at column 20011 */
    Parsed *p = parse_text(src.s);
    cr_assert_geq(p->nerrors, 1, "%s", p->diag);
    cr_assert(strstr(p->diag, "t.tt:1:20013: error:"), "%.300s", p->diag);
    /* every line is short, the quote is marked as cut on the left, and the
     * caret sits under the ')' */
    const char *line = p->diag, *quote = NULL, *caret = NULL;
    while (*line) {
        const char *eol = strchr(line, '\n');
        size_t n = eol ? (size_t)(eol - line) : strlen(line);
        cr_assert_leq(n, 240, "a diagnostic line of %zu characters", n);
        if (!quote && strncmp(line, "    1 | ...", 11) == 0)
            quote = line;
        else if (quote && !caret && strstr(line, "^"))
            caret = line;
        if (!eol) break;
        line = eol + 1;
    }
    cr_assert(quote && caret, "%s", p->diag);
    size_t at = (size_t)(strchr(caret, '^') - caret);
    cr_assert_eq(quote[at], ')', "caret at %zu under '%c':\n%s", at, quote[at], p->diag);
    sb_free(&src);
    parsed_free(p);
}
