"""Response curves and the budget simulator on them: the seed's request, S-curves, pooling, the decision day."""

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from stratum_pipeline.ml.allocator import AllocationInputError, allocate
from stratum_pipeline.ml.budget_scenarios import COLUMNS as SCENARIO_COLUMNS
from stratum_pipeline.ml.inputs import InputError
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
    season_factor,
)
from stratum_pipeline.ml.simulator import (
    STANDARD_SCENARIOS,
    BudgetSimulator,
    SimulationInputError,
    horizon_forecast,
    horizon_revenue,
    simulate_arrays,
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


# --- the curve path on hand-made curves: values checkable by hand --------------------------------------------
# One posterior draw, no adstock (rate 0, carried-over spend = today's): a day's revenue at daily spend s is
# vmax * s / (K + s) (Hill shape 1), exactly half of vmax at s = K. With no dispersion and no level drift every
# iteration is that number, so the mean and both quantiles are it too. K = today's spend = 12.3456, so the
# horizon's spend has more than two decimals (30 days: 370.368) and the rounding of each field shows.
S0 = 12.3456
VMAX = 1000.0
HAND = np.array([[VMAX, S0, 1.0, 0.0, S0]])


def hand_curve(draws=HAND, **extra) -> dict:
    return {
        "curve_source": "fitted",
        "draws": encode_draws(draws),
        "season": None,
        "as_of": None,
        "dispersion": 0.0,
        "level_sd": 0.0,
        "conversions_per_revenue": 0.01,
        **extra,
    }


def hand_day(s: float) -> float:
    """A day's revenue of HAND at daily spend s, and its marginal return (d revenue / d spend)."""
    return VMAX * s / (S0 + s)


def hand_margin(s: float) -> float:
    x = s / (S0 + s)
    return VMAX * x * (1 - x) / s


def rounded(value, digits: int, expected: float, tolerance: float) -> bool:
    """value is given to `digits` decimals and within `tolerance` (float32 arithmetic) of the hand figure."""
    return value == round(value, digits) and value == pytest.approx(expected, abs=tolerance)


def test_a_hand_made_curve_gives_its_own_values_field_by_field():
    out = BudgetSimulator().simulate(
        {"daily_spend": S0, "response_curve": hand_curve(), "avg_order_value": 50.0},
        [0.0, 0.1, {"name": "half", "budget_change": -0.5}],
        days=30,
        iterations=10,
        seed=1,
    )
    assert out["curve_source"] == "fitted" and out["days"] == 30 and out["iterations"] == 10
    assert out["response"] == "the campaign's response curve (adstock + Hill)"
    base = out["baseline"]
    assert base == {
        "spend": 370.37,
        "revenue": 15000.0,
        "roas": 40.5003,  # 15,000 / 370.368
        "conversions": 150.0,  # conversions_per_revenue wins over the order value
        "marginal_roas": 20.2501,  # 1000 x 0.25 / 12.3456
        "confidence_interval": [15000.0, 15000.0],
    }
    zero, up, half = out["scenarios"]
    assert {
        k: v for k, v in zero.items() if k not in ("name", "budget_change", "budget_change_percent")
    } == base
    assert (zero["name"], zero["budget_change"], zero["budget_change_percent"]) == ("+0%", 0.0, 0.0)
    assert (up["name"], up["budget_change"], up["budget_change_percent"]) == ("+10%", 0.1, 10.0)
    assert (half["name"], half["budget_change"], half["budget_change_percent"]) == ("half", -0.5, -50.0)
    for scenario, s in ((up, S0 * 1.1), (half, S0 * 0.5)):
        revenue = 30 * hand_day(s)
        assert rounded(scenario["spend"], 2, 30 * s, 0.005)
        assert rounded(scenario["revenue"], 2, revenue, 0.01)
        assert scenario["confidence_interval"] == [scenario["revenue"], scenario["revenue"]]
        assert rounded(scenario["roas"], 4, revenue / (30 * s), 1e-4)
        assert rounded(scenario["conversions"], 1, revenue * 0.01, 0.05)
        assert rounded(scenario["marginal_roas"], 4, hand_margin(s), 1e-4)
    assert up["revenue"] == pytest.approx(15714.29, abs=0.01)  # 1.1 / 2.1 of vmax a day


def test_conversions_come_from_the_curve_then_the_order_value_and_otherwise_none():
    def baseline(curve, **campaign):
        return BudgetSimulator().simulate(
            {"daily_spend": S0, "response_curve": curve, **campaign}, [], days=30, iterations=10, seed=1
        )["baseline"]

    assert baseline(hand_curve(), avg_order_value=50.0)["conversions"] == 150.0
    assert baseline(hand_curve(conversions_per_revenue=None), avg_order_value=50.0)["conversions"] == 300.0
    assert baseline(hand_curve(conversions_per_revenue=0.0), avg_order_value=50.0)["conversions"] == 300.0
    assert baseline(hand_curve(conversions_per_revenue=None))["conversions"] is None
    # a negative dispersion or level drift reads as none: the answer stays deterministic
    assert baseline(hand_curve(dispersion=-1.0, level_sd=-1.0))["confidence_interval"] == [15000.0, 15000.0]
    assert baseline(hand_curve(dispersion=None, level_sd=None))["confidence_interval"] == [15000.0, 15000.0]
    # a curve labelled pooled keeps its label; one labelled fallback (or without draws) is not used
    assert (
        BudgetSimulator().simulate(
            {"daily_spend": S0, "response_curve": hand_curve(curve_source="pooled")}, [], iterations=10
        )["curve_source"]
        == "pooled"
    )
    assert (
        BudgetSimulator().simulate(
            {"daily_spend": S0, "response_curve": hand_curve(curve_source=None)}, [], iterations=10
        )["curve_source"]
        == "fitted"
    )
    for unusable in (
        hand_curve(curve_source="fallback"),
        hand_curve(draws=None),
        hand_curve(draws=HAND * [1, 0, 1, 1, 1]),  # K = 0
        hand_curve(draws=HAND * [1, -1, 1, 1, 1]),  # K < 0
        hand_curve(draws=HAND * [np.nan, 1, 1, 1, 1]),
    ):
        out = BudgetSimulator().simulate(
            {"daily_spend": S0, "response_curve": unusable, "roas": 2.0}, [], iterations=10, seed=1
        )
        assert out["curve_source"] == "fallback", unusable
        assert out["response"] == "constant elasticity (no usable response curve)", unusable


def reference_horizon(draw, s: float, season: np.ndarray) -> float:
    """The documented horizon sum in float64: carried-over spend s + (state - s) x rate^t on days 1-4, its mean
    carry-over on days 5-12, the settled spend after; each day's Hill value times that day's season."""
    vmax, k, h, rate, state = draw

    def hill(a):
        return a**h / (a**h + k**h)

    total = sum(hill(s + (state - s) * rate**t) * season[t - 1] for t in range(1, min(len(season), 4) + 1))
    if len(season) > 4:
        last = min(len(season), 12)
        decay = np.mean([rate**t for t in range(5, last + 1)])
        total += hill(s + (state - s) * decay) * season[4:last].sum()
    if len(season) > 12:
        total += hill(s) * season[12:].sum()
    return vmax * total


@pytest.mark.parametrize("days", [1, 3, 4, 5, 6, 12, 13, 30])
def test_the_horizon_sum_carries_adstock_over_days_one_to_twelve(days):
    draw = np.array([VMAX, S0, 2.0, 0.5, 4 * S0])  # yesterday's carried-over spend 4x today's, halving daily
    season = np.linspace(0.8, 1.3, days)
    spends = np.array([[S0, 2 * S0, 0.5 * S0]])
    got = horizon_revenue(draw[None, None, :], spends, season[None])[0, :, 0]
    for j, s in enumerate(spends[0]):
        assert got[j] == pytest.approx(reference_horizon(draw, s, season), rel=2e-6)
        exact = VMAX * sum(
            (s + (4 * S0 - s) * 0.5**t) ** 2 / ((s + (4 * S0 - s) * 0.5**t) ** 2 + S0**2) * season[t - 1]
            for t in range(1, days + 1)
        )
        assert got[j] == pytest.approx(
            exact, rel=0.005
        )  # the day-5-12 shortcut is close to the day-by-day sum


def test_the_season_of_the_days_after_as_of_scales_revenue_and_the_marginal_return():
    coefficients = [0.1, -0.2, 0.05, 0.0, 0.3, -0.1, 0.2, 0.1, -0.05, 0.02]
    as_of = pd.Timestamp("2026-06-30 15:30")
    days = 9
    season = season_factor(coefficients, pd.date_range("2026-07-01", periods=days, freq="D"))
    assert not np.allclose(season, season[0])  # a season that moves from day to day
    for given in (coefficients, json.dumps(coefficients)):
        out = BudgetSimulator().simulate(
            {"daily_spend": S0, "response_curve": hand_curve(season=given, as_of=as_of)},
            [1.0],
            days=days,
            iterations=10,
        )
        assert out["baseline"]["revenue"] == pytest.approx(hand_day(S0) * season.sum(), abs=0.01)
        assert out["baseline"]["marginal_roas"] == pytest.approx(hand_margin(S0) * season.mean(), abs=1e-4)
        assert out["scenarios"][0]["revenue"] == pytest.approx(hand_day(2 * S0) * season.sum(), abs=0.01)
    # no as_of: a flat season
    flat = BudgetSimulator().simulate(
        {"daily_spend": S0, "response_curve": hand_curve(season=coefficients)}, [], days=days, iterations=10
    )
    assert flat["baseline"]["revenue"] == pytest.approx(hand_day(S0) * days, abs=0.01)


def reference_monte_carlo(draws, spend0, changes, season, phi, level_sd, iterations, seed, block):
    """simulate_arrays' draws replayed one campaign at a time: per block of campaigns the draw indices, the
    noise z and the level drift u, in that order, shared by every scenario of a campaign."""
    spend = spend0 * np.concatenate([[1.0], 1.0 + changes])[None, :]
    by_draw = horizon_revenue(draws, spend, season).astype(np.float32)
    rng = np.random.default_rng(seed)
    lo, hi = round(0.05 * (iterations - 1)), round(0.95 * (iterations - 1))
    out = {name: np.empty(spend.shape) for name in ("revenue", "p5", "p95")}
    for start in range(0, len(draws), block):
        n = min(block, len(draws) - start)
        idx = rng.integers(0, draws.shape[1], (n, iterations))
        z = rng.standard_normal((n, iterations), dtype=np.float32)
        u = rng.standard_normal((n, iterations), dtype=np.float32)
        for j in range(n):
            c = start + j
            sd_drift = np.float32(level_sd[c])
            drift = np.exp(u[j] * sd_drift - sd_drift**2 / 2)
            for k in range(spend.shape[1]):
                m = by_draw[c, k, idx[j]]
                sd = np.minimum(np.sqrt(np.float32(phi[c]) / np.maximum(m, np.float32(1e-9))), np.float32(2))
                revenue = np.sort(m * drift * np.exp(z[j] * sd - sd * sd * np.float32(0.5)))
                out["revenue"][c, k] = revenue.mean(dtype=np.float64)
                out["p5"][c, k], out["p95"][c, k] = revenue[lo], revenue[hi]
    return out


@pytest.mark.parametrize("iterations", [41, 50, 31])  # the 5% and 95% ranks round differently at each
def test_the_monte_carlo_shares_its_draws_across_scenarios_block_by_block(monkeypatch, iterations):
    import stratum_pipeline.ml.simulator as simulator

    rng = np.random.default_rng(0)
    n = 7
    draws = np.stack(  # three posterior draws a campaign, vmax 500-1500, K 5-20, shape 0.8-2, some adstock
        [
            np.column_stack(
                [
                    rng.uniform(500, 1500, 3),
                    rng.uniform(5, 20, 3),
                    rng.uniform(0.8, 2, 3),
                    rng.uniform(0, 0.6, 3),
                    rng.uniform(5, 20, 3),
                ]
            )
            for _ in range(n)
        ]
    )
    draws[6, :, 0] = 0.02  # a campaign whose revenue per day is below 1: the noise's floor is 1e-9, not 1
    spend0 = rng.uniform(5, 20, (n, 1))
    changes = np.array([0.0, 0.3, -0.4])
    season = rng.uniform(0.8, 1.2, (n, 20))
    phi = np.array([0.0, 5.0, 50.0, 1e9, 20.0, 3.0, 0.01])  # 1e9: the noise's CV capped at 2
    level_sd = np.array([0.0, 0.1, 0.3, 0.2, 0.0, 0.5, 0.05])
    monkeypatch.setattr(simulator, "MC_BLOCK_VALUES", 3 * iterations + 1)  # blocks of 3 campaigns: 3, 3, 1
    got = simulate_arrays(draws, spend0, changes, season, phi, iterations, np.random.default_rng(5), level_sd)
    want = reference_monte_carlo(draws, spend0, changes, season, phi, level_sd, iterations, 5, block=3)
    for name in ("revenue", "p5", "p95"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, err_msg=name)
    assert (got["p5"] < got["revenue"]).all() and (got["p5"] < got["p95"]).all()  # (a mean may pass p95)
    np.testing.assert_array_equal(got["revenue"][:, 0], got["revenue"][:, 1])  # +0%: the baseline exactly
    np.testing.assert_array_equal(got["spend"], spend0 * [1.0, 1.0, 1.3, 0.6] * 20)
    # the marginal return: the mean over draws of vmax h x (1 - x) / s at the steady state, times the mean season
    s = got["spend"] / 20
    x = s[:, :, None] ** draws[:, None, :, 2] / (
        s[:, :, None] ** draws[:, None, :, 2] + draws[:, None, :, 1] ** draws[:, None, :, 2]
    )
    margin = (draws[:, None, :, 0] * draws[:, None, :, 2] * x * (1 - x) / s[:, :, None]).mean(axis=2)
    np.testing.assert_allclose(got["marginal_roas"], margin * season.mean(axis=1)[:, None], rtol=1e-5)
    # the default block (2**19 values) holds all 7 campaigns: one block for the whole call
    monkeypatch.undo()
    whole = simulate_arrays(
        draws, spend0, changes, season, phi, iterations, np.random.default_rng(5), level_sd
    )
    want_whole = reference_monte_carlo(draws, spend0, changes, season, phi, level_sd, iterations, 5, block=n)
    np.testing.assert_allclose(whole["p95"], want_whole["p95"], rtol=1e-5)
    # no level drift given: none (zeros), the same as all-NaN
    none = simulate_arrays(draws, spend0, changes, season, phi, iterations, np.random.default_rng(5))
    nan = simulate_arrays(
        draws, spend0, changes, season, phi, iterations, np.random.default_rng(5), np.full(n, np.nan)
    )
    zero = reference_monte_carlo(draws, spend0, changes, season, phi, np.zeros(n), iterations, 5, block=n)
    np.testing.assert_allclose(none["revenue"], zero["revenue"], rtol=1e-5)
    np.testing.assert_allclose(nan["p5"], zero["p5"], rtol=1e-5)


# the partition frame feeds campaign_budget_scenarios: its columns are the table's but the tenant and the date
FRAME_COLUMNS = [c for c in SCENARIO_COLUMNS if c not in ("tenant_id", "date")]


def test_a_partition_frame_of_hand_made_curves_row_by_row():
    usable = hand_curve()
    rows = pd.DataFrame(
        [
            {"campaign_id": "a", "spend": S0, **usable},
            {"campaign_id": "b", "spend": str(2 * S0), **usable, "curve_source": "pooled"},
            {"campaign_id": "no curve", "spend": S0, **hand_curve(curve_source="fallback")},
            {"campaign_id": "no spend", "spend": 0.0, **usable},
            {"campaign_id": "negative spend", "spend": -S0, **usable},
            {"campaign_id": "text spend", "spend": "abc", **usable},
            {"campaign_id": "K = 0", "spend": S0, **hand_curve(draws=HAND * [1, 0, 1, 1, 1])},
            {"campaign_id": "NaN draw", "spend": S0, **hand_curve(draws=HAND * [np.nan, 1, 1, 1, 1])},
        ]
    )
    rows["conversions_per_revenue"] = [0.01, "x", 0.01, 0.01, 0.01, 0.01, 0.01, 0.01]
    rows["dispersion"] = [-1.0, None, 0, 0, 0, 0, 0, 0]  # negative or missing: no noise
    out = simulate_frame(rows, (0.1, -0.5), days=30, iterations=10, seed=2)
    assert list(out.columns) == FRAME_COLUMNS
    assert out["campaign_id"].tolist() == ["a"] * 3 + ["b"] * 3
    assert out["scenario"].tolist() == ["baseline", "+10%", "-50%"] * 2
    assert out["budget_change"].tolist() == [0.0, 0.1, -0.5] * 2
    assert (out["days"] == 30).all() and out["curve_source"].tolist() == ["fitted"] * 3 + ["pooled"] * 3
    for (_, row), s in zip(out.iterrows(), S0 * np.array([1, 1.1, 0.5, 2, 2.2, 1])):
        revenue = 30 * hand_day(s)
        assert rounded(row["spend"], 2, 30 * s, 0.005)
        assert rounded(row["revenue"], 2, revenue, 0.01)
        assert row["revenue_p5"] == row["revenue"] == row["revenue_p95"]  # no noise, no drift
        assert rounded(row["roas"], 4, revenue / (30 * s), 1e-4)
        assert rounded(row["marginal_roas"], 4, hand_margin(s), 1e-4)
    assert out["conversions"].tolist()[:3] == [round(r * 0.01, 1) for r in out["revenue"][:3]]
    assert out["conversions"].tolist()[:3] == [150.0, 157.1, 100.0]
    assert out["conversions"][3:].isna().all()  # text: unknown
    # the same numbers as one campaign through BudgetSimulator, to the cent
    single = BudgetSimulator().simulate(
        {"daily_spend": S0, "response_curve": usable}, [0.1, -0.5], days=30, iterations=10
    )
    assert out["revenue"].tolist()[:3] == [single["baseline"]["revenue"]] + [
        s["revenue"] for s in single["scenarios"]
    ]
    # a curve with another number of draws than the partition's is left out
    two = pd.DataFrame(
        [
            {"campaign_id": "a", "spend": S0, **usable},
            {"campaign_id": "two", "spend": S0, **hand_curve(draws=np.vstack([HAND, HAND]))},
        ]
    )
    assert simulate_frame(two, (), 30, 10)["campaign_id"].tolist() == ["two"]
    # nothing usable, or no rows: an empty frame with the columns
    for empty in (rows.iloc[2:5], rows.iloc[:0]):
        got = simulate_frame(empty, (0.2,), 30, 10)
        assert got.empty and list(got.columns) == FRAME_COLUMNS


def test_a_frame_uses_the_first_draws_and_the_optional_columns_and_parses_each_season():
    two = np.vstack([HAND, HAND * [3, 1, 1, 1, 1]])  # a second draw three times as high
    curve = hand_curve(draws=two)
    rows = pd.DataFrame([{"campaign_id": "a", "spend": S0, **curve}])
    first = simulate_frame(rows, (), 30, 200, seed=1, max_draws=1)
    assert first["revenue"].tolist() == [15000.0]
    both = simulate_frame(rows, (), 30, 200, seed=1)
    assert both["revenue_p5"].iloc[0] == 15000.0 and both["revenue_p95"].iloc[0] == 45000.0
    assert both["revenue"].iloc[0] == pytest.approx(30000.0, rel=0.15)  # half the iterations on each draw
    # without the optional columns: no noise, no drift, no conversions, a fitted curve
    bare = rows.drop(columns=["dispersion", "level_sd", "conversions_per_revenue", "curve_source"])
    got = simulate_frame(bare, (), 30, 10, max_draws=1)
    assert got["revenue"].tolist() == [15000.0] and got["conversions"].isna().all()
    assert got["curve_source"].tolist() == ["fitted"]
    # a season as JSON text or as a list, for every campaign that shares it
    coefficients = [0.1, -0.2, 0.05, 0.0, 0.3, -0.1, 0.2, 0.1, -0.05, 0.02]
    as_of = pd.Timestamp("2026-06-30")
    season = season_factor(coefficients, pd.date_range("2026-07-01", periods=9, freq="D"))
    for given in (json.dumps(coefficients), coefficients):
        seasonal = pd.DataFrame(
            [{"campaign_id": c, "spend": S0, **hand_curve(season=given, as_of=as_of)} for c in ("a", "b")]
        )
        got = simulate_frame(seasonal, (), 9, 10)
        assert got["revenue"].tolist() == pytest.approx([hand_day(S0) * season.sum()] * 2, abs=0.01)
        assert got["marginal_roas"].tolist() == pytest.approx([hand_margin(S0) * season.mean()] * 2, abs=1e-4)
    # the default scenarios, days, iterations and seed
    default = simulate_frame(pd.DataFrame([{"campaign_id": "a", "spend": S0, **hand_curve()}]))
    assert default["scenario"].tolist() == ["baseline", "-20%", "+20%", "+50%"]
    assert (default["days"] == 30).all() and default["revenue"].iloc[0] == 15000.0


def test_the_seed_request_s_budget_days_and_simulations_and_their_limits():
    curve = hand_curve()

    def run(**request):
        return BudgetSimulator().simulate({"response_curve": curve, **request}, [0.5], days=7, iterations=12)

    # only the budget given: the call's days, iterations and scenarios
    out = run(base_budget=S0 * 7)
    assert (
        out["days"] == 7
        and out["iterations"] == 12
        and out["baseline"]["spend"] == pytest.approx(S0 * 7, abs=0.005)
    )
    assert [s["budget_change"] for s in out["scenarios"]] == [0.5]
    assert out["baseline"]["revenue"] == pytest.approx(7 * VMAX / 2, abs=0.01)
    # the request's own horizon, simulations and scenarios win
    out = run(base_budget=S0 * 30, time_horizon_days=30, simulations=10, scenarios=[0.1, 0.2])
    assert out["days"] == 30 and out["iterations"] == 10
    assert [s["budget_change"] for s in out["scenarios"]] == [0.1, 0.2]
    assert out["baseline"]["revenue"] == pytest.approx(30 * VMAX / 2, abs=0.01)
    assert run(base_budget=0.5, time_horizon_days=1)["baseline"]["spend"] == 0.5
    assert run(base_budget=S0 * 366, time_horizon_days=366)["days"] == 366
    for bad, message in (
        (
            {"base_budget": 100.0, "time_horizon_days": 0},
            "time_horizon_days must be a number of at least 1 and at most 366",
        ),
        (
            {"base_budget": 100.0, "time_horizon_days": 367},
            "time_horizon_days must be a number of at least 1 and at most 366",
        ),
        ({"base_budget": 0.0}, "base_budget must be"),
        ({"time_horizon_days": 30}, "base_budget must be"),
        ({"base_budget": 100.0, "simulations": 9}, "iterations must be"),
    ):
        with pytest.raises(SimulationInputError, match=message):
            run(**bad)


# --- the constant-elasticity fallback replayed draw by draw, and the simulator's inputs at their limits ----------


def reference_fallback(spend0, roas0, elasticity, roas_sd, changes, days, iterations, seed, aov=None):
    """The fallback's documented draws in order: the ROAS level (lognormal, mean roas0), the elasticity (normal,
    clipped to 0.1-1.0), the days' noise (lognormal, sd 0.1); revenue = spend0 x level x multiplier^elasticity x
    the horizon's summed noise, the same draws for every scenario."""
    rng = np.random.default_rng(seed)
    level = roas0 * np.exp(rng.normal(-(roas_sd**2) / 2, roas_sd, iterations))
    beta = np.clip(rng.normal(elasticity, 0.1, iterations), 0.1, 1.0)
    noise = np.exp(rng.normal(-(0.1**2) / 2, 0.1, (iterations, days))).sum(axis=1)
    out = []
    for change in [0.0, *changes]:
        revenue = spend0 * level * (1 + change) ** beta * noise
        spend = spend0 * days * (1 + change)
        row = {
            "spend": round(spend, 2),
            "revenue": round(revenue.mean(), 2),
            "roas": round(revenue.mean() / spend, 4),
            "conversions": round(revenue.mean() / aov, 1) if aov else None,
            "confidence_interval": [round(v, 2) for v in np.percentile(revenue, [5, 95])],
        }
        if change:
            base = spend0 * level * noise
            row["marginal_roas"] = round((revenue - base).mean() / (spend - spend0 * days), 4)
            row["budget_change_percent"] = round(change * 100, 4)
        out.append(row)
    return out


@pytest.mark.parametrize(
    "campaign, elasticity, roas_sd, aov",
    [
        # elasticity near 1: draws above 1.0 are clipped; the 10-90% interval sets the level's spread
        (
            {
                "roas": 3.1,
                "elasticity": 0.95,
                "confidence_lower": 2.0,
                "confidence_upper": 4.5,
                "avg_order_value": 7.3,
            },
            0.95,
            np.log(4.5 / 2.0) / (2 * 1.2816),
            7.3,
        ),
        # elasticity near 0.1: draws below 0.1 are clipped; no interval: a spread of 0.15; an order value below 1
        ({"roas_7d": 2.2, "elasticity": 0.15, "avg_order_value": 0.5}, 0.15, 0.15, 0.5),
    ],
)
def test_the_fallback_is_its_documented_draws_to_the_cent(campaign, elasticity, roas_sd, aov):
    changes = [0.123456789, -0.5]
    out = BudgetSimulator().simulate(
        {"daily_spend": 123.457, **campaign}, changes, days=9, iterations=200, seed=11
    )
    roas0 = campaign.get("roas", campaign.get("roas_7d"))
    want = reference_fallback(123.457, roas0, elasticity, roas_sd, changes, 9, 200, 11, aov)
    assert out["baseline"] == want[0]
    for got, expected, change in zip(out["scenarios"], want[1:], changes):
        assert {k: got[k] for k in expected} == expected
        assert got["budget_change"] == change and got["name"] == f"{change:+.0%}"
    assert out["curve_source"] == "fallback" and out["days"] == 9 and out["iterations"] == 200
    assert out["response"] == "constant elasticity (no usable response curve)"


def test_the_simulator_s_defaults_and_the_edges_of_its_limits():
    sim = BudgetSimulator()
    campaign = {"daily_spend": 100.0, "roas": 2.0}
    default = sim.simulate(campaign, seed=3)
    assert default["days"] == 30 and default["iterations"] == 1000
    assert default == sim.simulate(campaign, None, 30, 1000, 3)
    # exactly 100 scenarios, and exactly 20,000,000 cells (2,000 iterations x 100 days x 100) are allowed
    assert (
        len(sim.simulate(campaign, [0.01 * i for i in range(100)], days=1, iterations=10)["scenarios"]) == 100
    )
    out = sim.simulate(campaign, [0.01 * i for i in range(1, 100)], days=100, iterations=2000, seed=1)
    assert len(out["scenarios"]) == 99
    # the seed's largest value, and one past it; seeds past 2**53 are taken exactly (not rounded to another seed)
    assert sim.simulate(campaign, [], iterations=10, seed=2**63 - 1)["baseline"]["revenue"] > 0
    assert sim.simulate(campaign, [], iterations=10, seed=2**53 + 1) != sim.simulate(
        campaign, [], iterations=10, seed=2**53
    )
    with pytest.raises(SimulationInputError, match="seed must be"):
        sim.simulate(campaign, [], iterations=10, seed=2**63)
    # percent and fraction at their limits: +10,000% is allowed, a fraction given beside a percent wins
    out = sim.simulate(
        campaign,
        [{"budget_change_percent": 10_000}, {"budget_change_percent": 20, "budget_change": 0.5}, 100.0],
        iterations=10,
    )
    assert [s["budget_change"] for s in out["scenarios"]] == [100.0, 0.5, 100.0]
    for scenario, message in (
        (
            {"budget_change_percent": 10_001},
            "budget_change_percent must be a number and at most 10000, got 10001",
        ),
        ({"budget_change": 100.001}, "budget_change must be a number and at most 100, got 100.001"),
        (100.001, "budget_change must be a number and at most 100, got 100.001"),
    ):
        with pytest.raises(SimulationInputError) as caught:
            sim.simulate(campaign, [scenario], iterations=10)
        assert str(caught.value) == message
    # a tiny budget still has a ROAS; a vanishing one no marginal ROAS (1 / extra spend is not finite)
    tiny = sim.simulate({"daily_spend": 0.01, "roas": 2.0}, [0.5], iterations=10, seed=1)
    assert tiny["baseline"]["roas"] is not None and tiny["scenarios"][0]["roas"] is not None
    vanishing = sim.simulate({"daily_spend": 1e-310, "roas": 2.0}, [0.5], iterations=10, seed=1)
    assert vanishing["scenarios"][0]["marginal_roas"] is None
    # 1 / extra spend still finite (7.95e-309 extra: 1.26e308), though 2 / extra spend would not be
    barely = sim.simulate({"daily_spend": 5.3e-310, "roas": 2.0}, [0.5], iterations=10, seed=1)
    assert barely["scenarios"][0]["marginal_roas"] is not None


@pytest.mark.parametrize(
    "campaign, message",
    [
        ([1, 2], "campaign must be a dict, got list"),
        (
            {"daily_spend": -1.0, "roas": 2.0},
            "daily_spend must be a positive number and at most 1e+12, got -1.0",
        ),
        (
            {"daily_spend": 1.0, "roas": 2.0, "avg_order_value": "x"},
            "avg_order_value must be a number, got 'x'",
        ),
        ({"daily_spend": 1.0, "roas": 2.0, "elasticity": "x"}, "elasticity must be a number, got 'x'"),
        # any of the seed request's keys makes it one: it needs its base_budget
        (
            {"daily_spend": 1.0, "roas": 2.0, "simulations": 10},
            "base_budget must be a finite number, got None",
        ),
    ],
)
def test_the_simulator_names_the_bad_input(campaign, message):
    with pytest.raises((SimulationInputError, TypeError)) as caught:
        BudgetSimulator().simulate(campaign, [], iterations=10)
    assert str(caught.value) == message


def test_the_curve_path_takes_a_row_object_the_seed_and_the_level_drift():
    from collections import namedtuple

    curve = hand_curve(dispersion=50.0, level_sd=0.2)
    row = namedtuple("Row", list(curve))(**curve)  # a frame row as itertuples gives it
    campaign = {"daily_spend": S0}
    one = BudgetSimulator().simulate(
        {**campaign, "response_curve": curve}, [0.123456789], iterations=50, seed=4
    )
    assert (
        BudgetSimulator().simulate({**campaign, "response_curve": row}, [0.123456789], iterations=50, seed=4)
        == one
    )
    assert one["scenarios"][0]["budget_change_percent"] == 12.3457
    other = BudgetSimulator().simulate(
        {**campaign, "response_curve": curve}, [0.123456789], iterations=50, seed=5
    )
    assert other["baseline"]["revenue"] != one["baseline"]["revenue"]
    low, high = one["baseline"]["confidence_interval"]
    without_drift = BudgetSimulator().simulate(
        {**campaign, "response_curve": hand_curve(dispersion=50.0)}, [], iterations=50, seed=4
    )
    assert high - low > 1.5 * np.subtract(*without_drift["baseline"]["confidence_interval"][::-1])
    # the partition path reads the same columns: the level drift widens the interval there too
    frame = pd.DataFrame([{"campaign_id": "a", "spend": S0, **curve}])
    drift = simulate_frame(frame, (), 30, 50, seed=4)
    flat = simulate_frame(frame.drop(columns="level_sd"), (), 30, 50, seed=4)
    assert (drift["revenue_p95"] - drift["revenue_p5"]).iloc[0] > 1.5 * (
        flat["revenue_p95"] - flat["revenue_p5"]
    ).iloc[0]
    noiseless = simulate_frame(frame.drop(columns=["level_sd", "dispersion"]), (), 30, 50, seed=4)
    assert noiseless["revenue_p5"].iloc[0] == noiseless["revenue_p95"].iloc[0] == 15000.0
    # the frame's defaults: 1,000 iterations and seed 0
    pd.testing.assert_frame_equal(
        simulate_frame(frame), simulate_frame(frame, STANDARD_SCENARIOS, 30, 1000, 0)
    )
    assert not simulate_frame(frame).equals(simulate_frame(frame, STANDARD_SCENARIOS, 30, 1000, 1))
    # a half-saturation below 1 and a daily spend below 1 are usable; zero conversions per revenue is 0
    small = pd.DataFrame(
        [{"campaign_id": "k", "spend": 0.5, **hand_curve(draws=HAND * [1, 0.5 / S0, 1, 1, 0.5 / S0])}]
    ).assign(conversions_per_revenue=0.0)
    got = simulate_frame(small, (), 30, 10)
    assert got["revenue"].tolist() == pytest.approx([15000.0], abs=0.01) and got["conversions"].tolist() == [
        0.0
    ]


def test_a_curve_s_own_inputs_at_their_edges():
    def run(curve, spend=S0, changes=(), **kwargs):
        return BudgetSimulator().simulate(
            {"daily_spend": spend, "response_curve": curve}, list(changes), **kwargs
        )

    for field in ("dispersion", "conversions_per_revenue", "level_sd"):
        with pytest.raises(InputError) as caught:
            run(hand_curve(**{field: "abc"}), iterations=10)
        assert str(caught.value) == f"{field} must be a number, got 'abc'"
    # a missing as_of (NaT) is a flat season, as None is
    coefficients = [0.1, -0.2, 0.05, 0.0, 0.3, -0.1, 0.2, 0.1, -0.05, 0.02]
    flat = run(hand_curve(season=coefficients, as_of=pd.NaT), days=9, iterations=10)
    assert flat["baseline"]["revenue"] == pytest.approx(hand_day(S0) * 9, abs=0.01)
    # dispersion alone spreads the outcomes (0.5 is some); a half-saturation below 1 is a usable curve
    low, high = run(hand_curve(dispersion=0.5), iterations=200, seed=1)["baseline"]["confidence_interval"]
    assert low < 15000.0 < high
    frame = pd.DataFrame([{"campaign_id": "a", "spend": S0, **hand_curve(dispersion=0.5)}])
    spread = simulate_frame(frame, (), 30, 200, seed=1)
    assert (spread["revenue_p5"] < 15000.0).all() and (spread["revenue_p95"] > 15000.0).all()
    small = HAND * [1, 0.5 / S0, 1, 1, 0.5 / S0]  # K = 0.5 and a daily spend of 0.5 (below 1): half of vmax
    out = run(hand_curve(draws=small), spend=0.5, changes=[1.0], iterations=10)
    assert out["curve_source"] == "fitted" and out["baseline"]["revenue"] == pytest.approx(15000.0, abs=0.01)
    assert out["baseline"]["roas"] == pytest.approx(1000.0, abs=1e-4)  # 15,000 over a spend of 15
    assert out["baseline"]["marginal_roas"] == pytest.approx(1000 * 0.25 / 0.5, abs=1e-3)
    assert out["scenarios"][0]["marginal_roas"] == pytest.approx(1000 * (2 / 9) / 1.0, abs=1e-3)
    tiny = run(hand_curve(draws=small), spend=0.02, iterations=10)  # a horizon's spend of 0.6 has a ROAS
    assert tiny["baseline"]["spend"] == 0.6 and tiny["baseline"]["roas"] is not None
