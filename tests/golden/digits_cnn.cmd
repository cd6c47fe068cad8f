ttrun examples/digits_cnn.tt
