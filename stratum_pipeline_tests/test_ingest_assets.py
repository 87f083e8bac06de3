"""Raw extracts, features and their checks, materialised with real databases (SQLite and PostgreSQL)."""

import pandas as pd
import pytest
import sqlalchemy as sa

from stratum_pipeline.automation.local_runs import execute_daily_range, materialized
from stratum_pipeline.storage import source_schema as src
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.database import engine_for
from stratum_pipeline.storage.extracts import EXTRACTS

from .conftest import TEST_CONFIG
from .helpers import checks_of, defs_for

SOURCE_OF = {
    "raw_campaign_daily": "campaign_daily_metrics",
    "raw_creative_daily": "creative_daily_metrics",
    "raw_sessions": "sessions",
    "raw_capi_events": "capi_events",
}
REASON_OF_KIND = {
    "negative_spend": "negative value: spend",
    "negative_value": "negative value",
    "missing_value": "missing value",
    "duplicate_key": "duplicate key",
    "unknown_platform": "unknown platform",
    "future_date": "date in the future",
    "clicks_gt_impressions": "clicks > impressions",
}
FIRST, LAST = TEST_CONFIG.start_date.isoformat(), TEST_CONFIG.end_date.isoformat()


def table(url: str, name: str) -> pd.DataFrame:
    with engine_for(url).connect() as conn:
        return pd.read_sql(sa.text(f"SELECT * FROM {name}"), conn)


def test_bad_rows_are_quarantined_with_reasons_and_clean_rows_all_arrive(loaded_urls, dataset):
    result = execute_daily_range(defs_for(loaded_urls), FIRST, LAST)
    assert result.success
    assert checks_of(result) and all(checks_of(result).values()), checks_of(result)
    truth = dataset["truth_bad_rows"]
    for raw_name, source_name in SOURCE_OF.items():
        injected = truth[truth["table_name"] == source_name].set_index("source_id")["kind"]
        quarantine = table(loaded_urls[1], f"{raw_name}_quarantine").set_index("source_id")
        assert set(quarantine.index) == set(injected.index), raw_name
        for source_id, kind in injected.items():
            assert REASON_OF_KIND[kind] in quarantine.loc[source_id, "reason"], (raw_name, source_id, kind)
        assert quarantine["partition_date"].notna().all() and quarantine["record"].str.startswith("{").all()
        clean = table(loaded_urls[1], raw_name)
        source_ids = set(dataset[source_name]["id"])
        assert set(clean["source_id"]) == source_ids - set(injected.index), raw_name
        assert not clean["source_id"].duplicated().any()


def test_features_cover_every_clean_row(loaded_urls):
    result = execute_daily_range(defs_for(loaded_urls), FIRST, LAST)
    assert result.success
    url = loaded_urls[1]
    for feature, raw in (
        ("campaign_features", "raw_campaign_daily"),
        ("creative_features", "raw_creative_daily"),
        ("session_features", "raw_sessions"),
    ):
        assert len(table(url, feature)) == len(table(url, raw)) > 0, feature
    campaigns = table(url, "campaign_features")
    assert campaigns["roas_7d"].between(0, 100).all()
    assert campaigns["creative_fatigue"].notna().mean() > 0.95
    assert set(materialized(result)) == {
        *EXTRACTS,
        "campaign_features",
        "creative_features",
        "session_features",
    }


def _snapshot(url: str) -> dict[str, pd.DataFrame]:
    snap = {}
    for name, t in wh.TABLES.items():
        frame = table(url, name).drop(columns=["run_id"], errors="ignore")
        snap[name] = frame.sort_values(list(frame.columns)[:4]).reset_index(drop=True)
    return snap


@pytest.mark.slow
def test_a_backfill_run_twice_leaves_identical_tables(loaded_urls):
    defs = defs_for(loaded_urls)
    first = (TEST_CONFIG.end_date - pd.Timedelta(days=29)).isoformat()
    assert execute_daily_range(defs, first, LAST).success
    once = _snapshot(loaded_urls[1])
    assert execute_daily_range(defs, first, LAST).success
    twice = _snapshot(loaded_urls[1])
    for name in once:
        pd.testing.assert_frame_equal(once[name], twice[name], obj=name)
    assert len(once["raw_campaign_daily"]) > 0


