"""Dagster resources: the source database, the warehouse (and, later, the model registry and cache)."""

from stratum_pipeline.resources.database import SourceDatabase, Warehouse

__all__ = ["SourceDatabase", "Warehouse"]
