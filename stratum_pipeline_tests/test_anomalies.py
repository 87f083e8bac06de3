"""ml.anomalies on small injected frames, hostile input, and the campaign_anomalies asset's alert path."""

from datetime import date, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from stratum_pipeline.assets.anomalies import campaign_anomalies
from stratum_pipeline.ml.anomalies import AnomalyDetector, DetectorParams, InputError, fit_detector
from stratum_pipeline.resources import ModelRegistry, Warehouse
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.sqlio import insert_frame

LAST = date(2026, 5, 31)


def campaign_frame(
    conversions_per_day: float,
    days: int = 60,
    campaign: str = "c1",
    seed: int = 0,
    spend: float = 1000.0,
    cpc: float = 0.5,
) -> pd.DataFrame:
    """A steady campaign: spend with 3% pacing noise, Poisson clicks and conversions."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end=LAST, periods=days, freq="D")
    s = spend * rng.lognormal(0, 0.03, days)
    return pd.DataFrame(
        {
            "campaign_id": campaign,
            "date": dates.date,
            "spend": np.round(s, 2),
            "clicks": rng.poisson(s / cpc),
            "conversions": rng.poisson(conversions_per_day, days),
            "daily_budget": spend,
        }
    )


def last_day(frame: pd.DataFrame, **changes) -> pd.DataFrame:
    out = frame.copy()
    for column, value in changes.items():
        out.loc[out.index[-1], column] = value
    return out


def found(frame, detector=None) -> pd.DataFrame:
    return (detector or AnomalyDetector()).detect(frame, since=LAST)


@pytest.fixture(scope="module")
def poisson_tenant():
    """A detector fitted on a tenant whose campaigns have Poisson counts (no extra dispersion)."""
    return fit_detector(
        pd.concat([campaign_frame(100.0, days=70, campaign=f"p{i}", seed=100 + i) for i in range(10)])
    )


@pytest.mark.parametrize(
    "kind, changes",
    [
        ("tracking_outage", {"conversions": 0}),
        ("spend_spike", {"spend": 3000.0, "clicks": 6000}),
        ("conversion_rate_drop", {"conversions": 40}),
        ("cpc_jump", {"clicks": 900, "conversions": 45}),
    ],
)
def test_each_kind_is_detected_on_an_injected_day(kind, changes, poisson_tenant):
    base = campaign_frame(100.0)
    assert found(base, poisson_tenant).empty  # the clean day is not flagged
    findings = found(last_day(base, **changes), poisson_tenant)
    assert list(findings["kind"]) == [kind]
    row = findings.iloc[0]
    assert row["date"] == LAST and row["probability"] < 1e-4
    assert row["severity"] == ("critical" if kind in ("tracking_outage", "spend_spike") else "high")
    assert (
        row["metric"]
        == {
            "tracking_outage": "conversions",
            "conversion_rate_drop": "conversions",
            "spend_spike": "spend",
            "cpc_jump": "cpc",
        }[kind]
    )
    if kind == "tracking_outage":
        assert row["observed"] == 0 and 80 < row["expected"] < 125


def test_a_low_volume_zero_day_is_not_an_anomaly_but_a_high_volume_one_is():
    assert found(last_day(campaign_frame(2.0, seed=1), conversions=0)).empty
    assert found(last_day(campaign_frame(3.0, seed=2), conversions=0)).empty
    assert list(found(last_day(campaign_frame(200.0, seed=3), conversions=0))["kind"]) == ["tracking_outage"]


def test_a_multi_day_outage_stays_flagged_and_out_of_the_window():
    frame = campaign_frame(60.0, seed=4)
    frame.loc[frame.index[-4:], "conversions"] = 0
    findings = AnomalyDetector().detect(frame, since=LAST - timedelta(days=3))
    assert list(findings["kind"]) == ["tracking_outage"] * 4


def test_fitted_per_tenant_with_history_else_default():
    many = pd.concat([campaign_frame(30.0, days=90, campaign=f"c{i}", seed=i) for i in range(10)])
    fitted = fit_detector(many)
    assert not fitted.is_default and fitted.params.fitted_on == len(many)
    assert (
        0.8 < np.mean(fitted.params.weekday) < 1.2 and fitted.params.conversion_dispersion > 20
    )  # Poisson data
    assert fit_detector(campaign_frame(30.0, days=20)).is_default
    with pytest.raises(InputError, match="at least"):
        AnomalyDetector().fit(campaign_frame(30.0, days=20))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: last_day(f, conversions=np.nan), "conversions has 1 values that are missing"),
        (lambda f: last_day(f, spend=-5.0), "spend has 1 values that are missing, infinite or negative"),
        (lambda f: f.iloc[0:0], "empty"),
        (lambda f: f.drop(columns=["clicks"]), "missing columns: clicks"),
        (lambda f: last_day(f, date="not a date"), "date has 1 values that are missing or not dates"),
        (lambda f: pd.concat([f, f.tail(1)]), "more than one row"),
    ],
)
def test_hostile_input_is_one_clear_error(change, message):
    with pytest.raises(InputError, match=message) as info:
        found(change(campaign_frame(20.0)))
    assert "\n" not in str(info.value)


def test_an_unknown_campaign_is_a_clear_error():
    with pytest.raises(InputError, match="unknown campaign 'nope'"):
        AnomalyDetector().detect(campaign_frame(20.0), since=LAST, campaign_id="nope")
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        AnomalyDetector().detect([1, 2, 3])


def test_params_round_trip():
    params = DetectorParams(conversion_dispersion=3.0)
    assert DetectorParams(**params.to_dict()) == params


def _raw_rows(tenant: str, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(
        source_id=np.arange(len(frame)),
        tenant_id=tenant,
        platform="meta",
        impressions=frame["clicks"] * 50,
        revenue=frame["conversions"] * 40.0,
        audience_size=100_000,
        avg_order_value=40.0,
        recorded_at=pd.Timestamp(LAST),
    )


def test_an_outage_reaches_the_alerts_table_the_same_day_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    warehouse = Warehouse(url=url)
    broken = last_day(campaign_frame(80.0, seed=5), conversions=0)
    healthy = campaign_frame(80.0, campaign="c2", seed=6)
    with warehouse.engine.begin() as conn:
        insert_frame(
            conn, wh.raw_campaign_daily, pd.concat([_raw_rows("t1", broken), _raw_rows("t2", healthy)])
        )
    for _ in range(2):  # re-materialising the day does not alert twice
        result = dg.materialize(
            [campaign_anomalies],
            partition_key=str(LAST),
            resources={
                "warehouse": warehouse,
                "registry": ModelRegistry(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
            },
        )
        assert result.success
    with warehouse.engine.connect() as conn:
        anomalies = pd.read_sql(sa.select(wh.campaign_anomalies), conn)
        alerts = pd.read_sql(sa.select(wh.alerts), conn)
    assert list(
        anomalies[["tenant_id", "campaign_id", "kind", "severity"]].itertuples(index=False, name=None)
    ) == [("t1", "c1", "tracking_outage", "critical")]
    assert len(alerts) == 1 and alerts.iloc[0]["kind"] == "campaign_anomaly"
    summary = alerts.iloc[0]["summary"]
    assert (
        "\n" not in summary
        and "tenant t1, campaign c1, 2026-05-31" in summary
        and "tracking outage" in summary
    )
    metadata = result.asset_materializations_for_node("campaign_anomalies")[0].metadata
    assert (
        metadata["anomalies_by_kind"].data["tracking_outage"] == 1
        and metadata["dagster/row_count"].value == 1
    )
    assert metadata["detectors"].data == {
        "t1": "built-in default",
        "t2": "built-in default",
    }  # no champion yet


def test_detectors_are_registered_gated_published_and_serve_the_asset(tmp_path):
    from stratum_pipeline.definitions import build_definitions
    from stratum_pipeline.resources import ModelFiles, ModelRegistry, SourceDatabase

    from .helpers import seed_get_model

    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    big = pd.concat([campaign_frame(60.0, days=70, campaign=f"b{i}", seed=200 + i) for i in range(10)])
    big = pd.concat(
        [
            big[big["date"] < LAST],
            last_day(big[big["campaign_id"] == "b0"], conversions=0).tail(1),
            big[(big["date"] == LAST) & (big["campaign_id"] != "b0")],
        ]
    )
    small = campaign_frame(5.0, days=40, campaign="s1", seed=300)
    with warehouse.engine.begin() as conn:
        insert_frame(
            conn, wh.raw_campaign_daily, pd.concat([_raw_rows("big", big), _raw_rows("small", small)])
        )
    registry = ModelRegistry(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    models = tmp_path / "models"
    models.mkdir()
    defs = build_definitions(
        {
            "source": SourceDatabase(url=f"sqlite:///{tmp_path / 'source.db'}"),
            "warehouse": warehouse,
            "registry": registry,
            "model_files": ModelFiles(path=str(models)),
        }
    )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenants", ["big", "small"])
    runs = [
        ("train_default_anomaly_detector_job", None),
        ("train_anomaly_detectors_job", "big"),
        ("train_anomaly_detectors_job", "small"),
    ]
    for job, tenant in runs:
        assert defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=tenant).success
    assert registry.champion_version("stratum-anomaly_detector-big") == "1"
    assert registry.champion_version("stratum-anomaly_detector-default") == "1"
    assert (
        registry.champion_version("stratum-anomaly_detector-small") is None
    )  # too little history: the default
    assert sorted(p.name for p in models.glob("*.joblib")) == [
        "anomaly_detector_default.joblib",
        "anomaly_detector_tbig.joblib",
    ]
    loaded = seed_get_model(str(models), "anomaly_detector", "big")
    assert not loaded.is_default and list(loaded.detect(big, since=LAST)["campaign_id"]) == ["b0"]
    assert seed_get_model(str(models), "anomaly_detector", "small").params.fitted_on == len(big) + len(small)
    result = defs.resolve_job_def("anomalies_job").execute_in_process(
        instance=instance, partition_key=str(LAST)
    )
    assert result.success
    metadata = result.asset_materializations_for_node("campaign_anomalies")[0].metadata
    assert metadata["detectors"].data == {
        "big": "stratum-anomaly_detector-big v1",
        "small": "stratum-anomaly_detector-default v1",
    }


def test_inference_service_and_cli_answer_with_the_recent_anomalies(tmp_path):
    import json
    from datetime import datetime

    from stratum_pipeline.cli import embedded_environment
    from stratum_pipeline.serving.inference import InferenceService, PredictionError
    from stratum_pipeline.storage import source_schema

    from .helpers import stratum_cli as stratum

    home = tmp_path / "stratum"
    env = embedded_environment(home)
    home.mkdir()
    source = sa.create_engine(env["STRATUM_SOURCE_URL"])
    source_schema.metadata.create_all(source, tables=[source_schema.tenants])
    with source.begin() as conn:
        conn.execute(
            source_schema.tenants.insert(), [{"id": "t1", "name": "T1", "created_at": datetime(2026, 1, 1)}]
        )
    warehouse = Warehouse(url=env["STRATUM_WAREHOUSE_URL"])
    frame = last_day(campaign_frame(80.0, seed=5), conversions=0)
    with warehouse.engine.begin() as conn:
        insert_frame(conn, wh.raw_campaign_daily, _raw_rows("t1", frame))
    found_rows = AnomalyDetector().detect(frame, since=LAST).assign(tenant_id="t1", detector="default")
    old = found_rows.assign(date=LAST - timedelta(days=10), campaign_id="c1")  # outside a 7-day window
    warehouse.replace_partitions(
        wh.campaign_anomalies, pd.concat([found_rows, old]), LAST - timedelta(days=30), LAST
    )

    service = InferenceService(
        registry=object(), warehouse_url=env["STRATUM_WAREHOUSE_URL"], tenant_exists=lambda t: t == "t1"
    )
    answer = service.anomalies("t1")
    assert answer["as_of"] == str(LAST) and answer["counts"] == {"tracking_outage": 1}
    assert answer["anomalies"][0]["kind"] == "tracking_outage" and answer["anomalies"][0]["observed"] == 0.0
    assert len(service.anomalies("t1", days=30)["anomalies"]) == 2
    assert service.anomalies("t1", campaign_id="c1", days=1)["counts"] == {"tracking_outage": 1}
    for call, message in (
        (lambda: service.anomalies("t1", campaign_id="nope"), "unknown campaign 'nope'"),
        (lambda: service.anomalies("t1", days=0), "days must be a whole number"),
        (lambda: service.anomalies("ghost"), "unknown tenant 'ghost'"),
    ):
        with pytest.raises(PredictionError, match=message):
            call()

    done = stratum(home, "anomalies", "t1", "--days", "7")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["tenant_id"] == "t1" and [a["kind"] for a in out["anomalies"]] == ["tracking_outage"]
    assert set(out["anomalies"][0]) == {
        "campaign_id",
        "date",
        "kind",
        "severity",
        "metric",
        "expected",
        "observed",
        "probability",
    }
    done = stratum(home, "anomalies", "t1", "--campaign", "nope")
    assert done.returncode == 2 and "unknown campaign 'nope'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_training_rows_touching_a_flagged_day_are_found():
    from stratum_pipeline.ml.anomalies import touches_flagged

    rows = pd.DataFrame(
        {
            "campaign_id": ["a", "a", "a", "b"],
            "date": pd.to_datetime(["2026-05-01", "2026-05-02", "2026-05-03", "2026-05-02"]),
        }
    )
    flagged = pd.DataFrame({"campaign_id": ["a"], "date": [date(2026, 5, 2)]})
    # day d learns day d + 1's ROAS: the day before the flagged one and the flagged day itself go
    assert touches_flagged(rows, flagged).tolist() == [True, True, False, False]
    assert touches_flagged(rows, flagged, shifts=(0,)).tolist() == [False, True, False, False]
    assert not touches_flagged(rows, flagged.iloc[0:0]).any() and not touches_flagged(rows, None).any()
