ttrun examples/digits.tt
