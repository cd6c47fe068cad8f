/* ast.c - building and printing the syntax tree; the REPL's "is this input
 * complete?" check. */
#include "ast.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

AstNode *ast_new(Arena *ar, AstKind kind, SrcLoc loc) {
    AstNode *n = arena_alloc(ar, sizeof *n);
    n->kind = kind;
    n->loc = loc;
    return n;
}

void ast_list_push(Arena *ar, AstList *l, AstNode *n) {
    if (l->len == l->cap) {
        int cap = l->cap ? 2 * l->cap : 4;
        AstNode **items = arena_alloc(ar, (size_t)cap * sizeof *items);
        if (l->len) memcpy(items, l->items, (size_t)l->len * sizeof *items);
        l->items = items;
        l->cap = cap;
    }
    l->items[l->len++] = n;
}

static const char *const kind_names[AST__COUNT] = {
    [AST_INT] = "INT",
    [AST_FLOAT] = "FLOAT",
    [AST_STR] = "STR",
    [AST_BOOL] = "BOOL",
    [AST_NONE] = "NONE",
    [AST_NAME] = "NAME",
    [AST_UNARY] = "UNARY",
    [AST_BINARY] = "BINARY",
    [AST_RANGE] = "RANGE",
    [AST_CALL] = "CALL",
    [AST_ARG] = "ARG",
    [AST_INDEX] = "INDEX",
    [AST_SLICE] = "SLICE",
    [AST_ELLIPSIS] = "ELLIPSIS",
    [AST_MEMBER] = "MEMBER",
    [AST_LIST] = "LIST",
    [AST_TUPLE] = "TUPLE",
    [AST_RECORD] = "RECORD",
    [AST_REPEAT] = "REPEAT",
    [AST_TYPE] = "TYPE",
    [AST_IFEXPR] = "IFEXPR",
    [AST_LET] = "LET",
    [AST_ASSIGN] = "ASSIGN",
    [AST_EXPR_STMT] = "EXPR_STMT",
    [AST_IF] = "IF",
    [AST_WHILE] = "WHILE",
    [AST_FOR] = "FOR",
    [AST_BREAK] = "BREAK",
    [AST_CONTINUE] = "CONTINUE",
    [AST_RETURN] = "RETURN",
    [AST_BLOCK] = "BLOCK",
    [AST_PROFILE] = "PROFILE",
    [AST_IMPORT] = "IMPORT",
    [AST_FN] = "FN",
    [AST_PARAMDEF] = "PARAMDEF",
    [AST_MODEL] = "MODEL",
    [AST_PARAM_DECL] = "PARAM_DECL",
    [AST_FIELD] = "FIELD",
    [AST_PROGRAM] = "PROGRAM",
};

const char *ast_kind_name(AstKind k) {
    if ((unsigned)k >= AST__COUNT || !kind_names[k]) return "?";
    return kind_names[k];
}

const char *ast_op_str(AstOp op) {
    switch (op) {
    case AOP_NONE:
        return "";
    case AOP_ADD:
        return "+";
    case AOP_SUB:
        return "-";
    case AOP_MUL:
        return "*";
    case AOP_DIV:
        return "/";
    case AOP_MOD:
        return "%";
    case AOP_MATMUL:
        return "@";
    case AOP_POW:
        return "**";
    case AOP_EQ:
        return "==";
    case AOP_NE:
        return "!=";
    case AOP_LT:
        return "<";
    case AOP_LE:
        return "<=";
    case AOP_GT:
        return ">";
    case AOP_GE:
        return ">=";
    case AOP_AND:
        return "and";
    case AOP_OR:
        return "or";
    case AOP_NEG:
        return "-";
    case AOP_NOT:
        return "not";
    case AOP_FLOORDIV:
        return "//";
    case AOP_IN:
        return "in";
    case AOP_NOT_IN:
        return "not in";
    }
    return "?";
}

/* ---- printing: one node per line, children indented two spaces ---- */

static void print_str(FILE *o, const char *s, int64_t len) {
    fputc('"', o);
    for (int64_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '\n':
            fputs("\\n", o);
            break;
        case '\t':
            fputs("\\t", o);
            break;
        case '\r':
            fputs("\\r", o);
            break;
        case '\\':
            fputs("\\\\", o);
            break;
        case '"':
            fputs("\\\"", o);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(o, "\\x%02x", c);
            else
                fputc(c, o);
        }
    }
    fputc('"', o);
}

/* Shortest "%g" form that reads back as the same double. */
static void print_float(FILE *o, double v) {
    char buf[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v || isnan(v)) break;
    }
    fputs(buf, o);
    if (isfinite(v) && !strpbrk(buf, ".eE")) fputs(".0", o);
}

/* A dimension of a type, written inline when it is simple. */
static bool simple_dim(const AstNode *d) {
    return d->kind == AST_NAME || d->kind == AST_INT || d->kind == AST_ELLIPSIS;
}

static bool simple_type(const AstNode *t) {
    for (int i = 0; i < t->list.len; i++)
        if (!simple_dim(t->list.items[i])) return false;
    return true;
}

