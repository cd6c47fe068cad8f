ttc examples/xor.tt --emit=ir --model XorNet -D B=4
