"""Response curves and the budget simulator on them: the seed's request, S-curves, pooling, the decision day."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.ml.allocator import AllocationInputError, allocate
from stratum_pipeline.ml.response_curves import (
    ADSTOCK_GRID,
    KAPPA_GRID,
    SHAPE_GRID,
    CurveInputError,
    base_prior,
    curve_draws,
    encode_draws,
    fit_tenant_curves,
    hill,
)
from stratum_pipeline.ml.simulator import (
    BudgetSimulator,
    SimulationInputError,
    horizon_forecast,
    simulate_frame,
)

from .conftest import response_world

END = date(2026, 6, 30)
SHAPES = [2.4, 1.0, 0.7, 1.3, 1.8, 0.9]
HALVES = [
    2000.0,
    800.0,
    1500.0,
    1200.0,
    1000.0,
    3000.0,
]  # campaign 0: S-shaped, budget far below half-saturation


@pytest.fixture(scope="module")
def world():
    rows, truth = response_world(SHAPES, HALVES, end=END, short={5: 5})
    return rows, truth, fit_tenant_curves("t", rows, END)


def true_lift(rows, truth, i, change, days=30):
    history = rows[rows["campaign_id"] == f"c{i}"]["spend"].to_numpy()
    base = np.concatenate([history, np.full(days, history[-1])])
    new = np.concatenate([history, np.full(days, history[-1] * (1 + change))])
    return truth(i, new)[-days:].sum() / truth(i, base)[-days:].sum() - 1


def test_an_s_shaped_campaign_is_simulated_on_its_own_curve(world):
    rows, truth, curves = world
    curve = curves.set_index("campaign_id").loc["c0"]
    assert curve["curve_source"] == "fitted" and curve["elasticity"] > 1.0  # the rising part of an S-curve
    spend = rows[rows["campaign_id"] == "c0"]["spend"].iloc[-1]
    out = BudgetSimulator().simulate(
        {"daily_spend": spend, "response_curve": curve.to_dict() | {"curve_source": "fitted"}},
        [0.2, 0.5],
        days=30,
        seed=1,
    )
    assert out["curve_source"] == "fitted"
    for scenario, change in zip(out["scenarios"], (0.2, 0.5)):
        ours = scenario["revenue"] / out["baseline"]["revenue"] - 1
        truth_lift = true_lift(rows, truth, 0, change)
        assert truth_lift > change  # revenue grows faster than spend
        naive = (1 + change) ** 0.6 - 1  # the constant-elasticity fallback cannot follow it
        assert abs(ours - truth_lift) < abs(naive - truth_lift) / 4, (change, ours, truth_lift)
    assert (
        out["scenarios"][0]["marginal_roas"] > out["baseline"]["roas"]
    )  # an S-curve's margin beats its average


def test_a_campaign_with_five_days_of_history_gets_the_pooled_curve(world):
    rows, truth, curves = world
    short = curves.set_index("campaign_id").loc["c5"]
    assert short["days_used"] == 5 and short["curve_source"] == "pooled"
    assert (curves.set_index("campaign_id").drop(index="c5")["curve_source"] == "fitted").all()
    spend = rows[rows["campaign_id"] == "c5"]["spend"].iloc[-1]
    out = BudgetSimulator().simulate({"daily_spend": spend, "response_curve": short.to_dict()}, [0.2], seed=2)
    assert out["curve_source"] == "pooled"
    low, high = out["baseline"]["confidence_interval"]
    assert 0 < low < out["baseline"]["revenue"] < high
    lift = out["scenarios"][0]["revenue"] / out["baseline"]["revenue"] - 1
    assert 0.0 < lift < 0.3  # a tenant-typical response, not a wild one


def test_a_curve_for_day_d_is_fitted_on_days_up_to_d_only(world):
    rows = world[0]
    decision = END - timedelta(days=10)
    before = fit_tenant_curves("t", rows, decision)
    later = pd.to_datetime(rows["date"]) > pd.Timestamp(decision)
    changed = rows.copy()
    changed.loc[later, "revenue"] *= 5  # the future is different: the curve of day D must not see it
    changed.loc[later, "spend"] *= 3
    after = fit_tenant_curves("t", changed, decision)
    pd.testing.assert_frame_equal(before, after)
    assert (before["as_of"] == decision).all() and "c5" not in set(
        before["campaign_id"]
    )  # it launched after D
    full = fit_tenant_curves("t", changed, END).set_index("campaign_id").loc[before["campaign_id"]]
    assert not np.allclose(full["vmax"].to_numpy(float), before["vmax"].to_numpy(float))


def test_the_seed_request_verbatim_gives_the_seed_answer_keys(seed_simulate_request, world):
    curve = world[2].set_index("campaign_id").loc["c1"].to_dict()
    request = {**seed_simulate_request, "response_curve": curve}
    out = BudgetSimulator().simulate(request, seed=4)
    assert set(out["baseline"]) >= {"spend", "revenue", "roas", "conversions"}
    assert (
        out["baseline"]["spend"] == 10000
    )  # base_budget is the horizon's budget, as in the seed's sample answer
    assert [s["name"] for s in out["scenarios"]] == ["+20% Budget", "-20% Budget", "+50% Budget"]
    assert [s["spend"] for s in out["scenarios"]] == [12000, 8000, 15000]
    for s in out["scenarios"]:
        assert set(s) >= {
            "name",
            "spend",
            "revenue",
            "roas",
            "conversions",
            "marginal_roas",
            "confidence_interval",
        }
        assert s["confidence_interval"][0] < s["revenue"] < s["confidence_interval"][1]
    assert out["days"] == 30 and out["iterations"] == 1000 and out["curve_source"] == "fitted"
    # without a curve the request needs a ROAS; with one, the labelled constant-elasticity fallback answers
    with pytest.raises(SimulationInputError, match="response_curve"):
        BudgetSimulator().simulate(seed_simulate_request)
    fallback = BudgetSimulator().simulate({**seed_simulate_request, "roas": 3.2}, seed=4)
    assert fallback["curve_source"] == "fallback" and fallback["baseline"]["spend"] == 10000


@pytest.mark.parametrize(
    "scenario,match",
    [
        ({"name": "x", "budget_change_percent": "lots"}, "budget_change_percent"),
        ({"name": "x", "budget_change_percent": -100}, "above -100%"),
        ({"name": "x", "budget_change_percent": [20]}, "budget_change_percent"),
    ],
)
def test_bad_seed_scenarios_are_one_line_errors(seed_simulate_request, scenario, match):
    with pytest.raises(SimulationInputError, match=match):
        BudgetSimulator().simulate({**seed_simulate_request, "roas": 3.0, "scenarios": [scenario]})


def test_a_whole_partition_is_one_array_operation_matching_single_calls(world):
    rows, truth, curves = world
    today = rows[rows["date"] == pd.Timestamp(END)].set_index("campaign_id")["spend"]
    frame = curves.assign(spend=curves["campaign_id"].map(today))
    out = simulate_frame(frame, (-0.2, 0.2, 0.5), 30, 2000, seed=3)
    assert len(out) == 4 * len(curves) and set(out["curve_source"]) == {"fitted", "pooled"}
    single = BudgetSimulator().simulate(
        {"daily_spend": today["c2"], "response_curve": curves.set_index("campaign_id").loc["c2"].to_dict()},
        days=30,
        iterations=2000,
        seed=9,
    )
    batch = out[out["campaign_id"] == "c2"].set_index("scenario")
    assert batch.loc["baseline", "revenue"] == pytest.approx(single["baseline"]["revenue"], rel=0.03)
    assert batch.loc["+50%", "revenue"] == pytest.approx(single["scenarios"][2]["revenue"], rel=0.03)
    fallback = frame.assign(curve_source="fallback", draws=None)
    assert simulate_frame(fallback, (0.2,), 30, 100).empty  # no usable curve: the caller's fallback answers


def _allocation_input(world):
    rows, truth, curves = world
    today = rows[rows["date"] == pd.Timestamp(END)].set_index("campaign_id")["spend"]
    return curves.assign(current_budget=curves["campaign_id"].map(today))


def test_an_allocation_respects_the_bounds_and_the_total_and_beats_today(world):
    frame = _allocation_input(world)
    out = allocate(frame, bounds=(0.5, 2.0))
    table, tenant = out["campaigns"], out["tenant"]
    assert table["proposed_budget"].sum() == pytest.approx(frame["current_budget"].sum(), abs=0.05)
    ratio = table["proposed_budget"] / table["current_budget"]
    assert ratio.between(0.5 - 1e-6, 2.0 + 1e-6).all() and (ratio.round(3) != 1).any()
    assert tenant["expected_daily_uplift"] > 0
    assert tenant["uplift_interval"][0] <= tenant["expected_daily_uplift"] <= tenant["uplift_interval"][1]
    # the true curves agree that the new split earns more
    rows, truth = world[0], world[1]

    def true_revenue(budgets):
        total = 0.0
        for i, budget in enumerate(budgets):
            history = rows[rows["campaign_id"] == f"c{i}"]["spend"].to_numpy()
            total += truth(i, np.concatenate([history, np.full(30, budget)]))[-30:].sum()
        return total

    assert true_revenue(table["proposed_budget"]) > true_revenue(table["current_budget"])
    tight = allocate(frame, total_daily_budget=frame["current_budget"].sum() * 1.2, bounds=(0.9, 1.3))[
        "campaigns"
    ]
    assert tight["proposed_budget"].sum() == pytest.approx(frame["current_budget"].sum() * 1.2, abs=0.05)
    assert (tight["proposed_budget"] / tight["current_budget"]).between(0.9 - 1e-6, 1.3 + 1e-6).all()


def test_a_target_marginal_roas_scales_each_campaign_to_where_its_margin_meets_it(world):
    frame = _allocation_input(world)
    target = float(allocate(frame)["campaigns"]["marginal_roas_current"].median())
    table = allocate(frame, target_marginal_roas=target)["campaigns"]
    assert (table["marginal_roas_current"] > target).sum() and (
        table["proposed_budget"] > table["current_budget"]
    ).sum()
    inside = (table["proposed_budget"] > table["current_budget"] * 0.5 + 1) & (
        table["proposed_budget"] < table["current_budget"] * 2.0 - 1
    )
    assert inside.any()
    assert table.loc[inside, "marginal_roas_proposed"].between(0.9 * target, 1.1 * target).all()


def test_a_campaign_without_a_curve_keeps_its_budget(world):
    frame = _allocation_input(world)
    frame.loc[frame["campaign_id"] == "c3", ["curve_source", "draws"]] = ["fallback", None]
    table = allocate(frame)["campaigns"].set_index("campaign_id")
    assert table.loc["c3", "proposed_budget"] == table.loc["c3", "current_budget"]
    assert "keeps its budget" in table.loc["c3", "note"]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"total_daily_budget": float("nan")}, "positive finite"),
        ({"total_daily_budget": -100.0}, "positive finite"),
        ({"total_daily_budget": 0}, "positive finite"),
        ({"total_daily_budget": "lots"}, "must be a number"),
        ({"bounds": (2.0, 0.5)}, "reversed"),
        ({"caution": -1.0}, "caution must be"),
        ({"caution": float("nan")}, "caution must be"),
        ({"bounds": (0.5,)}, "two numbers"),
        ({"bounds": (float("nan"), 2)}, "finite"),
        ({"total_daily_budget": 1.0}, "cannot be split within the bounds"),
        ({"target_marginal_roas": -1}, "positive finite"),
    ],
)
def test_hostile_allocation_input_is_a_one_line_error(world, kwargs, match):
    with pytest.raises(AllocationInputError, match=match) as info:
        allocate(_allocation_input(world), **kwargs)
    assert "\n" not in str(info.value)


def _warehouse_with_curves(tmp_path, world):
    import sqlalchemy as sa

    from stratum_pipeline.storage import warehouse_schema as wh
    from stratum_pipeline.storage.sqlio import insert_frame

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = sa.create_engine(url)
    wh.metadata.create_all(engine, tables=[wh.campaign_response_curves])
    frame = world[2].rename(columns={"as_of": "date"})
    with engine.begin() as conn:
        insert_frame(
            conn,
            wh.campaign_response_curves,
            frame[[c.name for c in wh.campaign_response_curves.columns if c.name in frame.columns]],
        )
    return url


@pytest.mark.slow  # `stratum` subprocesses (~4 s each)
def test_stratum_allocate_and_the_seed_request_through_the_cli(tmp_path, world, seed_simulate_request):
    import json
    import os
    import subprocess
    import sys

    url = _warehouse_with_curves(tmp_path, world)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STRATUM_", "DAGSTER_"))},
        "STRATUM_WAREHOUSE_URL": url,
    }

    def stratum(*args):
        return subprocess.run(
            [sys.executable, "-m", "stratum_pipeline.cli", "--home", str(tmp_path / "home"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = stratum("allocate", "--tenant", "t")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out["campaigns"]) == 6 and out["expected_daily_uplift"] > 0
    assert out["total_proposed_budget"] == pytest.approx(out["total_current_budget"], abs=0.05)
    assert {
        "current_budget",
        "proposed_budget",
        "expected_revenue_current",
        "expected_revenue_proposed",
        "marginal_roas_current",
        "marginal_roas_proposed",
    } <= set(out["campaigns"][0])
    done = stratum("allocate", "--tenant", "t", "--caution", "1")
    assert done.returncode == 0, done.stderr
    cautious = json.loads(done.stdout)

    def moved(answer):
        return sum(abs(c["proposed_budget"] - c["current_budget"]) for c in answer["campaigns"])

    assert out["caution"] == 0.0 and cautious["caution"] == 1.0 and moved(cautious) < moved(out)
    for args, message in (
        (("--tenant", "nobody"), "unknown tenant 'nobody'"),
        (("--tenant", "t", "--bounds", "2", "0.5"), "bounds are reversed"),
        (("--tenant", "t", "--total", "-5"), "positive finite"),
        (("--tenant", "t", "--total", "nan"), "positive finite"),
        (("--tenant", "t", "--total", "0"), "positive finite"),
        (("--tenant", "t", "--caution", "-1"), "caution must be"),
    ):
        done = stratum("allocate", *args)
        assert (
            done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
        ), done.stderr

    request = {**seed_simulate_request, "campaign_id": "c1"}
    done = stratum("simulate", "--tenant", "t", json.dumps(request))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["curve_source"] == "fitted" and out["baseline"]["spend"] == 10000
    assert [s["name"] for s in out["scenarios"]] == ["+20% Budget", "-20% Budget", "+50% Budget"]
    done = stratum("simulate", json.dumps(seed_simulate_request))  # campaign 123 has no curve
    assert done.returncode == 2 and "no response curve for campaign 123" in done.stderr


def _widened(frame: pd.DataFrame, sd: float = 0.6, seed: int = 3) -> pd.DataFrame:
    """The same curves with the half-saturation of each draw spread by a lognormal of `sd` and vmax rescaled so
    that every draw still earns what it did at today's budget: the same answer today, less known away from it
    (what a short history leaves)."""
    rng = np.random.default_rng(seed)
    out = []
    for row in frame.to_dict("records"):
        d = curve_draws(row).copy()
        spend = row["current_budget"]
        before = d[:, 0] * hill(spend, d[:, 1], d[:, 2])
        d[:, 1] = d[:, 1] * np.exp(sd * rng.standard_normal(len(d)))
        d[:, 0] = before / hill(spend, d[:, 1], d[:, 2])
        out.append(encode_draws(d))
    return frame.assign(draws=out)


def _moved(frame: pd.DataFrame, **kwargs) -> float:
    table = allocate(frame, **kwargs)["campaigns"]
    return float((table["proposed_budget"] - table["current_budget"]).abs().sum())


def test_an_uncertain_curve_moves_less_under_caution_than_a_known_one(world):
    known = _allocation_input(world)
    uncertain = _widened(known)
    # without caution the optimiser follows the expected revenue alone: both move
    assert _moved(known, caution=0.0) > 0 and _moved(uncertain, caution=0.0) > 0
    # with caution, the move of the uncertain curves shrinks towards today's budget more than the known ones'
    shrink_known = _moved(known, caution=1.0) / _moved(known, caution=0.0)
    shrink_uncertain = _moved(uncertain, caution=1.0) / _moved(uncertain, caution=0.0)
    assert shrink_uncertain < shrink_known, (shrink_uncertain, shrink_known)
    table = allocate(uncertain, caution=1.0)["campaigns"]
    assert table["proposed_budget"].sum() == pytest.approx(known["current_budget"].sum(), abs=0.05)


def test_the_base_prior_centres_the_half_saturation_on_the_median_spend_and_a_given_prior_is_used(world):
    prior = base_prior()
    assert prior.sum() == pytest.approx(1.0)
    by_kappa = prior.sum(axis=(0, 1))
    assert KAPPA_GRID[np.argmax(by_kappa)] == pytest.approx(1.0, rel=0.2)
    assert by_kappa[0] < by_kappa.max() / 2 and by_kappa[-1] < by_kappa.max() / 2
    rows = world[0]
    point = np.zeros_like(prior)
    point[2, 3, 6] = 1.0  # one cell: adstock 0.3, Hill exponent 1.1, half-saturation ~1.26x the median spend
    curves = fit_tenant_curves("t", rows, END, prior=point, learn_prior=False).set_index("campaign_id")
    pooled = curve_draws(curves.loc["c5"].to_dict())  # no likelihood of its own: the prior's cell only
    assert np.allclose(pooled[:, 2], SHAPE_GRID[3]) and np.allclose(pooled[:, 3], ADSTOCK_GRID[2])
    with pytest.raises(CurveInputError, match="prior must be") as info:
        fit_tenant_curves("t", rows, END, prior=np.ones(3))
    assert "\n" not in str(info.value)


def test_the_horizon_forecast_is_the_baseline_at_base_spend_over_each_horizon(world):
    _, _, curves = world
    curves = pd.concat(
        [curves, curves.iloc[[0]].assign(curve_source="fallback", draws=None)], ignore_index=True
    )
    curves.index = range(100, 100 + len(curves))  # any index: the answer keeps it
    out = horizon_forecast(curves, horizons=(7, 30), iterations=500, seed=4)
    assert list(out.columns) == [
        *("revenue_7d", "revenue_7d_p5", "revenue_7d_p95"),
        *("revenue_30d", "revenue_30d_p5", "revenue_30d_p95", "roas_30d"),
    ]
    assert out.index.equals(curves.index)
    assert out.iloc[-1].isna().all()  # no usable curve: NaN, the caller's fallback answers
    usable = out.iloc[:-1]
    for h in (7, 30):
        assert (usable[f"revenue_{h}d_p5"] < usable[f"revenue_{h}d"]).all()
        assert (usable[f"revenue_{h}d"] < usable[f"revenue_{h}d_p95"]).all()
        baseline = simulate_frame(
            curves.assign(spend=curves["base_spend"], campaign_id=np.arange(len(curves))), (), h, 500, 4
        ).set_index("campaign_id")
        assert usable[f"revenue_{h}d"].tolist() == baseline["revenue"].tolist()
        assert usable[f"revenue_{h}d_p95"].tolist() == baseline["revenue_p95"].tolist()
    assert usable["roas_30d"].to_numpy() == pytest.approx(
        (usable["revenue_30d"] / (30 * curves["base_spend"].iloc[:-1])).to_numpy(),
        abs=5e-5,  # to 4 decimals
    )
    assert ((usable["revenue_30d"] / usable["revenue_7d"]).between(3.5, 5.0)).all()
    # the defaults: 7 and 30 days, 1,000 iterations, seed 0
    pd.testing.assert_frame_equal(
        horizon_forecast(curves), horizon_forecast(curves, (7, 30), 1000, 0)
    )  # about 30/7 days' worth
