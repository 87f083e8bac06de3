"""validate_frame decides with pandas only when every expectation certainly holds, and then agrees with
great-expectations; anything else (a failure, missing values where GX's rules are subtle, odd types) goes to
GX, so the failures the checks report are GX's."""

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.checks import expectations
from stratum_pipeline.checks.data_quality import FEATURE_CONTRACTS, feature_expectations, raw_row_expectations
from stratum_pipeline.storage.extracts import EXTRACTS

FRAME = pd.DataFrame(
    {
        "x": [1.0, np.nan, 3.0, 2.0],
        "y": [0.5, 0.5, 3.0, 2.0],
        "s": ["a", None, "b", "a"],
        "u": [None, None, "q", "r"],
        "i": [1, 2, 3, 4],
        "n": [np.nan] * 4,
        "inf": [1.0, np.inf, 2.0, 3.0],
        "o": pd.Series([1, 2, None, 4], dtype=object),
    }
)
CASES = [
    ("ExpectTableColumnsToMatchSet", {"column_set": list(FRAME.columns), "exact_match": True}),
    ("ExpectTableColumnsToMatchSet", {"column_set": ["x", "y"], "exact_match": True}),
    ("ExpectColumnValuesToNotBeNull", {"column": "i"}),
    ("ExpectColumnValuesToNotBeNull", {"column": "x"}),
    ("ExpectColumnValuesToBeUnique", {"column": "i"}),
    ("ExpectColumnValuesToBeUnique", {"column": "u"}),
    ("ExpectColumnValuesToBeUnique", {"column": "s"}),
    ("ExpectCompoundColumnsToBeUnique", {"column_list": ["i", "y"]}),
    ("ExpectCompoundColumnsToBeUnique", {"column_list": ["s", "y"]}),
    ("ExpectColumnValuesToBeInSet", {"column": "s", "value_set": ["a", "b"]}),
    ("ExpectColumnValuesToBeInSet", {"column": "s", "value_set": ["a"]}),
    ("ExpectColumnValuesToBeBetween", {"column": "x", "min_value": 0, "max_value": 5}),
    ("ExpectColumnValuesToBeBetween", {"column": "x", "min_value": 0, "max_value": 2}),
    ("ExpectColumnValuesToBeBetween", {"column": "n", "min_value": 0, "max_value": 1}),
    ("ExpectColumnValuesToBeBetween", {"column": "i", "min_value": 1, "max_value": None}),
    ("ExpectColumnValuesToBeBetween", {"column": "inf", "min_value": 0, "max_value": None}),
    ("ExpectColumnValuesToBeBetween", {"column": "o", "min_value": 0, "max_value": 9}),
    ("ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "i", "column_B": "y", "or_equal": True}),
    ("ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "y", "column_B": "i", "or_equal": True}),
    ("ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "x", "column_B": "y", "or_equal": True}),
    ("ExpectColumnValuesToBeBetween", {"column": "missing", "min_value": 0}),
]


@pytest.mark.parametrize("kind,kwargs", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_pandas_says_met_only_where_gx_passes(kind, kwargs):
    gx = expectations._validate_with_gx(FRAME, "case", [(kind, kwargs)])
    if expectations._surely_met(FRAME, kind, kwargs):
        assert gx.success
    else:  # the whole suite goes to GX: validate_frame's outcome is GX's
        assert expectations.validate_frame(FRAME, "case", [(kind, kwargs)]) == gx


def test_the_fast_path_decides_the_cases_it_covers():
    met = {k for k, kw in CASES if expectations._surely_met(FRAME, k, kw)}
    assert met == {k for k, _ in CASES}  # every kind the contracts use has a case pandas decides


def test_clean_contract_frames_skip_gx_and_a_failure_is_gx_s(monkeypatch):
    extract = EXTRACTS["raw_campaign_daily"]
    specs = raw_row_expectations(extract)
    row = {c.name: 1 for c in extract.table.columns}
    row.update({"tenant_id": "t", "campaign_id": "c", "platform": "meta", "date": "2026-01-01"})
    clean = pd.DataFrame([row, {**row, "source_id": 2, "campaign_id": "d"}])
    calls = []
    real = expectations._validate_with_gx
    monkeypatch.setattr(expectations, "_validate_with_gx", lambda *a: calls.append(a[1]) or real(*a))
    outcome = expectations.validate_frame(clean, "raw", specs)
    assert outcome.success and outcome.evaluated == len(specs) and calls == []
    assert outcome == real(clean, "raw", specs)
    broken = clean.assign(clicks=[1, 5])  # more clicks than impressions on one row
    failed = expectations.validate_frame(broken, "raw", specs)
    assert calls == ["raw"] and not failed.success
    assert [f["expectation"] for f in failed.failures] == ["expect_column_pair_values_a_to_be_greater_than_b"]
    assert feature_expectations(
        FEATURE_CONTRACTS["creative_features"]
    )  # the feature suites use the same kinds
