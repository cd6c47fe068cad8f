ttrun --backend=naive --dump=quant tests/golden/quant_mlp.tt
