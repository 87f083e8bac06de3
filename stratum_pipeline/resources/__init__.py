"""Dagster resources: the source database, the warehouse and the MLflow model registry."""

from stratum_pipeline.resources.database import SourceDatabase, Warehouse
from stratum_pipeline.resources.registry import ModelRegistry

__all__ = ["ModelRegistry", "SourceDatabase", "Warehouse"]
