"""Model files for the seed backend: each champion published to ML_MODELS_PATH as the seed names it.

One asset per model type and owner, downstream of the model it publishes, so the lineage reads
`roas_model -> roas_model_file`. A file asset runs after its model asset (eagerly, when the model
was materialised, and in the `publish_*` jobs); if the champion's version is already in the file
(per its manifest) nothing is written. A tenant without a champion of its own gets no file: the
seed backend then loads `{model_type}_default.joblib`, exactly the registry's fallback.
"""

import dagster as dg

from stratum_pipeline.assets.common import model_code_version
from stratum_pipeline.modelops.publishing import model_filename, publish
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.partitions import tenant_partitions
from stratum_pipeline.resources import ModelFiles, ModelRegistry
from stratum_pipeline.tenancy import DEFAULT_MODEL_OWNER, validate_tenant_id

FILE_ASSET = dict(
    group_name="model_files",
    kinds={"joblib"},
    owners=["team:ml-engineering"],
    automation_condition=dg.AutomationCondition.eager(),
)


def _publish_champion(context, model_files: ModelFiles, registry: ModelRegistry, model_type: str, owner: str):
    directory = model_files.directory()
    name = model_name(model_type, owner)
    version = registry.champion_version(name)
    if version is None:
        fallback = model_filename(model_type, DEFAULT_MODEL_OWNER)
        context.log.info(f"{name} has no champion: the backend loads {fallback}")
        return dg.MaterializeResult(
            metadata={
                "model": name,
                "published": False,
                "file": str(directory / model_filename(model_type, owner)),
                "reason": f"no champion of its own: the seed backend falls back to {fallback}",
            }
        )
    publication = publish(
        directory, model_type, owner, name, version, lambda: registry.load_compatible(name, version)
    )
    verb = "published" if publication.published else "already current:"
    context.log.info(f"{verb} {name} v{version} -> {publication.file}")
    return dg.MaterializeResult(
        metadata=publication.metadata(), data_version=dg.DataVersion(f"{name}:{version}")
    )


def tenant_file_asset(model_type: str) -> dg.AssetsDefinition:
    description = (
        f"The tenant's {model_type} champion as `ML_MODELS_PATH/{model_type}_t<tenant>.joblib`, the file the existing "
        "backend's InferenceService loads (joblib.load gives the predictor; .predict(input) answers). Republished "
        f"only when the champion's version changed; absent while the tenant is served by {model_type}_default.joblib."
    )

    @dg.asset(
        name=f"{model_type}_model_file",
        partitions_def=tenant_partitions,
        deps=[f"{model_type}_model"],
        description=description,
        code_version=model_code_version(model_type),
        **FILE_ASSET,
    )
    def tenant_file(context: dg.AssetExecutionContext, model_files: ModelFiles, registry: ModelRegistry):
        return _publish_champion(
            context, model_files, registry, model_type, validate_tenant_id(context.partition_key)
        )

    return tenant_file


def default_file_asset(model_type: str) -> dg.AssetsDefinition:
    description = (
        f"The global {model_type} champion as ML_MODELS_PATH/{model_type}_default.joblib: what the existing backend "
        f"loads for every tenant without a {model_type} model of its own. Republished only when the champion changed."
    )

    @dg.asset(
        name=f"{model_type}_default_model_file",
        deps=[f"{model_type}_default_model"],
        description=description,
        code_version=model_code_version(model_type),
        **FILE_ASSET,
    )
    def default_file(context: dg.AssetExecutionContext, model_files: ModelFiles, registry: ModelRegistry):
        return _publish_champion(context, model_files, registry, model_type, DEFAULT_MODEL_OWNER)

    return default_file


tenant_model_file_assets = [tenant_file_asset(t) for t in ("roas", "conversion")]
default_model_file_assets = [default_file_asset(t) for t in ("roas", "conversion")]
