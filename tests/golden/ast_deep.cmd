ttc tests/golden/ast_deep.tt --emit=ast
