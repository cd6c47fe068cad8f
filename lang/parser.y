/* parser.y - the grammar of tt (spec/grammar.md is this file in EBNF).
 *
 * An LALR(1) grammar with no conflicts. Between the flex scanner and the
 * parser sits a small newline filter (yylex below): it drops newlines inside
 * ( and [, after tokens that cannot end a statement, and before `else` or
 * `{`; every other newline ends a statement. The filter also keeps the stack
 * of open brackets, so an unclosed one is reported where it was opened.
 *
 * Syntax errors are reported with readable token names and what was expected
 * (yyreport_syntax_error); `error` rules resynchronize at the end of a
 * statement, so one run reports several errors. Grammar actions allocate
 * only from the parse's arena and never free.
 */

%code requires {
#include "ast.h"
#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif
typedef struct ParseState ParseState;
}

%code provides {
/* An open bracket the filter has seen: '(' '[' or '{' and where it is. */
typedef struct Bracket {
    int ch;
    SrcLoc loc;
} Bracket;

/* A token read ahead by the filter. */
typedef struct Pending {
    int tok;
    YYSTYPE val;
    SrcLoc loc;
} Pending;

/* Everything one parse needs; also the scanner's "extra" data. */
struct ParseState {
    Arena *arena;
    const char *file; /* the interned name from diag_add_file */
    const char *text; /* the source, for quoting tokens in messages */
    size_t len;
    AstNode *result;
    int nerrors;
    bool stop;         /* too many errors: the filter returns end of file */
    bool eof_reported; /* an error at the end of input was already reported */
    bool repl;         /* "<stdin>"-like names: no statement warnings */
    /* scanner */
    int line, col;   /* position of the next character */
    int last_raw;    /* kind of the last raw token */
    SrcLoc last_loc; /* span of the last raw token that is not a newline */
    /* newline filter */
    int prev;      /* last token handed to the parser (0: none yet) */
    bool at_eof;   /* the scanner has reached the end */
    bool stray_closer; /* the last token closes no open bracket */
    Pending pending[1];
    int npending;
    Bracket *brackets;
    int nbrackets, capbrackets;
};

/* Reports an error at loc (at most TT_PARSE_MAX_ERRORS per parse). */
void parse_error(ParseState *ps, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define TT_PARSE_MAX_ERRORS 20
}

%code {
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lexer.h"

int tt_rawlex(YYSTYPE *lval, YYLTYPE *lloc, yyscan_t scanner);
static void yyerror(YYLTYPE *loc, yyscan_t scanner, ParseState *ps, const char *msg);

/* Bounded nesting, so later recursive passes over the tree stay shallow. */
#define YYMAXDEPTH 3000

/* A rule's span runs from its first symbol to its last; an empty rule sits
 * just after the symbol before it. */
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                             \
    do {                                                                        \
        if (N) {                                                                \
            (Cur).file = YYRHSLOC(Rhs, 1).file;                                 \
            (Cur).line = YYRHSLOC(Rhs, 1).line;                                 \
            (Cur).col = YYRHSLOC(Rhs, 1).col;                                   \
            (Cur).end_line = YYRHSLOC(Rhs, N).end_line;                         \
            (Cur).end_col = YYRHSLOC(Rhs, N).end_col;                           \
        } else {                                                                \
            (Cur).file = YYRHSLOC(Rhs, 0).file;                                 \
            (Cur).line = (Cur).end_line = YYRHSLOC(Rhs, 0).end_line;            \
            (Cur).col = (Cur).end_col = YYRHSLOC(Rhs, 0).end_col + 1;           \
        }                                                                       \
    } while (0)

#define AR (ps->arena)

static AstNode *mk(ParseState *ps, AstKind k, SrcLoc loc) { return ast_new(ps->arena, k, loc); }

static void at_op(AstNode *n, SrcLoc op) {
    n->op_line = op.line;
    n->op_col = op.col;
}

static AstNode *mk_binary(ParseState *ps, AstOp op, AstNode *a, AstNode *b, SrcLoc loc,
                          SrcLoc oploc) {
    AstNode *n = mk(ps, AST_BINARY, loc);
    n->op = op;
    n->a = a;
    n->b = b;
    at_op(n, oploc);
    return n;
}

static AstNode *mk_unary(ParseState *ps, AstOp op, AstNode *a, SrcLoc loc, SrcLoc oploc) {
    AstNode *n = mk(ps, AST_UNARY, loc);
    n->op = op;
    n->a = a;
    at_op(n, oploc);
    return n;
}

static AstNode *mk_name(ParseState *ps, const char *s, SrcLoc loc) {
    AstNode *n = mk(ps, AST_NAME, loc);
    n->str = s;
    return n;
}

static void push(ParseState *ps, AstList *l, AstNode *n) {
    if (n) ast_list_push(ps->arena, l, n);
}

static AstList list1(ParseState *ps, AstNode *n) {
    AstList l = {0};
    push(ps, &l, n);
    return l;
}

/* Assignment targets: names, members and index expressions. */
static AstNode *mk_assign(ParseState *ps, AstOp op, AstNode *target, AstNode *value, SrcLoc loc,
                          SrcLoc oploc) {
    if (target && target->kind != AST_NAME && target->kind != AST_MEMBER &&
        target->kind != AST_INDEX) {
        const char *what = target->kind == AST_CALL ? "a call" : "this expression";
        parse_error(ps, target->loc,
                    "cannot assign to %s (only to a name, a member 'a.b' or an element 'a[i]')",
                    what);
    }
    AstNode *n = mk(ps, AST_ASSIGN, loc);
    n->op = op;
    n->a = target;
    n->b = value;
    at_op(n, oploc);
    return n;
}

/* `let x` / `for x`: a single name, or `(a, b)` written as a tuple. The
 * parser hands the targets over as an AST_NAME or an AST_TUPLE of names. */
static void set_targets(ParseState *ps, AstNode *n, AstNode *targets) {
    if (!targets) return;
    if (targets->kind == AST_TUPLE) {
        n->list = targets->list;
        n->ival = 1;
    } else {
        n->list = list1(ps, targets);
    }
}

/* Call arguments: a positional argument may not follow a keyword one. */
static void check_args(ParseState *ps, const AstList *args) {
    bool kw = false;
    for (int i = 0; i < args->len; i++) {
        const AstNode *a = args->items[i];
        if (a->ival == 1 && a->str)
            parse_error(ps, a->loc, "'%s' is a keyword and cannot be an argument name", a->str);
        if (a->str) {
            kw = true;
        } else if (kw) {
            parse_error(ps, a->loc, "positional argument after a keyword argument");
            return;
        }
    }
}

/* `( items )`: a group, a tuple or a record (every item NAME = e). */
static AstNode *mk_paren(ParseState *ps, AstList items, bool trailing_comma, SrcLoc loc) {
    int nkw = 0;
    for (int i = 0; i < items.len; i++) {
        const AstNode *a = items.items[i];
        nkw += a->str != NULL;
        if (a->ival == 1 && a->str)
            parse_error(ps, a->loc, "'%s' is a keyword and cannot be a record field name", a->str);
    }
    if (nkw > 0) {
        if (nkw != items.len) {
            parse_error(ps, loc,
                        "a record needs a name for every field, as in (ms=1.5, peak_mb=3)");
        }
        AstNode *n = mk(ps, AST_RECORD, loc);
        for (int i = 0; i < items.len; i++)
            if (items.items[i]->str) push(ps, &n->list, items.items[i]);
        return n;
    }
    if (items.len == 1 && !trailing_comma) {
        AstNode *inner = items.items[0]->a;
        /* Keep the parentheses in the span: `(a + b)` reports as written. */
        if (inner) inner->loc = loc;
        return inner;
    }
    AstNode *n = mk(ps, AST_TUPLE, loc);
    for (int i = 0; i < items.len; i++) push(ps, &n->list, items.items[i]->a);
    return n;
}

}

%define api.pure full
%define api.location.type {SrcLoc}
%locations
%define parse.error custom
%define parse.lac full
%param {yyscan_t scanner}
%parse-param {ParseState *ps}

%initial-action {
    @$ = (SrcLoc){ps->file, 1, 1, 1, 0};
}

%union {
    AstNode *node;
    const char *str;
    int64_t ival;
    double fval;
    AstList list;
    AstOp op;
}

%token <str>  IDENT    "identifier"
%token <ival> INT      "integer"
%token <fval> FLOAT    "number"
%token <node> STRING   "string"
%token NEWLINE  "end of line"
%token LET      "'let'"
%token FN       "'fn'"
%token MODEL    "'model'"
%token IF       "'if'"
%token ELSE     "'else'"
%token WHILE    "'while'"
%token FOR      "'for'"
%token IN       "'in'"
%token BREAK    "'break'"
%token CONTINUE "'continue'"
%token RETURN   "'return'"
%token TRUE     "'true'"
%token FALSE    "'false'"
%token NONE     "'none'"
%token AND      "'and'"
%token OR       "'or'"
%token NOT      "'not'"
%token PROFILE  "'profile'"
%token IMPORT   "'import'"
%token EQ       "'=='"
%token NE       "'!='"
%token LE       "'<='"
%token GE       "'>='"
%token POW      "'**'"
%token DOTDOT   "'..'"
%token ELLIPSIS "'...'"
%token ARROW    "'->'"
%token PLUSEQ   "'+='"
%token MINUSEQ  "'-='"
%token STAREQ   "'*='"
%token SLASHEQ  "'/='"
/* containers, strings and floor division (issue 10) */
%token NOTIN    "'not in'"
%token FLOORDIV "'//'"
%token FLOORDIVEQ "'//='"

/* Lowest first. The conditional expression `a if c else b` is below
 * `or`, right-nested as in Python (`a if c else b if d else e`). */
%right IF ELSE
%left OR
%left AND
%precedence NOT
%nonassoc EQ NE '<' LE '>' GE IN NOTIN
%nonassoc DOTDOT
%left '+' '-'
%left '*' '/' '%' '@' FLOORDIV
%precedence UMINUS
%right POW

%type <node> stmt if_stmt else_part block fn_def model_def model_body decl
%type <node> targets let_stmt expr postfix primary arg sub opt_expr type dim param
%type <node> opt_type opt_default opt_ret
%type <list> stmts stmt_list decls decl_list call_args arg_list subs sub_list
%type <list> params param_list dims dim_list exprs names
%type <op> assign_op
%type <node> import_stmt
%type <str> keyword

%%

/* ---- statements ---- */

program
    : opt_seps stmts {
        AstNode *p = mk(ps, AST_PROGRAM, @$);
        p->loc.line = 1;
        p->loc.col = 1;
        p->list = $2;
        ps->result = p;
    }
    ;

stmts
    : %empty                  { $$ = (AstList){0}; }
    | stmt_list opt_seps      { $$ = $1; }
    ;

stmt_list
    : stmt                    { $$ = list1(ps, $1); }
    | stmt_list seps stmt     { $$ = $1; push(ps, &$$, $3); }
    ;

seps: sep | seps sep ;
/* After an error, the end of a statement is a fresh start: report the next
 * error even if fewer than three tokens were read since. */
sep: NEWLINE { yyerrok; } | ';' { yyerrok; } ;
opt_seps: %empty | seps ;

stmt
    : expr {
        $$ = mk(ps, AST_EXPR_STMT, @$);
        $$->a = $1;
        if ($1->kind == AST_PROFILE) $$ = $1; /* the statement form: prints its table */
        if (!ps->repl && $1->kind == AST_UNARY && $1->op == AOP_NEG)
            diag_warning(@1, "this line starts with '-' and is a statement of its own; to "
                             "continue the previous line, end that line with the operator");
    }
    | expr '=' expr           { $$ = mk_assign(ps, AOP_NONE, $1, $3, @$, @2); }
    | expr assign_op expr     { $$ = mk_assign(ps, $2, $1, $3, @$, @2); }
    | let_stmt
    | if_stmt
    | WHILE expr block        { $$ = mk(ps, AST_WHILE, @$); $$->a = $2; $$->b = $3; }
    | WHILE error block       { $$ = NULL; }
    | WHILE error             { $$ = NULL; }
    | FOR targets IN expr block {
        $$ = mk(ps, AST_FOR, @$);
        set_targets(ps, $$, $2);
        $$->a = $4;
        $$->b = $5;
    }
    | FOR error block         { $$ = NULL; }
    | FOR error               { $$ = NULL; }
    | BREAK                   { $$ = mk(ps, AST_BREAK, @$); }
    | CONTINUE                { $$ = mk(ps, AST_CONTINUE, @$); }
    | RETURN                  { $$ = mk(ps, AST_RETURN, @$); }
    | RETURN expr             { $$ = mk(ps, AST_RETURN, @$); $$->a = $2; }
    | fn_def
    | model_def
    | import_stmt
    /* Error recovery: skip to the end of the statement, or to a '{' and
     * parse the block after it (so `if x = 3 { ... }` reports one error). */
    | error                   { $$ = NULL; }
    | error block             { $$ = NULL; }
    ;

assign_op
    : PLUSEQ                  { $$ = AOP_ADD; }
    | MINUSEQ                 { $$ = AOP_SUB; }
    | STAREQ                  { $$ = AOP_MUL; }
    | SLASHEQ                 { $$ = AOP_DIV; }
    | FLOORDIVEQ              { $$ = AOP_FLOORDIV; }
    ;

let_stmt
    : LET targets opt_type '=' expr {
        $$ = mk(ps, AST_LET, @$);
        set_targets(ps, $$, $2);
        $$->type = $3;
        $$->a = $5;
    }
    ;

/* import "path.tt" / import "path.tt" as name (`as` is not reserved) */
import_stmt
    : IMPORT STRING {
        $$ = mk(ps, AST_IMPORT, @$);
        $$->a = $2;
        $$->a->loc = @2;
    }
    | IMPORT STRING IDENT IDENT {
        if (strcmp($3, "as") != 0)
            parse_error(ps, @3, "expected 'as' or the end of the import, got '%s'", $3);
        $$ = mk(ps, AST_IMPORT, @$);
        $$->a = $2;
        $$->a->loc = @2;
        $$->str = $4;
    }
    ;

targets
    : IDENT                   { $$ = mk_name(ps, $1, @1); }
    | '(' names opt_comma ')' { $$ = mk(ps, AST_TUPLE, @$); $$->list = $2; }
    ;

names
    : IDENT                   { $$ = list1(ps, mk_name(ps, $1, @1)); }
    | names ',' IDENT         { $$ = $1; push(ps, &$$, mk_name(ps, $3, @3)); }
    ;

opt_comma: %empty | ',' ;

if_stmt
    : IF expr block else_part {
        $$ = mk(ps, AST_IF, @$);
        $$->a = $2;
        $$->b = $3;
        $$->c = $4;
    }
    | IF error block else_part { $$ = NULL; }
    | IF error                { $$ = NULL; }
    ;

else_part
    : %empty                  { $$ = NULL; }
    | ELSE block              { $$ = $2; }
    | ELSE if_stmt            { $$ = $2; }
    ;

block
    : '{' opt_seps stmts '}'  { $$ = mk(ps, AST_BLOCK, @$); $$->list = $3; }
    ;

fn_def
    : FN IDENT '(' params ')' opt_ret block {
        $$ = mk(ps, AST_FN, @$);
        $$->str = $2;
        $$->list = $4;
        $$->type = $6;
        $$->b = $7;
    }
    | FN error block          { $$ = NULL; }
    | FN error                { $$ = NULL; }
    ;

opt_ret
    : %empty                  { $$ = NULL; }
    | ARROW type              { $$ = $2; }
    ;

params
    : %empty                  { $$ = (AstList){0}; }
    | param_list opt_comma    { $$ = $1; }
    ;

param_list
    : param                   { $$ = list1(ps, $1); }
    | param_list ',' param    { $$ = $1; push(ps, &$$, $3); }
    ;

param
    : IDENT opt_type opt_default {
        $$ = mk(ps, AST_PARAMDEF, @$);
        $$->str = $1;
        $$->type = $2;
        $$->a = $3;
    }
    | keyword opt_type opt_default {
        parse_error(ps, @1, "'%s' is a keyword and cannot be a parameter name", $1);
        $$ = mk(ps, AST_PARAMDEF, @$);
        $$->str = $1;
        $$->type = $2;
        $$->a = $3;
    }
    ;

opt_type
    : %empty                  { $$ = NULL; }
    | ':' type                { $$ = $2; }
    ;

opt_default
    : %empty                  { $$ = NULL; }
    | '=' expr                { $$ = $2; }
    ;

/* f32[B, 64], f32[..., fan_in], int */
type
    : IDENT                   { $$ = mk(ps, AST_TYPE, @$); $$->str = $1; }
    | IDENT '[' dims ']'      { $$ = mk(ps, AST_TYPE, @$); $$->str = $1; $$->list = $3; $$->ival = 1; }
    ;

dims
    : %empty                  { $$ = (AstList){0}; }
    | dim_list opt_comma      { $$ = $1; }
    ;

dim_list
    : dim                     { $$ = list1(ps, $1); }
    | dim_list ',' dim        { $$ = $1; push(ps, &$$, $3); }
    ;

dim
    : expr
    | ELLIPSIS                { $$ = mk(ps, AST_ELLIPSIS, @$); }
    ;

/* ---- models ---- */

model_def
    : MODEL IDENT '(' params ')' model_body {
        $$ = mk(ps, AST_MODEL, @$);
        $$->str = $2;
        $$->list = $4;
        $$->b = $6;
    }
    | MODEL IDENT model_body {
        $$ = mk(ps, AST_MODEL, @$);
        $$->str = $2;
        $$->b = $3;
    }
    | MODEL error model_body  { $$ = NULL; }
    | MODEL error             { $$ = NULL; }
    ;

model_body
    : '{' opt_seps decls '}'  { $$ = mk(ps, AST_BLOCK, @$); $$->list = $3; }
    ;

decls
    : %empty                  { $$ = (AstList){0}; }
    | decl_list opt_seps      { $$ = $1; }
    ;

decl_list
    : decl                    { $$ = list1(ps, $1); }
    | decl_list seps decl     { $$ = $1; push(ps, &$$, $3); }
    ;

decl
    : IDENT IDENT opt_type '=' expr {
        /* `param` and `buffer` are not reserved words: identifiers here. */
        bool buffer = strcmp($1, "buffer") == 0;
        if (strcmp($1, "param") != 0 && !buffer)
            parse_error(ps, @1,
                        "unknown declaration '%s %s': a model body holds 'param NAME = e', "
                        "'buffer NAME = e', 'NAME = e', 'let' and methods",
                        $1, $2);
        $$ = mk(ps, AST_PARAM_DECL, @$);
        $$->ival = buffer;
        $$->str = $2;
        $$->type = $3;
        $$->a = $5;
    }
    | IDENT '=' expr          { $$ = mk(ps, AST_FIELD, @$); $$->str = $1; $$->a = $3; }
    | keyword '=' expr {
        parse_error(ps, @1, "'%s' is a keyword and cannot be a field name", $1);
        $$ = mk(ps, AST_FIELD, @$);
        $$->str = $1;
        $$->a = $3;
    }
    | IDENT '(' params ')' opt_ret block {
        $$ = mk(ps, AST_FN, @$);
        $$->str = $1;
        $$->list = $3;
        $$->type = $5;
        $$->b = $6;
    }
    | fn_def
    | let_stmt
    | error                   { $$ = NULL; }
    | error block             { $$ = NULL; }
    ;

/* ---- expressions ---- */

expr
    : postfix
    | '-' expr %prec UMINUS   { $$ = mk_unary(ps, AOP_NEG, $2, @$, @1); }
    | NOT expr                { $$ = mk_unary(ps, AOP_NOT, $2, @$, @1); }
    | expr OR expr            { $$ = mk_binary(ps, AOP_OR, $1, $3, @$, @2); }
    | expr AND expr           { $$ = mk_binary(ps, AOP_AND, $1, $3, @$, @2); }
    | expr EQ expr            { $$ = mk_binary(ps, AOP_EQ, $1, $3, @$, @2); }
    | expr NE expr            { $$ = mk_binary(ps, AOP_NE, $1, $3, @$, @2); }
    | expr '<' expr           { $$ = mk_binary(ps, AOP_LT, $1, $3, @$, @2); }
    | expr LE expr            { $$ = mk_binary(ps, AOP_LE, $1, $3, @$, @2); }
    | expr '>' expr           { $$ = mk_binary(ps, AOP_GT, $1, $3, @$, @2); }
    | expr GE expr            { $$ = mk_binary(ps, AOP_GE, $1, $3, @$, @2); }
    | expr DOTDOT expr {
        $$ = mk(ps, AST_RANGE, @$);
        $$->a = $1;
        $$->b = $3;
        at_op($$, @2);
    }
    | expr '+' expr           { $$ = mk_binary(ps, AOP_ADD, $1, $3, @$, @2); }
    | expr '-' expr           { $$ = mk_binary(ps, AOP_SUB, $1, $3, @$, @2); }
    | expr '*' expr           { $$ = mk_binary(ps, AOP_MUL, $1, $3, @$, @2); }
    | expr '/' expr           { $$ = mk_binary(ps, AOP_DIV, $1, $3, @$, @2); }
    | expr '%' expr           { $$ = mk_binary(ps, AOP_MOD, $1, $3, @$, @2); }
    | expr '@' expr           { $$ = mk_binary(ps, AOP_MATMUL, $1, $3, @$, @2); }
    | expr POW expr           { $$ = mk_binary(ps, AOP_POW, $1, $3, @$, @2); }
    /* issue 10: floor division, membership, the conditional expression */
    | expr FLOORDIV expr      { $$ = mk_binary(ps, AOP_FLOORDIV, $1, $3, @$, @2); }
    | expr IN expr            { $$ = mk_binary(ps, AOP_IN, $1, $3, @$, @2); }
    | expr NOTIN expr         { $$ = mk_binary(ps, AOP_NOT_IN, $1, $3, @$, @2); }
    | expr IF expr ELSE expr {
        $$ = mk(ps, AST_IFEXPR, @$);
        $$->a = $1;
        $$->b = $3;
        $$->c = $5;
        at_op($$, @2);
    }
    ;

postfix
    : primary
    | postfix '(' call_args ')' {
        $$ = mk(ps, AST_CALL, @$);
        $$->a = $1;
        $$->list = $3;
        at_op($$, @2);
        check_args(ps, &$3);
    }
    | postfix '[' subs ']' {
        $$ = mk(ps, AST_INDEX, @$);
        $$->a = $1;
        $$->list = $3;
        at_op($$, @2);
    }
    | postfix '.' IDENT {
        $$ = mk(ps, AST_MEMBER, @$);
        $$->a = $1;
        $$->str = $3;
        at_op($$, @2);
    }
    ;

call_args
    : %empty                  { $$ = (AstList){0}; }
    | arg_list opt_comma      { $$ = $1; }
    ;

arg_list
    : arg                     { $$ = list1(ps, $1); }
    | arg_list ',' arg        { $$ = $1; push(ps, &$$, $3); }
    ;

arg
    : expr                    { $$ = mk(ps, AST_ARG, @$); $$->a = $1; }
    | IDENT '=' expr          { $$ = mk(ps, AST_ARG, @$); $$->str = $1; $$->a = $3; }
    /* `f(in=3)`, `(if=1)`: reported by check_args or mk_paren, which know
     * whether this is an argument or a record field (ival = 1 marks it) */
    | keyword '=' expr {
        $$ = mk(ps, AST_ARG, @1); /* the message points at the keyword */
        $$->str = $1;
        $$->a = $3;
        $$->ival = 1;
    }
    ;

/* A keyword where a name was expected: its spelling, for the message. */
keyword
    : LET { $$ = "let"; } | FN { $$ = "fn"; } | MODEL { $$ = "model"; } | IF { $$ = "if"; }
    | ELSE { $$ = "else"; } | WHILE { $$ = "while"; } | FOR { $$ = "for"; } | IN { $$ = "in"; }
    | BREAK { $$ = "break"; } | CONTINUE { $$ = "continue"; } | RETURN { $$ = "return"; }
    | TRUE { $$ = "true"; } | FALSE { $$ = "false"; } | NONE { $$ = "none"; }
    | AND { $$ = "and"; } | OR { $$ = "or"; } | NOT { $$ = "not"; }
    | PROFILE { $$ = "profile"; } | IMPORT { $$ = "import"; }
    ;

subs
    : sub_list opt_comma      { $$ = $1; }
    ;

sub_list
    : sub                     { $$ = list1(ps, $1); }
    | sub_list ',' sub        { $$ = $1; push(ps, &$$, $3); }
    ;

/* x, lo:hi, lo:hi:step (each part optional), ... */
sub
    : expr
    | ELLIPSIS                { $$ = mk(ps, AST_ELLIPSIS, @$); }
    | opt_expr ':' opt_expr {
        $$ = mk(ps, AST_SLICE, @$);
        $$->a = $1;
        $$->b = $3;
    }
    | opt_expr ':' opt_expr ':' opt_expr {
        $$ = mk(ps, AST_SLICE, @$);
        $$->a = $1;
        $$->b = $3;
        $$->c = $5;
    }
    ;

opt_expr
    : %empty                  { $$ = NULL; }
    | expr
    ;

primary
    : INT                     { $$ = mk(ps, AST_INT, @$); $$->ival = $1; }
    | FLOAT                   { $$ = mk(ps, AST_FLOAT, @$); $$->fval = $1; }
    | STRING                  { $$ = $1; $$->loc = @1; }
    | TRUE                    { $$ = mk(ps, AST_BOOL, @$); $$->ival = 1; }
    | FALSE                   { $$ = mk(ps, AST_BOOL, @$); $$->ival = 0; }
    | NONE                    { $$ = mk(ps, AST_NONE, @$); }
    | IDENT                   { $$ = mk_name(ps, $1, @$); }
    | '(' ')'                 { $$ = mk(ps, AST_TUPLE, @$); }
    | '(' arg_list ')'        { $$ = mk_paren(ps, $2, false, @$); }
    | '(' arg_list ',' ')'    { $$ = mk_paren(ps, $2, true, @$); }
    | '[' ']'                 { $$ = mk(ps, AST_LIST, @$); }
    | '[' exprs opt_comma ']' { $$ = mk(ps, AST_LIST, @$); $$->list = $2; }
    | '[' expr ';' expr ']'   { $$ = mk(ps, AST_REPEAT, @$); $$->a = $2; $$->b = $4; }
    /* profile { ... } is an expression (its record); alone on a line it is
     * the statement that prints its table (see stmt) */
    | PROFILE block           { $$ = mk(ps, AST_PROFILE, @$); $$->b = $2; }
    ;

exprs
    : expr                    { $$ = list1(ps, $1); }
    | exprs ',' expr          { $$ = $1; push(ps, &$$, $3); }
    ;

%%

/* ---- errors ---- */

void parse_error(ParseState *ps, SrcLoc loc, const char *fmt, ...) {
    if (ps->stop) return;
    if (ps->nerrors >= TT_PARSE_MAX_ERRORS) {
        ps->stop = true;
        diag_note(loc, "too many errors; stopping here");
        return;
    }
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    diag_error(loc, "%s", buf);
    ps->nerrors++;
}

static void yyerror(YYLTYPE *loc, yyscan_t scanner, ParseState *ps, const char *msg) {
    (void)scanner;
    if (strstr(msg, "exhausted"))
        parse_error(ps, *loc, "the program is nested too deeply");
    else
        parse_error(ps, *loc, "%s", msg);
}

/* The character of a one-character token such as '+', else 0. */
static int sym_char(yysymbol_kind_t k) {
    const char *s = yysymbol_name(k);
    return s[0] == '\'' && s[1] && s[2] == '\'' && !s[3] ? s[1] : 0;
}

/* Token classes for readable "expected ..." lists. */
static bool starts_expr(yysymbol_kind_t k) {
    switch (k) {
    case YYSYMBOL_IDENT: case YYSYMBOL_INT: case YYSYMBOL_FLOAT: case YYSYMBOL_STRING:
    case YYSYMBOL_TRUE: case YYSYMBOL_FALSE: case YYSYMBOL_NONE: case YYSYMBOL_NOT:
        return true;
    default: {
        int c = sym_char(k);
        return c && strchr("-([", c);
    }
    }
}

static bool starts_stmt(yysymbol_kind_t k) {
    switch (k) {
    case YYSYMBOL_LET: case YYSYMBOL_FN: case YYSYMBOL_MODEL: case YYSYMBOL_IF:
    case YYSYMBOL_WHILE: case YYSYMBOL_FOR: case YYSYMBOL_BREAK: case YYSYMBOL_CONTINUE:
    case YYSYMBOL_RETURN: case YYSYMBOL_PROFILE: case YYSYMBOL_IMPORT:
        return true;
    default:
        return starts_expr(k);
    }
}

/* Operators that may follow an operand: listing them helps nobody. */
static bool is_operator(yysymbol_kind_t k) {
    switch (k) {
    case YYSYMBOL_OR: case YYSYMBOL_AND: case YYSYMBOL_EQ: case YYSYMBOL_NE:
    case YYSYMBOL_LE: case YYSYMBOL_GE: case YYSYMBOL_POW: case YYSYMBOL_DOTDOT:
    case YYSYMBOL_PLUSEQ: case YYSYMBOL_MINUSEQ: case YYSYMBOL_STAREQ: case YYSYMBOL_SLASHEQ:
    case YYSYMBOL_FLOORDIV: case YYSYMBOL_FLOORDIVEQ: case YYSYMBOL_IN: case YYSYMBOL_NOTIN:
    case YYSYMBOL_IF:
        return true;
    default: {
        int c = sym_char(k);
        return c && strchr("<>+-*/%@([.=", c);
    }
    }
}

/* "identifier", "'+'", "end of line": bison's names without its quotes. */
static void sym_desc(char *buf, size_t n, yysymbol_kind_t k) {
    const char *s = yysymbol_name(k);
    size_t len = strlen(s);
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"')
        snprintf(buf, n, "%.*s", (int)(len - 2), s + 1);
    else
        snprintf(buf, n, "%s", s);
}

static void sb_list_item(StrBuf *sb, int i, int count, const char *item) {
    if (i > 0) sb_puts(sb, i == count - 1 ? " or " : ", ");
    sb_puts(sb, item);
}

static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, ParseState *ps) {
    (void)scanner;
    yysymbol_kind_t tok = yypcontext_token(ctx);
    SrcLoc loc = *yypcontext_location(ctx);
    /* After an unclosed bracket or string was reported at the end of the
     * input, the parse errors it causes there say nothing new. */
    if (ps->stop || (ps->at_eof && ps->eof_reported)) return 0;

    StrBuf sb = {0};
    sb_puts(&sb, "syntax error: unexpected ");
    char name[64];
    if (tok == YYSYMBOL_IDENT || tok == YYSYMBOL_INT || tok == YYSYMBOL_FLOAT) {
        sym_desc(name, sizeof name, tok);
        int n = loc.end_line == loc.line ? loc.end_col - loc.col + 1 : 0;
        const char *p = NULL;
        /* quote the token's text from the source when it is short */
        if (n > 0 && n <= 32) {
            const char *q = ps->text, *end = ps->text + ps->len;
            for (int l = 1; l < loc.line && q < end; q++)
                if (*q == '\n') l++;
            if (q + loc.col - 1 + n <= end) p = q + loc.col - 1;
        }
        if (p)
            sb_printf(&sb, "%s '%.*s'", name, n, p);
        else
            sb_puts(&sb, name);
    } else {
        sym_desc(name, sizeof name, tok);
        sb_puts(&sb, name);
    }

    enum { MAXEXP = 64 };
    yysymbol_kind_t exp[MAXEXP];
    int nexp = yypcontext_expected_tokens(ctx, exp, MAXEXP);
    if (nexp < 0) nexp = 0;
    bool has_ident = false, has_int = false, has_let = false, has_plus = false, has_nl = false;
    for (int i = 0; i < nexp; i++) {
        has_nl |= exp[i] == YYSYMBOL_NEWLINE;
        has_ident |= exp[i] == YYSYMBOL_IDENT;
        has_int |= exp[i] == YYSYMBOL_INT;
        has_let |= exp[i] == YYSYMBOL_LET;
        has_plus |= sym_char(exp[i]) == '+';
    }
    bool want_stmt = has_let && has_int;
    bool want_expr = !want_stmt && has_ident && has_int;
    const char *items[MAXEXP + 2];
    char names[MAXEXP][40];
    int nitems = 0;
    if (want_stmt) items[nitems++] = "statement";
    if (want_expr) items[nitems++] = "expression";
    bool dropped_ops = false;
    for (int i = 0; i < nexp; i++) {
        yysymbol_kind_t k = exp[i];
        if (want_stmt && starts_stmt(k)) continue;
        if (want_expr && starts_expr(k)) continue;
        /* "end of line" says it: ';' and the end of the file are implied */
        bool is_sep = k == YYSYMBOL_NEWLINE || k == YYSYMBOL_YYEOF || sym_char(k) == ';';
        if (is_sep && (want_stmt || (has_nl && k != YYSYMBOL_NEWLINE))) continue;
        if (has_plus && is_operator(k)) {
            dropped_ops = true;
            continue;
        }
        sym_desc(names[i], sizeof names[i], k);
        items[nitems++] = names[i];
    }
    if (nitems == 0 && dropped_ops) items[nitems++] = "an operator";
    if (nitems > 0 && nitems <= 6) {
        sb_puts(&sb, ", expected ");
        for (int i = 0; i < nitems; i++) sb_list_item(&sb, i, nitems, items[i]);
    }
    if (sym_char(tok) == '=')
        sb_puts(&sb, " (to compare, write '=='; assignment is a statement of its own)");
    else if (tok == YYSYMBOL_ELSE)
        sb_puts(&sb, " ('else' goes right after the '}' of an 'if')");
    else if (has_plus && (tok == YYSYMBOL_EQ || tok == YYSYMBOL_NE || tok == YYSYMBOL_LE ||
                          tok == YYSYMBOL_GE || tok == YYSYMBOL_IN || tok == YYSYMBOL_NOTIN ||
                          sym_char(tok) == '<' || sym_char(tok) == '>'))
        sb_puts(&sb, " (comparisons do not chain: write 'a < b and b < c')");
    else if (tok == YYSYMBOL_DOTDOT && has_plus)
        sb_puts(&sb, " (ranges do not chain)");
    else if (ps->stray_closer)
        sb_printf(&sb, " (no matching '%c' is open)",
                  sym_char(tok) == ')' ? '(' : sym_char(tok) == ']' ? '[' : '{');
    parse_error(ps, loc, "%s", sb.s);
    sb_free(&sb);
    return 0;
}