def test_a_failed_raw_check_blocks_downstream_assets(sqlite_loaded_urls):
    day = TEST_CONFIG.end_date
    with engine_for(sqlite_loaded_urls[0]).begin() as conn:
        ids = (
            conn.execute(
                sa.select(src.campaign_daily_metrics.c.id).where(src.campaign_daily_metrics.c.date == day)
            )
            .scalars()
            .all()
        )
        broken = ids[
            : max(6, len(ids) // 4)
        ]  # a quarter of the day's rows: far above the 5% quarantine limit
        conn.execute(
            sa.update(src.campaign_daily_metrics)
            .where(src.campaign_daily_metrics.c.id.in_(broken))
            .values(spend=-1.0)
        )
    result = execute_daily_range(defs_for(sqlite_loaded_urls), day.isoformat(), day.isoformat())
    assert not result.success
    assert checks_of(result)["raw_campaign_daily:raw_contract"] is False
    done = set(materialized(result))
    assert "raw_campaign_daily" in done and "campaign_features" not in done
    assert "session_features" in done  # other branches still run


def test_a_day_whose_rows_vanish_fails_the_volume_check(sqlite_loaded_urls):
    day = TEST_CONFIG.end_date
    with engine_for(sqlite_loaded_urls[0]).begin() as conn:
        start = pd.Timestamp(day).to_pydatetime()
        conn.execute(sa.delete(src.sessions).where(src.sessions.c.started_at >= start))
    previous = (day - pd.Timedelta(days=1)).isoformat()
    result = execute_daily_range(defs_for(sqlite_loaded_urls), previous, day.isoformat())
    assert checks_of(result)["raw_sessions:raw_contract"] is False
    assert "session_features" not in set(materialized(result))
    assert checks_of(result)["raw_campaign_daily:raw_contract"] is True


def test_a_single_partition_materialises_only_its_day(sqlite_loaded_urls):
    defs = defs_for(sqlite_loaded_urls)
    day = TEST_CONFIG.end_date.isoformat()
    result = defs.resolve_job_def("daily_ingest_job").execute_in_process(
        partition_key=day, raise_on_error=False
    )
    assert result.success
    raw = table(sqlite_loaded_urls[1], "raw_campaign_daily")
    assert set(pd.to_datetime(raw["date"]).dt.date.astype(str)) == {day}
    features = table(sqlite_loaded_urls[1], "campaign_features")
    assert len(features) == len(raw) and features["history_days"].eq(1).all()


def test_a_ranged_run_reports_each_days_check_verdict_and_row_count(sqlite_loaded_urls):
    """A 3-day run: each raw and feature table gets one check evaluation and one row count per day (the UI's
    Partitions tab), and a day that breaks a rule fails alone - the other days of the range pass."""
    from stratum_pipeline.automation.local_runs import check_evaluations

    last = TEST_CONFIG.end_date
    days = [(last - pd.Timedelta(days=n)).isoformat() for n in (2, 1, 0)]
    with engine_for(sqlite_loaded_urls[0]).begin() as conn:  # every session of the last day vanishes
        conn.execute(
            sa.delete(src.sessions).where(src.sessions.c.started_at >= pd.Timestamp(last).to_pydatetime())
        )
    result = execute_daily_range(defs_for(sqlite_loaded_urls), days[0], days[-1])

    verdicts: dict[str, dict[str, bool]] = {}
    for evaluation in check_evaluations(result):
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        verdicts.setdefault(name, {})[evaluation.partition] = evaluation.passed
    assert verdicts["raw_sessions:raw_contract"] == {days[0]: True, days[1]: True, days[2]: False}
    assert verdicts["raw_campaign_daily:raw_contract"] == dict.fromkeys(days, True)
    assert verdicts["campaign_features:feature_contract"] == dict.fromkeys(days, True)
    failed = next(
        e
        for e in check_evaluations(result)
        if e.asset_key.to_user_string() == "raw_sessions" and not e.passed
    )
    assert failed.severity.value == "ERROR" and failed.blocking  # the whole extract is missing: blocking
    assert failed.metadata["range_checked"].value == f"{days[0]}..{days[-1]}"
    # each day's evaluation targets that day's materialisation in this run (else the UI shows no status)
    for evaluation in check_evaluations(result):
        assert evaluation.target_materialization_data is not None, evaluation.asset_key
        assert evaluation.target_materialization_data.run_id == result.run_id

    counts: dict[str, dict[str, int]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        counts.setdefault(materialization.asset_key.to_user_string(), {})[materialization.partition] = (
            materialization.metadata["dagster/row_count"].value
        )
    for name in ("raw_campaign_daily", "raw_creative_daily", "campaign_features", "creative_features"):
        rows = table(sqlite_loaded_urls[1], name)
        per_day = pd.to_datetime(rows["date"]).dt.date.astype(str).value_counts()
        assert counts[name] == {day: int(per_day.get(day, 0)) for day in days}, name
