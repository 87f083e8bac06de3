"""The MLflow registry as a Dagster resource; its methods live in `modelops.registry` (no Dagster there)."""

import dagster as dg

from stratum_pipeline.modelops.registry import (
    EXPERIMENT_NAME,
    HTTP_MAX_RETRIES,
    HTTP_TIMEOUT_SECONDS,
    RegistryClient,
)


class ModelRegistry(RegistryClient, dg.ConfigurableResource):
    """MLflow tracking and model registry (runs, registered models, the `champion` alias)."""

    tracking_uri: str
    experiment_name: str = EXPERIMENT_NAME
    http_max_retries: int = HTTP_MAX_RETRIES
    http_timeout_seconds: int = HTTP_TIMEOUT_SECONDS