/* ---- the newline filter ---- */

/* Tokens after which a newline cannot end a statement. */
static bool continues_line(int tok) {
    switch (tok) {
    case '+': case '-': case '*': case '/': case '%': case '@': case POW:
    case EQ: case NE: case '<': case LE: case '>': case GE:
    case AND: case OR: case NOT:
    case ',': case '=': case '.': case ':': case DOTDOT: case ARROW: case IN: case '{':
    case PLUSEQ: case MINUSEQ: case STAREQ: case SLASHEQ:
    case FLOORDIV: case FLOORDIVEQ: case NOTIN: case ELSE: /* `a if c else` + newline */
        return true;
    default:
        return false;
    }
}

static int closer_of(int open) { return open == '(' ? ')' : open == '[' ? ']' : '}'; }

static int next_raw(ParseState *ps, YYSTYPE *lval, SrcLoc *lloc, yyscan_t scanner) {
    if (ps->npending) {
        ps->npending = 0;
        *lval = ps->pending[0].val;
        *lloc = ps->pending[0].loc;
        return ps->pending[0].tok;
    }
    if (ps->at_eof) return YYEOF;
    int t = tt_rawlex(lval, lloc, scanner);
    if (t == YYEOF) {
        ps->at_eof = true;
    } else if (t != NEWLINE) {
        ps->last_loc = *lloc;
    }
    return t;
}

