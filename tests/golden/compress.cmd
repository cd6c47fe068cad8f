ttrun examples/compress.tt quick
