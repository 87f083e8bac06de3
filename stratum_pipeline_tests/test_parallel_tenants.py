"""Tenants' work spread over forked processes (assets/common.in_processes, each_tenant(workers=...)): the same
results in the same order as one after another, and one tenant's failure stays that tenant's."""

import logging
import os
from types import SimpleNamespace

import pandas as pd
import pytest

from stratum_pipeline.assets import common
from stratum_pipeline.settings import SettingsError, fit_workers


def _work(tenant, rows):
    if tenant == "t2":
        raise ValueError("bad rows for t2")
    return pd.DataFrame({"tenant_id": [tenant], "total": [float(rows["x"].sum())], "pid": [os.getpid()]})


def _context():
    return SimpleNamespace(
        log=logging.getLogger("test"),
        asset_key=SimpleNamespace(to_user_string=lambda: "campaign_response_curves"),
        run_id="r",
        job_name="j",
    )


def test_each_tenant_in_two_processes_gives_the_sequential_results(monkeypatch):
    monkeypatch.setattr(common, "alert", lambda *args: None)
    frame = pd.DataFrame({"tenant_id": ["t3", "t1", "t2", "t1", "t4", "t3"], "x": [1, 2, 3, 4, 5, 6]})
    one, failed_one = common.each_tenant(_context(), None, frame, _work, workers=1)
    two, failed_two = common.each_tenant(_context(), None, frame, _work, workers=2)
    columns = ["tenant_id", "total"]
    assert [r[columns].to_dict("records") for r in two] == [r[columns].to_dict("records") for r in one]
    assert [r["tenant_id"].iloc[0] for r in two] == ["t1", "t3", "t4"]
    assert failed_one == failed_two == {"t2": "ValueError: bad rows for t2"}
    assert {r["pid"].iloc[0] for r in one} == {os.getpid()}
    assert os.getpid() not in {r["pid"].iloc[0] for r in two}  # the work ran in the forked processes


def test_every_tenant_failing_in_processes_raises_the_first_error(monkeypatch):
    monkeypatch.setattr(common, "alert", lambda *args: None)
    frame = pd.DataFrame({"tenant_id": ["t2", "t2"], "x": [1, 2]})
    with pytest.raises(ValueError, match="bad rows for t2"):
        common.each_tenant(_context(), None, frame, _work, workers=2)


def test_fit_workers_setting():
    assert fit_workers({"STRATUM_FIT_WORKERS": "3"}) == 3
    assert fit_workers({}) == min(2, os.cpu_count() or 1)
    with pytest.raises(SettingsError, match="STRATUM_FIT_WORKERS='0'"):
        fit_workers({"STRATUM_FIT_WORKERS": "0"})
