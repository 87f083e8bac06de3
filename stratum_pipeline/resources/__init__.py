"""Dagster resources: the source database, the warehouse, the MLflow model registry and the published model files."""

from stratum_pipeline.resources.database import SourceDatabase, Warehouse
from stratum_pipeline.resources.model_files import ModelFiles
from stratum_pipeline.resources.registry import ModelRegistry

__all__ = ["ModelFiles", "ModelRegistry", "SourceDatabase", "Warehouse"]
