"""Neural networks: the conditional DiT and the downstream decoder."""
