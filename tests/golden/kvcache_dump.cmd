ttrun --dump=kvcache tests/golden/kvcache_dump.tt
