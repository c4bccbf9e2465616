"""The data layer: dataset adapters and their config, vocabularies and embeddings, text encoders,
batching, file fingerprints and ``ratbench data check``."""
