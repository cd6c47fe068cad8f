ttrun examples/tinygpt.tt quick
