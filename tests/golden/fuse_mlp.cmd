ttrun --backend=jit --dump=fuse tests/golden/fuse_mlp.tt
