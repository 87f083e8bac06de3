"""Model assets with a real MLflow store (SQLite) and warehouse: registration, champion, gate, fallback, isolation."""

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from stratum_pipeline.assets.models import training_result
from stratum_pipeline.automation.local_runs import check_evaluations
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.modelops.training import DataMinimum, check_isolation, train_roas
from stratum_pipeline.resources import SourceDatabase
from stratum_pipeline.storage import warehouse_schema as wh

from .helpers import train
from .model_data import model_features

# slow: each test trains models in its fixture (5-8 s a test); the fast tier is -m "not slow"
pytestmark = pytest.mark.slow


def test_models_are_registered_per_tenant_with_champions_and_fallback(stack):
    defs, registry, instance = stack
    result, metadata, checks = train(defs, instance, "train_default_models_job")
    assert result.success and checks == {"roas_default_model": True, "conversion_default_model": True}
    assert metadata["roas_default_model"]["served_by"] == "default"

    result, metadata, checks = train(defs, instance, "train_tenant_models_job", "big")
    assert result.success, checks
    for asset, kind in (("roas_model", "roas"), ("conversion_model", "conversion")):
        md = metadata[asset]
        assert md["served_by"] == "big" and md["gate"].startswith("promote")
        assert registry.champion_version(model_name(kind, "big")) == md["version"]
        assert "runs/" in md["mlflow_run"]
        floats = {k: v for k, v in md.items() if isinstance(v, float)}
        assert floats and all(v == float(f"{v:.4g}") for v in floats.values()), floats  # readable in the UI
    assert metadata["roas_model"]["holdout_r2"] > 0.8 and metadata["conversion_model"]["holdout_auc"] > 0.85

    result, metadata, checks = train(defs, instance, "train_tenant_models_job", "small")
    assert result.success and all(checks.values())
    assert (
        metadata["roas_model"]["served_by"] == "default"
        and "data minimum" in metadata["roas_model"]["reason"]
    )
    assert registry.champion_version(model_name("roas", "small")) is None
    assert registry.champion_version(model_name("roas", "default")) is not None

    # The champion loads back from MLflow and predicts.
    model = registry.load(model_name("roas", "big"), registry.champion_version(model_name("roas", "big")))
    campaign = model_features()[0]
    assert model.predict(campaign[campaign.tenant_id == "big"].iloc[-1].to_dict())["predicted_roas"] > 0


def test_a_retrain_on_unchanged_data_never_moves_champion_to_a_worse_model(stack):
    defs, registry, instance = stack
    _, first, _ = train(defs, instance, "train_tenant_models_job", "big")
    _, second, checks = train(defs, instance, "train_tenant_models_job", "big")
    name = model_name("roas", "big")
    champion = registry.champion_version(name)
    assert second["roas_model"]["version"] != first["roas_model"]["version"]
    if champion == second["roas_model"]["version"]:
        assert second["roas_model"]["holdout_mae"] <= first["roas_model"]["holdout_mae"] * 1.02
    else:
        assert champion == first["roas_model"]["version"] and checks["roas_model"] is False


def test_a_refusal_is_a_warn_check_on_a_successful_run_with_an_alert_and_an_archived_version(
    stack, monkeypatch
):
    import functools

    import sqlalchemy as sa

    from stratum_pipeline.modelops import training

    defs, registry, instance = stack
    _, first, _ = train(defs, instance, "train_tenant_models_job", "big")
    name = model_name("roas", "big")
    champion = registry.champion_version(name)
    # The next training's trees are crippled (3 stumps): a real challenger that the real gate refuses.
    monkeypatch.setattr(
        training,
        "ROASPredictor",
        functools.partial(
            training.ROASPredictor, n_estimators=3, max_depth=1, learning_rate=0.01, select_complexity=False
        ),
    )
    result, second, _ = train(defs, instance, "train_tenant_models_job", "big")
    assert result.success  # a refusal is a decision, not a failed run
    evaluation = next(e for e in check_evaluations(result) if e.asset_key.to_user_string() == "roas_model")
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["decision"].value.startswith("not promoted: ")
    assert registry.champion_version(name) == champion
    refused = second["roas_model"]["version"]
    assert registry.version_tags(name, refused)["archived"] == "True"
    assert registry.version_tags(name, champion)["archived"] == "False"
    with defs.resources["warehouse"].engine.connect() as conn:
        alerts = conn.execute(sa.select(wh.alerts.c.kind, wh.alerts.c.summary)).all()
    refusals = [summary for kind, summary in alerts if kind == "gate_refusal"]
    assert (
        len(refusals) == 1
        and f"roas_model v{refused} not promoted, champion v{champion} stays: " in refusals[0]
        and "not promoted: " not in refusals[0]
    )
    assert "\n" not in refusals[0]


