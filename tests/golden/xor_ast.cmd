ttc examples/xor.tt --emit=ast
