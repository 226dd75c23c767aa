"""Feature extractors: each maps a log-mel batch (B, 1, F, T) to embeddings (B, out_dim)."""
