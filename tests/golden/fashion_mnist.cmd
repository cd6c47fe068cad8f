ttrun examples/fashion_mnist.tt
