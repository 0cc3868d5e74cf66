"""House-price batch scoring: trainer, model registry, scorer and scheduler."""