static SrcLoc eof_loc(const ParseState *ps) {
    SrcLoc l = ps->last_loc;
    if (!l.file) return (SrcLoc){ps->file, 1, 1, 1, 1};
    l.line = l.end_line;
    l.col = l.end_col + 1;
    l.end_line = l.line;
    l.end_col = l.col;
    return l;
}

int yylex(YYSTYPE *lval, YYLTYPE *lloc, yyscan_t scanner) {
    ParseState *ps = yyget_extra(scanner);
    for (;;) {
        if (ps->stop) {
            *lloc = eof_loc(ps);
            return YYEOF;
        }
        int t = next_raw(ps, lval, lloc, scanner);
        ps->stray_closer = false;
        switch (t) {
        case '(': case '[': case '{': {
            Bracket b = {t, *lloc};
            TT_VEC_PUSH(ps->brackets, ps->nbrackets, ps->capbrackets, b);
            break;
        }
        case ')': case ']': case '}': {
            /* Pop to the matching bracket; a stray closer leaves the stack
             * alone (the parser reports it). */
            ps->stray_closer = true;
            for (int i = ps->nbrackets - 1; i >= 0; i--) {
                if (closer_of(ps->brackets[i].ch) == t) {
                    ps->nbrackets = i;
                    ps->stray_closer = false;
                    break;
                }
            }
            ps->prev = t;
            return t;
        }
        case NEWLINE: {
            if (ps->nbrackets > 0 && ps->brackets[ps->nbrackets - 1].ch != '{') continue;
            if (ps->prev == 0 || ps->prev == NEWLINE || ps->prev == ';' ||
                continues_line(ps->prev))
                continue;
            /* Peek past blank lines: `else` and `{` continue the statement. */
            Pending p;
            do p.tok = next_raw(ps, &p.val, &p.loc, scanner);
            while (p.tok == NEWLINE);
            ps->pending[0] = p;
            ps->npending = 1;
            if (p.tok == ELSE || p.tok == '{') continue;
            break;
        }
        case YYEOF:
            *lloc = eof_loc(ps);
            if (ps->nbrackets > 0) {
                /* Report every unclosed bracket where it opened, then close
                 * them so the parse can finish. */
                if (!ps->eof_reported) {
                    for (int i = 0; i < ps->nbrackets; i++)
                        parse_error(ps, ps->brackets[i].loc, "unclosed '%c'",
                                    ps->brackets[i].ch);
                    ps->eof_reported = true;
                }
                t = closer_of(ps->brackets[--ps->nbrackets].ch);
            }
            break;
        default:
            break;
        }
        ps->prev = t;
        return t;
    }
}

/* ---- entry points ---- */

AstNode *parse_source(Arena *ar, const char *name, const char *text, size_t len, int *nerrors) {
    ParseState ps = {0};
    ps.arena = ar;
    ps.file = diag_add_file(name, text, len);
    ps.text = text;
    ps.len = len;
    ps.repl = name[0] == '<';
    ps.line = ps.col = 1;

    yyscan_t scanner;
    if (yylex_init_extra(&ps, &scanner) != 0) TT_UNREACHABLE();
    /* A final newline lets every rule see the character after a token. */
    char *buf = tt_xmalloc(len + 1);
    if (len) memcpy(buf, text, len);
    buf[len] = '\n';
    YY_BUFFER_STATE b = yy_scan_bytes(buf, (int)(len + 1), scanner);
    yyparse(scanner, &ps);
    yy_delete_buffer(b, scanner);
    yylex_destroy(scanner);
    free(buf);
    free(ps.brackets);

    AstNode *prog = ps.result;
    if (!prog) prog = ast_new(ar, AST_PROGRAM, (SrcLoc){ps.file, 1, 1, 1, 1});
    if (nerrors) *nerrors = ps.nerrors;
    return prog;
}
