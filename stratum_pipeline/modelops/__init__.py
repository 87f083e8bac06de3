"""Model operations: training with the promotion gate, the MLflow registry client and model-file publishing (no Dagster)."""
