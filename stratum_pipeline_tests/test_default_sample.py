"""The default ROAS model's stratified tenant sample (#16): the rule, and the default model trained on it."""

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.ml.sampling import stratified_tenants

from .model_data import RUN_CONFIG


def _volumes(n: int) -> pd.Series:
    return pd.Series(np.arange(1, n + 1) * 10, index=[f"t{i:03d}" for i in range(n)])


def test_up_to_the_cap_every_tenant_trains_the_default_model():
    assert stratified_tenants(_volumes(30), 30) == sorted(_volumes(30).index)


def test_above_the_cap_each_volume_quarter_gives_its_share_and_the_choice_is_stable():
    volume = _volumes(100)
    sample = stratified_tenants(volume, 30)
    assert len(sample) == 30 and len(set(sample)) == 30 and set(sample) <= set(volume.index)
    quarter = pd.qcut(volume.rank(), 4, labels=False)
    assert sorted(quarter[sample].value_counts().tolist()) == [7, 7, 8, 8]
    # the same tenants whatever the order they come in, and no random state
    assert stratified_tenants(volume.sample(frac=1, random_state=3), 30) == sample
    # small and large tenants both in: the sample's median volume is the population's within a quarter's width
    assert abs(volume[sample].median() - volume.median()) < volume.max() / 4


def test_a_bad_cap_is_a_one_line_error():
    with pytest.raises(ValueError, match="at least 1"):
        stratified_tenants(_volumes(5), 0)


@pytest.mark.slow  # trains the default ROAS and conversion models with MLflow (~15 s)
def test_the_default_roas_model_above_the_cap_trains_on_the_sample_and_says_so(stack):
    from stratum_pipeline.modelops.registry import model_name

    from .helpers import train

    defs, registry, instance = stack
    config = {"ops": {"roas_default_model": {"config": {**RUN_CONFIG, "default_sample_tenants": 1}}}}
    result = defs.resolve_job_def("train_default_models_job").execute_in_process(
        instance=instance, raise_on_error=False, run_config=config
    )
    assert result.success
    md = {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }["roas_default_model"]
    assert md["tenant_sample"] == "1 of 2 tenants, stratified by campaign-days"
    run = registry.client().get_run(md["mlflow_run_id"])
    assert run.data.params["training_tenants"] in ("big", "small")
    assert run.data.params["sampled_from_tenants"] == "2"
    # without the cap (the tests' config) it trains on both tenants and says nothing of a sample
    _, metadata, _ = train(defs, instance, "train_default_models_job")
    assert "tenant_sample" not in metadata["roas_default_model"]
    run = registry.client().get_run(metadata["roas_default_model"]["mlflow_run_id"])
    assert run.data.params["training_tenants"] == "big,small"
    assert registry.champion_version(model_name("roas", "default")) is not None
