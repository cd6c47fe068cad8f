ttrun --backend=naive --dump=quant tests/golden/quant_cnn.tt
