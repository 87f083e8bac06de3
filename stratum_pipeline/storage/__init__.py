"""Storage: the source and warehouse schemas, SQL reads and writes, the raw extracts and their row validation (no Dagster)."""
