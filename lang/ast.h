/* ast.h - the abstract syntax tree produced by parser.y.
 *
 * One node struct for every kind (chibicc style); the comment on each kind
 * says which fields it uses. Nodes live in the Arena of one parse and are
 * never freed one by one. Every node carries its source span.
 */
#ifndef TT_AST_H
#define TT_AST_H

#include "diag.h"
#include "util.h"

typedef enum AstKind {
    /* -- expressions -- */
    AST_INT,      /* ival */
    AST_FLOAT,    /* fval */
    AST_STR,      /* str: the decoded string (escapes resolved), len in ival */
    AST_BOOL,     /* ival: 0 or 1 (`true`, `false`) */
    AST_NONE,     /* `none` */
    AST_NAME,     /* str: identifier */
    AST_UNARY,    /* op: AOP_NEG or AOP_NOT; a: operand */
    AST_BINARY,   /* op: AstOp; a: lhs; b: rhs */
    AST_RANGE,    /* a..b: a, b */
    AST_CALL,     /* a: callee; list: arguments (AST_ARG) */
    AST_ARG,      /* str: keyword name or NULL if positional; a: value */
    AST_INDEX,    /* a: base; list: subscripts (expr, AST_SLICE, AST_ELLIPSIS) */
    AST_SLICE,    /* lo:hi:step; a, b, c each may be NULL */
    AST_ELLIPSIS, /* `...` inside [] or in a type */
    AST_MEMBER,   /* a: base; str: member name */
    AST_LIST,     /* [x, y, z]: list: items */
    AST_TUPLE,    /* (x, y) or (x,): list: items */
    AST_RECORD,   /* (ms=1.5, mb=3): list: AST_ARG with str set */
    AST_REPEAT,   /* [e; n]: a: element expression (evaluated n times); b: n */
    AST_TYPE,     /* str: base type name (f32, i32, i8, int, float, bool, str,
                   * or any identifier); list: dims (exprs / AST_ELLIPSIS) or
                   * empty with ival == 0 when the type has no [...] part;
                   * ival == 1 when a [...] part was written */
    AST_IFEXPR,   /* `a if cond else b`: a: value when true; b: cond; c: value
                   * when false (only the branch taken is evaluated) */

    /* -- statements -- */
    AST_LET,       /* let x = e / let (a, b) = e: list: target names (AST_NAME);
                    * ival: 1 if the targets were written as a tuple; a: value;
                    * type: optional annotation (let x: f32[2] = ...) */
    AST_ASSIGN,    /* a: target (AST_NAME, AST_MEMBER, AST_INDEX); b: value;
                    * op: AOP_NONE for '=', else AOP_ADD/AOP_SUB/AOP_MUL/AOP_DIV/
                    * AOP_FLOORDIV for += -= *= /= //= */
    AST_EXPR_STMT, /* a: expression */
    AST_IF,        /* a: cond; b: then (AST_BLOCK); c: else (AST_BLOCK, AST_IF, or NULL) */
    AST_WHILE,     /* a: cond; b: body */
    AST_FOR,       /* list: loop variables (AST_NAME; several for `for (x, y) in`);
                    * ival: 1 if written as a tuple; a: iterable; b: body */
    AST_BREAK,
    AST_CONTINUE,
    AST_RETURN,     /* a: value or NULL */
    AST_BLOCK,      /* list: statements */
    AST_PROFILE,    /* profile { ... }: b: block */
    AST_IMPORT,     /* import "path.tt" [as name]: a: the path (AST_STR); str: the
                     * name after `as`, or NULL (the module's names come in) */
    AST_FN,         /* fn name(params) -> type { body }, also model methods:
                     * str: name; list: AST_PARAMDEF; type: return type or NULL;
                     * b: body (AST_BLOCK) */
    AST_PARAMDEF,   /* a function/model parameter: str: name; type: annotation or
                     * NULL; a: default value or NULL */
    AST_MODEL,      /* model Name(params) { decls }: str: name; list: AST_PARAMDEF
                     * (empty when written without parentheses); b: AST_BLOCK of
                     * declarations: AST_PARAM_DECL, AST_FIELD, AST_LET, AST_FN */
    AST_PARAM_DECL, /* param name = e (inside a model): str: name; a: value;
                       ival: 1 for `buffer name = e` (a non-trainable state tensor);
                     * type: optional annotation */
    AST_FIELD,      /* name = e (inside a model): submodule or other member: str; a */
    AST_PROGRAM,    /* list: top-level statements */
    AST__COUNT
} AstKind;

/* Operators of AST_UNARY, AST_BINARY and compound AST_ASSIGN. */
typedef enum AstOp {
    AOP_NONE,
    AOP_ADD,
    AOP_SUB,
    AOP_MUL,
    AOP_DIV,
    AOP_MOD,
    AOP_MATMUL,
    AOP_POW,
    AOP_EQ,
    AOP_NE,
    AOP_LT,
    AOP_LE,
    AOP_GT,
    AOP_GE,
    AOP_AND,
    AOP_OR,
    AOP_NEG,
    AOP_NOT,
    AOP_FLOORDIV, /* `//`, also `//=` */
    AOP_IN,       /* `x in c` */
    AOP_NOT_IN,   /* `x not in c` */
} AstOp;

typedef struct AstNode AstNode;

typedef struct AstList {
    AstNode **items;
    int len, cap;
} AstList;

struct AstNode {
    AstKind kind;
    AstOp op;
    SrcLoc loc; /* the whole span of the construct */
    /* Where the operator token is, for diagnostics that point at it: the
     * operator of AST_BINARY/AST_UNARY/AST_RANGE/AST_ASSIGN (= += ...), the '('
     * of AST_CALL, the '[' of AST_INDEX, the '.' of AST_MEMBER; else 0. */
    int op_line, op_col;
    int64_t ival;
    double fval;
    const char *str;
    AstNode *a, *b, *c;
    AstNode *type;
    AstList list;
};

/* Construction (used by the parser; allocations come from the arena). */
AstNode *ast_new(Arena *ar, AstKind kind, SrcLoc loc);
void ast_list_push(Arena *ar, AstList *l, AstNode *n);

const char *ast_kind_name(AstKind k);
const char *ast_op_str(AstOp op); /* "+", "@", "and", ... */

/* Prints the tree, one node per line, indented, with line:col (ttc --emit=ast). */
void ast_print(FILE *out, const AstNode *n);

/* -- parsing (parser.y) -- */

/* Parses a whole file or REPL entry. Syntax errors are reported through
 * diag_error (several per run, with recovery); returns the AST_PROGRAM
 * (possibly partial) and sets *nerrors. `name` must have been registered
 * with diag_add_file (the parser does that itself). */
AstNode *parse_source(Arena *ar, const char *name, const char *text, size_t len, int *nerrors);

/* True if text ends inside an unclosed (, [ or { or a string: the REPL
 * then asks for another line. */
bool parse_is_incomplete(const char *text, size_t len);

#endif
