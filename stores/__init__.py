"""All I/O: the feature store, checkpoints and results, addressed by fsspec URLs."""