static void print_type_inline(FILE *o, const AstNode *t) {
    fputs(t->str ? t->str : "?", o);
    if (!t->ival) return;
    fputc('[', o);
    for (int i = 0; i < t->list.len; i++) {
        const AstNode *d = t->list.items[i];
        if (i) fputs(", ", o);
        if (d->kind == AST_NAME)
            fputs(d->str, o);
        else if (d->kind == AST_INT)
            fprintf(o, "%lld", (long long)d->ival);
        else
            fputs("...", o);
    }
    fputc(']', o);
}

static void print_names(FILE *o, const AstList *l, bool tuple) {
    if (tuple) fputc('(', o);
    for (int i = 0; i < l->len; i++) {
        if (i) fputs(", ", o);
        fputs(l->items[i] && l->items[i]->str ? l->items[i]->str : "?", o);
    }
    if (tuple) fputc(')', o);
}

/* Lines deeper than this stop moving right: they are indented as deep as
 * this and start with "@DEPTH ", so the output of a chain 70,000 deep grows
 * with the tree and not with its square. */
#define AST_INDENT_MAX 32

/* The node's own line (its children come on later lines). */
static void print_line(FILE *o, const AstNode *n, int depth, const char *label) {
    if (depth <= AST_INDENT_MAX)
        fprintf(o, "%*s", 2 * depth, "");
    else
        fprintf(o, "%*s@%d ", 2 * AST_INDENT_MAX, "", depth);
    if (label) fprintf(o, "%s: ", label);
    if (!n) {
        fputs("(missing)\n", o);
        return;
    }
    fputs(ast_kind_name(n->kind), o);
    /* the payload */
    switch (n->kind) {
    case AST_INT:
        fprintf(o, " %lld", (long long)n->ival);
        break;
    case AST_FLOAT:
        fputc(' ', o);
        print_float(o, n->fval);
        break;
    case AST_STR:
        fputc(' ', o);
        print_str(o, n->str ? n->str : "", n->ival);
        break;
    case AST_BOOL:
        fputs(n->ival ? " true" : " false", o);
        break;
    case AST_NAME:
    case AST_FN:
    case AST_MODEL:
    case AST_PARAM_DECL:
    case AST_FIELD:
    case AST_PARAMDEF:
        fprintf(o, " %s", n->str ? n->str : "?");
        if (n->kind == AST_PARAM_DECL && n->ival) fputs(" (buffer)", o);
        break;
    case AST_UNARY:
    case AST_BINARY:
        fprintf(o, " %s", ast_op_str(n->op));
        break;
    case AST_ARG:
        if (n->str) fprintf(o, " %s=", n->str);
        break;
    case AST_MEMBER:
        fprintf(o, " .%s", n->str ? n->str : "?");
        break;
    case AST_TYPE:
        fputc(' ', o);
        if (simple_type(n))
            print_type_inline(o, n);
        else
            fputs(n->str ? n->str : "?", o);
        break;
    case AST_LET:
    case AST_FOR:
        fputc(' ', o);
        print_names(o, &n->list, n->ival != 0);
        break;
    case AST_ASSIGN:
        fprintf(o, " %s=", ast_op_str(n->op));
        break;
    case AST_IMPORT:
        if (n->str) fprintf(o, " as %s", n->str);
        break;
    default:
        break;
    }
    fprintf(o, " %d:%d\n", n->loc.line, n->loc.col);
}

/* Nodes still to print, the next one last: an explicit stack instead of
 * recursion, so a left-associative chain as deep as it is long (70,000
 * terms) prints without running out of C stack. */
typedef struct PrintItem {
    const AstNode *n; /* NULL prints as (missing) */
    const char *label;
    int depth;
} PrintItem;

typedef struct PrintStack {
    PrintItem *items;
    int len, cap;
} PrintStack;

static void queue_node(PrintStack *s, const AstNode *n, int depth, const char *label) {
    PrintItem it = {n, label, depth};
    TT_VEC_PUSH(s->items, s->len, s->cap, it);
}

static void queue_list(PrintStack *s, const AstList *l, int depth, const char *label) {
    for (int i = 0; i < l->len; i++) queue_node(s, l->items[i], depth, label);
}

/* Queues the children of n, in order, labelled where their role is not
 * obvious. */
