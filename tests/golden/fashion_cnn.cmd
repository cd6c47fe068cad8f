ttrun examples/fashion_cnn.tt quick
