ttrun examples/xor.tt