def test_a_degraded_challenger_is_rejected_and_the_champion_stays(stack):
    defs, registry, instance = stack
    _, first, _ = train(defs, instance, "train_tenant_models_job", "big")
    champion = registry.champion_version(model_name("roas", "big"))
    campaign = model_features()[0]
    outcome = train_roas(
        "big",
        campaign[campaign.tenant_id == "big"],
        registry,
        {"test": "degraded"},
        DataMinimum(40, 30, 5_000),
        7,
        n_estimators=3,
        max_depth=1,
        learning_rate=0.01,
    )
    assert not outcome.decision.promote
    assert registry.champion_version(model_name("roas", "big")) == champion
    assert (
        registry.version_tags(model_name("roas", "big"), outcome.metadata["version"])["promoted"] == "False"
    )
    check = training_result("roas_model", outcome).check_results[0]
    assert check.passed is False and "worse than champion" in check.metadata["decision"].value


def test_a_tenants_training_set_holds_only_its_own_rows(stack):
    defs, registry, instance = stack
    _, metadata, _ = train(defs, instance, "train_tenant_models_job", "big")
    run = registry.client().get_run(metadata["roas_model"]["mlflow_run_id"])
    assert run.data.params["training_tenants"] == "big"
    assert run.data.tags["dagster_partition"] == "big" and run.data.tags["dagster_run_id"]
    campaign = model_features()[0]
    with pytest.raises(ValueError, match="other tenants"):
        check_isolation(campaign, "big")


def test_the_tenant_sensor_adds_new_tenants_and_requests_their_first_training(tmp_path):
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    engine = sa.create_engine(source_url)
    from stratum_pipeline.storage import source_schema

    source_schema.metadata.create_all(engine, tables=[source_schema.tenants])
    with engine.begin() as conn:
        conn.execute(
            source_schema.tenants.insert(),
            [
                {"id": i, "name": i, "created_at": pd.Timestamp("2026-01-01").to_pydatetime()}
                for i in ("old_one", "new_one", "Bad Tenant!")
            ],
        )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenants", ["old_one"])
    from stratum_pipeline.automation.sensors import tenant_sync_sensor

    context = dg.build_sensor_context(instance=instance, resources={"source": SourceDatabase(url=source_url)})
    result = tenant_sync_sensor(context)
    # the new tenant's first training: one batch run holding it (batch runs, #16)
    [request] = result.run_requests
    assert request.job_name == "train_tenant_batch_job"
    assert request.run_config["ops"]["train_tenant_batch"]["config"]["tenants"] == ["new_one"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["new_one"]


def test_the_leaderboard_shows_every_tenant_its_champion_and_the_targets(stack):
    import json
    import re

    from stratum_pipeline.assets.models import model_leaderboard

    defs, registry, instance = stack
    assert train(defs, instance, "train_default_models_job")[0].success
    assert train(defs, instance, "train_tenant_models_job", "big")[0].success
    warehouse = defs.resources["warehouse"]
    result = dg.materialize(
        [model_leaderboard], resources={"warehouse": warehouse, "registry": registry}, instance=instance
    )
    assert result.success
    with warehouse.engine.connect() as conn:
        board = pd.read_sql(sa.select(wh.model_leaderboard), conn)
    assert (
        set(board["tenant_id"]) == {"default", "big", "small"} and len(board) == 9
    )  # x roas, conversion, detector
    rows = board.set_index(["tenant_id", "model_type"])
    big, small = rows.loc[("big", "roas")], rows.loc[("small", "roas")]
    assert big["served_by"] == "own" and big["model_name"] == model_name("roas", "big")
    assert big["champion_version"] == registry.champion_version(model_name("roas", "big"))
    assert small["served_by"] == "default" and small["model_name"] == model_name("roas", "default")
    metrics = json.loads(big["metrics"])
    assert {"mae", "bias", "coverage_80", "naive_mae"} <= set(metrics) and bool(big["meets_targets"]) is True
    assert all(
        len(str(v).replace("-", "").replace(".", "").lstrip("0")) <= 5 for v in metrics.values()
    )  # 4 digits
    assert "bias within" in big["targets"] and big["mlflow_run"]
    detector = rows.loc[("big", "anomaly_detector")]  # never trained here: nothing serves it yet
    assert detector["model_name"] is None and pd.isna(detector["meets_targets"])
    assert detector["served_by"] == "none"  # neither its own nor the default detector exists
    shown = result.asset_materializations_for_node("model_leaderboard")[0].metadata
    assert shown["dagster/row_count"].value == 9 and "| big " in shown["leaderboard"].value
    table = shown["leaderboard"].value
    assert not re.search(r"\b(NaT|None|nan)\b", table), (
        table
    )  # a blank where nothing serves, not pandas' words


def test_each_training_logs_a_picture_of_its_holdout_and_links_it(stack, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("STRATUM_MLFLOW_UI_URL", "http://127.0.0.1:5999")
    defs, registry, instance = stack
    result, metadata, _ = train(defs, instance, "train_tenant_models_job", "big")
    assert result.success
    for asset in ("roas_model", "conversion_model"):
        md = metadata[asset]
        png = registry.client().download_artifacts(md["mlflow_run_id"], "holdout.png")
        width, height = Image.open(png).size
        assert width >= 500 and height >= 300, (asset, width, height)
        assert (
            md["holdout_plot"].startswith("![holdout of ")
            and f"http://127.0.0.1:5999/get-artifact?path=holdout.png&run_uuid={md['mlflow_run_id']}"
            in md["holdout_plot"]
        )
        assert md["mlflow_run"].startswith("http://127.0.0.1:5999/#/experiments/")
