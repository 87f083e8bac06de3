"""Publishing champions to ML_MODELS_PATH: files the seed backend loads as it does today, written atomically."""

import copy
import threading

import dagster as dg
import joblib
import pandas as pd
import pytest

from stratum_pipeline.assets.model_files import default_model_file_assets, tenant_model_file_assets
from stratum_pipeline.ml.features import CONVERSION_FEATURES
from stratum_pipeline.modelops import publishing
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.resources import ModelFiles

from .helpers import seed_get_model, train
from .model_data import model_features


def publish_all(registry, instance, models_path, tenants=("big", "small")) -> dict:
    """Materialise every model-file asset (tenant partitions and the default) with dg.materialize."""
    resources = {"registry": registry, "model_files": ModelFiles(path=str(models_path))}
    metadata = {}
    runs = [(default_model_file_assets, None)] + [(tenant_model_file_assets, t) for t in tenants]
    for assets, partition in runs:
        result = dg.materialize(assets, partition_key=partition, resources=resources, instance=instance)
        assert result.success
        for event in result.get_asset_materialization_events():
            md = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
            metadata[(event.asset_key.to_user_string(), partition)] = md
    return metadata


def rows(tenant: str, n: int = 5):
    campaign, sessions, _, _ = model_features()
    return (
        campaign[campaign.tenant_id == tenant].tail(n).to_dict("records"),
        sessions[sessions.tenant_id == tenant].tail(n).to_dict("records"),
    )


@pytest.mark.slow
def test_published_files_load_like_the_seed_and_predict_like_the_champions(stack, tmp_path):  # noqa: F811
    defs, registry, instance = stack
    assert train(defs, instance, "train_tenant_models_job", "big")[0].success
    # The default champions: big's models registered again under the default names (training the default
    # on all tenants is test_model_assets' job; here it would only double the time).
    for model_type, example in (
        ("roas", pd.DataFrame(rows("big")[0])),
        ("conversion", pd.DataFrame(rows("big")[1])),
    ):
        name = model_name(model_type, "big")
        champion = registry.load(name, registry.champion_version(name))
        columns = champion.feature_names if model_type == "roas" else list(CONVERSION_FEATURES)
        default = registry.log_and_register(
            model_name(model_type, "default"), champion, example[columns], {}, {}, {}
        )
        registry.set_champion(default.name, default.version)
    models_path = tmp_path / "models"
    models_path.mkdir()

    metadata = publish_all(registry, instance, models_path)
    assert sorted(p.name for p in models_path.glob("*.joblib")) == [
        "conversion_default.joblib",
        "conversion_tbig.joblib",
        "roas_default.joblib",
        "roas_tbig.joblib",
    ]
    assert (
        metadata[("roas_model_file", "small")]["published"] is False
    )  # no champion of its own: default file serves
    assert "falls back to roas_default.joblib" in metadata[("roas_model_file", "small")]["reason"]

    for tenant, owner in (("big", "big"), ("small", "default")):
        campaigns, sessions = rows(tenant)
        for model_type, inputs in (("roas", campaigns), ("conversion", sessions)):
            name = model_name(model_type, owner)
            champion = registry.load(name, registry.champion_version(name))
            published = seed_get_model(models_path, model_type, tenant)
            assert type(published) is type(champion)
            assert [published.predict(x) for x in inputs] == [champion.predict(x) for x in inputs]
            manifest = publishing.read_manifest(models_path / publishing.model_filename(model_type, owner))
            assert (manifest["model"], manifest["version"]) == (name, registry.champion_version(name))
    frame = pd.DataFrame(rows("big", 50)[0])
    roas_name = model_name("roas", "big")
    pd.testing.assert_frame_equal(
        seed_get_model(models_path, "roas", "big").predict_frame(frame),
        registry.load(roas_name, registry.champion_version(roas_name)).predict_frame(frame),
    )

    # Same champions: nothing is rewritten.
    before = {p.name: p.stat().st_mtime_ns for p in models_path.iterdir()}
    again = publish_all(registry, instance, models_path, tenants=("big",))
    assert again[("roas_model_file", "big")]["published"] is False
    assert {p.name: p.stat().st_mtime_ns for p in models_path.iterdir()} == before

    # A new champion for big's ROAS model (as the gate would move it) is republished; the rest stays.
    old_champion = registry.load(roas_name, registry.champion_version(roas_name))
    retrained = copy.deepcopy(old_champion)  # (the registry caches loaded models: never mutate one)
    retrained.interval_adjustment_ += 0.05  # a different model: wider intervals
    frame_big = pd.DataFrame(rows("big", 5)[0])[retrained.feature_names]
    version = registry.log_and_register(
        roas_name, retrained, frame_big, {}, {}, {"test": "new champion"}
    ).version
    registry.set_champion(roas_name, version)
    third = publish_all(registry, instance, models_path, tenants=("big",))
    assert third[("roas_model_file", "big")]["published"] is True
    assert third[("roas_model_file", "big")]["version"] == version
    assert third[("conversion_model_file", "big")]["published"] is False
    new_champion, x = registry.load(roas_name, version), rows("big")[0][0]
    assert (
        seed_get_model(models_path, "roas", "big").predict(x)
        == new_champion.predict(x)
        != old_champion.predict(x)
    )
    assert not list(models_path.glob(".*.tmp"))