static void queue_children(PrintStack *q, const AstNode *n, int d) {
    switch (n->kind) {
    case AST_UNARY:
    case AST_ARG:
    case AST_EXPR_STMT:
    case AST_RETURN:
        if (n->a) queue_node(q, n->a, d, NULL);
        break;
    case AST_BINARY:
        queue_node(q, n->a, d, NULL);
        queue_node(q, n->b, d, NULL);
        break;
    case AST_RANGE:
        queue_node(q, n->a, d, "from");
        queue_node(q, n->b, d, "to");
        break;
    case AST_CALL:
        queue_node(q, n->a, d, "callee");
        queue_list(q, &n->list, d, NULL);
        break;
    case AST_INDEX:
        queue_node(q, n->a, d, "base");
        queue_list(q, &n->list, d, NULL);
        break;
    case AST_SLICE:
        if (n->a) queue_node(q, n->a, d, "lo");
        if (n->b) queue_node(q, n->b, d, "hi");
        if (n->c) queue_node(q, n->c, d, "step");
        break;
    case AST_MEMBER:
        queue_node(q, n->a, d, NULL);
        break;
    case AST_LIST:
    case AST_TUPLE:
    case AST_RECORD:
    case AST_BLOCK:
    case AST_PROGRAM:
        queue_list(q, &n->list, d, NULL);
        break;
    case AST_REPEAT:
        queue_node(q, n->a, d, "element");
        queue_node(q, n->b, d, "count");
        break;
    case AST_IFEXPR:
        queue_node(q, n->b, d, "cond");
        queue_node(q, n->a, d, "then");
        queue_node(q, n->c, d, "else");
        break;
    case AST_TYPE:
        if (!simple_type(n)) queue_list(q, &n->list, d, "dim");
        break;
    case AST_LET:
        if (n->type) queue_node(q, n->type, d, "type");
        queue_node(q, n->a, d, "value");
        break;
    case AST_ASSIGN:
        queue_node(q, n->a, d, "target");
        queue_node(q, n->b, d, "value");
        break;
    case AST_IF:
        queue_node(q, n->a, d, "cond");
        queue_node(q, n->b, d, "then");
        if (n->c) queue_node(q, n->c, d, "else");
        break;
    case AST_WHILE:
        queue_node(q, n->a, d, "cond");
        queue_node(q, n->b, d, "body");
        break;
    case AST_FOR:
        queue_node(q, n->a, d, "in");
        queue_node(q, n->b, d, "body");
        break;
    case AST_PROFILE:
        queue_node(q, n->b, d, NULL);
        break;
    case AST_IMPORT:
        queue_node(q, n->a, d, "path");
        break;
    case AST_FN:
        queue_list(q, &n->list, d, NULL);
        if (n->type) queue_node(q, n->type, d, "returns");
        queue_node(q, n->b, d, "body");
        break;
    case AST_PARAMDEF:
        if (n->type) queue_node(q, n->type, d, "type");
        if (n->a) queue_node(q, n->a, d, "default");
        break;
    case AST_MODEL:
        queue_list(q, &n->list, d, NULL);
        queue_node(q, n->b, d, "body");
        break;
    case AST_PARAM_DECL:
        if (n->type) queue_node(q, n->type, d, "type");
        queue_node(q, n->a, d, "value");
        break;
    case AST_FIELD:
        queue_node(q, n->a, d, NULL);
        break;
    default:
        break;
    }
}

void ast_print(FILE *out, const AstNode *n) {
    PrintStack s = {0};
    queue_node(&s, n, 0, NULL);
    while (s.len > 0) {
        PrintItem it = s.items[--s.len];
        print_line(out, it.n, it.depth, it.label);
        if (!it.n) continue;
        int first = s.len;
        queue_children(&s, it.n, it.depth + 1);
        for (int i = first, j = s.len - 1; i < j; i++, j--) { /* first child on top */
            PrintItem t = s.items[i];
            s.items[i] = s.items[j];
            s.items[j] = t;
        }
    }
    free(s.items);
}

/* ---- the REPL's question: does the input go on? ---- */

static bool is_word_char(char c) {
    return isalnum((unsigned char)c) || c == '_';
}

bool parse_is_incomplete(const char *text, size_t len) {
    int depth = 0;
    /* the last significant token: kind 'o' (operator that continues a line),
     * 'w' (a word; see last_word), or 0 */
    int last = 0;
    const char *last_word = NULL;
    size_t last_word_len = 0;
    for (size_t i = 0; i < len;) {
        char c = text[i];
        if (c == '#') {
            while (i < len && text[i] != '\n') i++;
        } else if (c == '"') {
            i++;
            while (i < len && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
            if (i >= len) return true; /* inside a string */
            i++;
            last = 0;
        } else if (c == '(' || c == '[' || c == '{') {
            depth++;
            i++;
            last = 0;
        } else if (c == ')' || c == ']' || c == '}') {
            if (depth > 0) depth--;
            i++;
            last = 0;
        } else if (is_word_char(c)) {
            size_t s = i;
            while (i < len && is_word_char(text[i])) i++;
            last = 'w';
            last_word = text + s;
            last_word_len = i - s;
        } else if (strchr("+-*/%@=<>!,.:", c) && c != '\0') {
            i++;
            last = 'o';
        } else {
            i++;
        }
    }
    if (depth > 0) return true;
    if (last == 'o') {
        /* `x[...]` ends in ']' and `...` alone is not a continuation */
        return true;
    }
    if (last == 'w') {
        static const char *const cont[] = {"and", "or", "not", "in"};
        for (size_t k = 0; k < sizeof cont / sizeof *cont; k++)
            if (strlen(cont[k]) == last_word_len && memcmp(cont[k], last_word, last_word_len) == 0)
                return true;
    }
    return false;
}