def test_a_missing_models_folder_fails_the_asset_with_one_line(stack, tmp_path):  # noqa: F811
    _, registry, instance = stack
    result = dg.materialize(
        default_model_file_assets,
        instance=instance,
        raise_on_error=False,
        resources={"registry": registry, "model_files": ModelFiles(path=str(tmp_path / "nowhere"))},
    )
    assert not result.success
    failure = next(
        e for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    ).event_specific_data.error
    assert failure.cause.cls_name == "SettingsError"
    assert failure.cause.message.startswith("stratum_pipeline.settings.SettingsError: ML_MODELS_PATH=")
    assert failure.cause.message.rstrip().endswith("does not exist: create the folder first")


class Model:
    """A picklable stand-in payload for the file-level tests (publish() takes any object)."""

    def __init__(self, version: int, size: int = 50_000):
        self.version, self.weights = version, list(range(size))


def test_a_failure_mid_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    first = publishing.publish(tmp_path, "roas", "acme", "stratum-roas-acme", "1", lambda: Model(1))
    assert first.published and first.file.name == "roas_tacme.joblib"
    original = first.file.read_bytes()

    def dump_half_then_crash(value, handle):
        handle.write(b"\x80\x04" + b"x" * 1000)  # some bytes of a pickle, then the process "dies"
        raise OSError("No space left on device")

    monkeypatch.setattr(publishing.joblib, "dump", dump_half_then_crash)
    with pytest.raises(OSError, match="No space left"):
        publishing.publish(tmp_path, "roas", "acme", "stratum-roas-acme", "2", lambda: Model(2))
    assert first.file.read_bytes() == original
    assert joblib.load(first.file).version == 1
    assert publishing.read_manifest(first.file)["version"] == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roas_tacme.joblib", "roas_tacme.manifest.json"]


def test_a_reader_never_sees_a_half_written_file(tmp_path):
    publishing.publish(tmp_path, "conversion", "default", "stratum-conversion-default", "0", lambda: Model(0))
    path = tmp_path / "conversion_default.joblib"
    seen, errors, stop = set(), [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.add(joblib.load(path).version)
            except Exception as exc:  # a torn read would land here
                errors.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(1, 16):
            publishing.publish(
                tmp_path,
                "conversion",
                "default",
                "stratum-conversion-default",
                str(version),
                lambda v=version: Model(v),
            )
    finally:
        stop.set()
        thread.join()
    assert errors == [] and len(seen) >= 2 and joblib.load(path).version == 15


def test_file_names_follow_the_seed_and_refuse_unsafe_tenants():
    assert publishing.model_filename("roas", "acme_outdoor") == "roas_tacme_outdoor.joblib"
    assert publishing.model_filename("conversion", "default") == "conversion_default.joblib"
    with pytest.raises(ValueError, match="invalid tenant id"):
        publishing.model_filename("roas", "../../etc/passwd")
