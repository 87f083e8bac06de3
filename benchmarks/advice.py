"""Advice benchmark: creative fatigue and budget recommendations against what truly happens next.

For each noise regime and seed it generates the demo tenants (120 days, no bad rows, no anomalies).

Fatigue. The truth (demo.generator, truth_creative_daily): each creative-day's true CTR retention (its CTR
over its fresh CTR), its band (low >= 0.85 > medium >= 0.70 > high >= 0.50 > critical) and the first day its
retention is below 0.5. The scorer is calibrated (ml.fatigue.calibrate) on the creative-days of the first
60 days and scored on days 61-90 (days 91-120 only tell when those creatives truly cross). Printed for the
scorer, the naive rule (the creative's CTR over its last 7 days relative to its first 7 days, cut at the same
bands) and the scorer with the default calibration: level accuracy, macro-F1 of the four levels, and the MAE
of days until critical over the creative-days whose true crossing is 1-30 days ahead (a missing forecast
counts as 31 days). The oracle line: the true retention's levels and, for the days, the forecast from the
creative's true decay rate with our delivery forecast (what knowing the creative perfectly would leave).

Recommendations. On decision days D (the last day and 14 days before), the response curves are fitted on the
days up to D (ml.response_curves), the ROAS model (one model for all tenants) on the campaign features up to
D; every campaign that spent on D and has a usable curve gets the new rule (marginal returns on its curve) and
the current rule (average-ROAS forecast and its interval). The truth (benchmarks.budget_advice.truth): the
expected revenue of the 30 days after D at today's spend and at the recommended budget, from the generator's
true response functions (carry-over, seasonality and creative effectiveness included). An `increase` is
right if its added spend truly returns above the target ROAS, a `decrease` if its removed spend truly
returned below it. The oracle: the new rule on the true curve (every campaign's true best step).

    python benchmarks/advice.py [--regimes low realistic] [--seeds 7 11] [--target 1.0] [--calibrate]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

import numpy as np
import pandas as pd

from benchmarks.budget_advice import END, HORIZON, source_frame, truth
from stratum_pipeline.demo.features import feature_frames
from stratum_pipeline.demo.generator import NOISE_REGIMES, DemoConfig, generate, retention_level, seasonality
from stratum_pipeline.ml import fatigue
from stratum_pipeline.ml.fatigue import FatigueScorer, calibrate, with_recent_frequency
from stratum_pipeline.ml.response_curves import fit_response_curves
from stratum_pipeline.ml.roas import (
    EDGE_SHAPE,
    STEPS_DOWN,
    STEPS_UP,
    TARGET,
    ROASPredictor,
    curve_draw_array,
    curve_recommendations,
    marginal_recommendation_arrays,
    recommendation_arrays,
    training_frame,
    trend_array,
)

TARGETS = {
    "accuracy": 0.9,
    "macro_f1": 0.8,
    "days_mae": 3.0,
    "increase_right": 0.9,
    "decrease_right": 0.9,
    "fatigue_p50_ms": 0.5,
    "batch_100k_s": 2.0,
}
TRAIN_DAYS, EVAL_DAYS = 60, 30
DECISION_OFFSETS = (0, 14)  # decision days: END and 14 days before
TRAINING_OFFSETS = (
    28,
    42,
    56,
)  # decision days on which --calibrate chooses the model error of the marginal rule
STEPS = np.array([*STEPS_UP, *(-c for c in STEPS_DOWN)])
STEP_INDEX = {round(100 * c): k for k, c in enumerate(STEPS)}
LEVELS = ["low", "medium", "high", "critical"]


def macro_f1(truth_levels, predicted) -> float:
    t, p = np.asarray(truth_levels), np.asarray(predicted)
    scores = []
    for level in LEVELS:
        tp = np.sum((p == level) & (t == level))
        denominator = np.sum(p == level) + np.sum(t == level)
        scores.append(2 * tp / denominator if denominator else 1.0)
    return float(np.mean(scores))


def fatigue_rows(ds, creative: pd.DataFrame) -> pd.DataFrame:
    """Creative features (with the frequency of 7 days before) with the truth and the naive rule's CTR ratio
    (last 7 days / first 7 days)."""
    truth_table = ds["truth_creative_daily"].assign(date=lambda t: pd.to_datetime(t["date"]))
    daily = ds["creative_daily_metrics"].assign(date=lambda t: pd.to_datetime(t["date"]))
    daily = daily.sort_values(["creative_id", "date"])
    first7 = daily.groupby("creative_id").head(7).groupby("creative_id")[["clicks", "impressions"]].sum()
    first_ctr = (first7["clicks"] / first7["impressions"].where(first7["impressions"] > 0)).rename(
        "ctr_first7"
    )
    rows = (
        with_recent_frequency(creative)
        .merge(truth_table, on=["creative_id", "date"])
        .merge(first_ctr, on="creative_id", how="left")
    )
    until = (pd.to_datetime(rows["true_critical_date"]) - rows["date"]).dt.days
    rows["true_days"] = until.where((until >= 1) & (until <= 30))
    return rows


def naive_fatigue(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Levels and days until critical of the naive rule: r = CTR(last 7 days) / CTR(first 7 days), its linear
    decline since the first week's middle extrapolated to 0.5."""
    r = (rows["ctr_current"] / rows["ctr_first7"]).to_numpy(float)
    r = np.where(np.isfinite(r), r, 1.0)
    span = np.maximum(rows["days_active"].to_numpy(float) - 7.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        days = np.where(r < 1, np.ceil((r - 0.5) / ((1 - r) / span)), np.nan)
    return retention_level(r), np.where(r < 0.5, 0.0, days)


def oracle_days(rows: pd.DataFrame, days_scale: float) -> np.ndarray:
    """Days until critical from the creative's true decay rate (today's true retention over its frequency)
    and our delivery forecast."""
    per_day, before, _, _ = fatigue.exposure(fatigue.model_inputs(rows))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = -np.log(rows["true_ctr_retention"].to_numpy(float)) / before
        remaining = (np.log(2.0) / rate - before) / per_day
    return np.where(rows["true_ctr_retention"] < 0.5, 0.0, np.ceil(days_scale * np.maximum(remaining, 0.0)))


def days_mae(rows: pd.DataFrame, days) -> float:
    crossing = rows["true_days"].notna().to_numpy()
    predicted = np.nan_to_num(np.asarray(days, dtype=float)[crossing], nan=31.0)
    return float(np.mean(np.abs(predicted - rows["true_days"].to_numpy()[crossing])))


def evaluate_fatigue(ds, creative: pd.DataFrame) -> dict:
    rows = fatigue_rows(ds, creative)
    start = rows["date"].min()
    train = rows[rows["date"] < start + timedelta(days=TRAIN_DAYS)]
    test = rows[
        (rows["date"] >= start + timedelta(days=TRAIN_DAYS))
        & (rows["date"] < start + timedelta(days=TRAIN_DAYS + EVAL_DAYS))
    ].reset_index(drop=True)
    cal = calibrate(train, train["true_days"])
    out = {"rows": len(test), "crossing_rows": int(test["true_days"].notna().sum()), "calibration": cal}
    for name, scorer in (("scorer", FatigueScorer(cal)), ("scorer (default calibration)", FatigueScorer())):
        scored = scorer.score_frame(test)
        out[name] = (
            float((scored["fatigue_level"] == test["true_retention_level"]).mean()),
            macro_f1(test["true_retention_level"], scored["fatigue_level"]),
            days_mae(test, scored["days_until_critical"]),
        )
    levels, days = naive_fatigue(test)
    out["naive (CTR last 7 d / first 7 d)"] = (
        float((levels == test["true_retention_level"]).mean()),
        macro_f1(test["true_retention_level"], levels),
        days_mae(test, days),
    )
    out["oracle (true retention; true decay rate)"] = (
        1.0,
        1.0,
        days_mae(test, oracle_days(test, cal.days_scale)),
    )
    return out


def true_step_roas(
    ds, ids: list[str], s0: np.ndarray, day, steps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """True incremental ROAS over the next HORIZON days of each step (C, K) and the true curves (C, 1, 5)."""
    expected, _, oracle = truth(ds, ids, s0, np.random.default_rng(0), end=day, changes=steps)
    added = (expected[:, 1:] - expected[:, :1]) / (steps[None, :] * s0[:, None] * HORIZON)
    return added, oracle


def decision_day(ds, daily: pd.DataFrame, campaign: pd.DataFrame, day, target: float) -> dict | None:
    """Curves and ROAS model fitted up to `day`; the campaigns that spent on it with a usable curve, the current
    rule's answer, the true incremental ROAS of every step and the oracle's answer."""
    t0 = time.perf_counter()
    curves = fit_response_curves(daily[pd.to_datetime(daily["date"]) <= pd.Timestamp(day)], day)
    seconds = time.perf_counter() - t0
    train = training_frame(campaign[campaign["date"] < pd.Timestamp(day)])
    model = ROASPredictor().fit(train, train[TARGET])
    rows = campaign[(campaign["date"] == pd.Timestamp(day)) & (campaign["spend"] > 0)]
    rows = rows.merge(curves.drop(columns=["tenant_id"]), on="campaign_id", how="inner")
    rows = rows[curve_draw_array(rows)[1]].reset_index(drop=True)
    if rows.empty:
        return None
    forecast = model.predict_frame(rows)
    trend = trend_array(rows["roas_7d"], rows["roas_30d"])
    current = recommendation_arrays(
        forecast["predicted_roas"],
        forecast["confidence_lower"],
        forecast["confidence_upper"],
        rows["roas_7d"],
        rows["roas_30d"],
        rows["spend_velocity"],
        trend,
        target,
    )
    s0 = rows["spend"].to_numpy(float)
    true_roas, oracle = true_step_roas(ds, rows["campaign_id"].tolist(), s0, day, STEPS)
    future = pd.date_range(pd.Timestamp(day) + timedelta(days=1), periods=HORIZON, freq="D")
    season = np.full(len(rows), seasonality(future).mean())
    best = marginal_recommendation_arrays(oracle, s0, season, target, edge_shape=None)
    return {"rows": rows, "current": current, "true_roas": true_roas, "oracle": best, "fit_seconds": seconds}


def tally(answers, true_roas: np.ndarray, target: float, into: dict) -> None:
    """Count each increase (decrease) whose added (removed) spend truly returns above (below) the target."""
    change, action, _ = answers
    for i, (c, a) in enumerate(zip(change, action)):
        if a == "maintain":
            into["maintain"] += 1
            continue
        m = true_roas[i, STEP_INDEX[int(c)]]
        into[a].append(m > target if a == "increase" else m < target)


def evaluate_recommendations(
    ds, campaign: pd.DataFrame, target: float, offsets=DECISION_OFFSETS, variants=None
) -> dict:
    """Tallies of the new rule (each variant: keyword arguments of marginal_recommendation_arrays; default
    {"new": {}}), the current rule and the oracle over the decision days."""
    variants = {"new": {}} if variants is None else variants
    daily = source_frame(ds)
    campaign = campaign.assign(date=pd.to_datetime(campaign["date"]))
    tallies = {
        rule: {"increase": [], "decrease": [], "maintain": 0} for rule in [*variants, "current", "oracle"]
    }
    campaigns, fit_seconds = 0, 0.0
    for offset in offsets:
        d = decision_day(ds, daily, campaign, END - timedelta(days=offset), target)
        if d is None:
            continue
        campaigns += len(d["rows"])
        fit_seconds += d["fit_seconds"]
        for name, rule in variants.items():
            new = curve_recommendations(*d["current"], d["rows"], d["rows"]["spend"], target, **rule)
            tally(new, d["true_roas"], target, tallies[name])
        tally(d["current"], d["true_roas"], target, tallies["current"])
        tally(d["oracle"], d["true_roas"], target, tallies["oracle"])
    return {"campaigns": campaigns, "fit_seconds": fit_seconds, "tallies": tallies}


def speed(ds, campaign: pd.DataFrame) -> dict:
    """Fatigue P50 per calculate_score call; the recommendations of 100,000 forecasts with curves."""
    creative = with_recent_frequency(feature_frames(ds)[2])
    scorer = FatigueScorer()
    records = creative.sample(1000, random_state=0)[[*fatigue.FEATURES, *fatigue.OPTIONAL]].to_dict("records")
    times = []
    for record in records:
        t0 = time.perf_counter()
        scorer.calculate_score(record)
        times.append(time.perf_counter() - t0)
    day = END
    curves = fit_response_curves(source_frame(ds), day)
    rows = campaign[pd.to_datetime(campaign["date"]) == pd.Timestamp(day)]
    rows = rows[rows["spend"] > 0].merge(curves.drop(columns=["tenant_id"]), on="campaign_id")
    big = rows.iloc[np.arange(100_000) % len(rows)].reset_index(drop=True)
    n = len(big)
    predicted = big["roas_7d"].to_numpy(float)
    t0 = time.perf_counter()
    trend = trend_array(big["roas_7d"], big["roas_30d"])
    current = recommendation_arrays(
        predicted,
        0.8 * predicted,
        1.2 * predicted,
        big["roas_7d"],
        big["roas_30d"],
        big["spend_velocity"],
        trend,
    )
    curve_recommendations(*current, big, big["spend"])
    return {
        "fatigue_p50_ms": 1000 * float(np.median(times)),
        "batch_rows": n,
        "batch_100k_s": time.perf_counter() - t0,
    }


def share(flags: list) -> str:
    return f"{np.mean(flags):.0%} of {len(flags)}" if flags else "none"


def dataset(regime: str, seed: int):
    return generate(
        DemoConfig(end_date=END, seed=seed, noise=NOISE_REGIMES[regime], bad_row_rate=0.0, anomalies=False)
    )


def calibration(target: float, log_sds=(0.15, 0.25, 0.35, 0.5)) -> None:
    """Seed 7, both regimes: ml.fatigue's calibration on the training period (pooled), and the marginal rule's
    precision on the training decision days for each model-error sd, with and without the edge check
    (MARGINAL_LOG_SD and EDGE_SHAPE are chosen from these)."""
    parts = []
    variants = {
        (sd, edge): {"log_sd": sd, "edge_shape": edge} for sd in log_sds for edge in (None, EDGE_SHAPE)
    }
    for regime in ("low", "realistic"):
        ds = dataset(regime, 7)
        campaign, _, creative = feature_frames(ds)
        rows = fatigue_rows(ds, creative)
        parts.append(rows[rows["date"] < rows["date"].min() + timedelta(days=TRAIN_DAYS)])
        tallies = evaluate_recommendations(ds, campaign, target, TRAINING_OFFSETS, variants)["tallies"]
        for (sd, edge), t in ((key, tallies[key]) for key in variants):
            print(
                f"{regime}: log sd {sd}, edge shape {edge}: increase right {share(t['increase'])}, "
                f"decrease right {share(t['decrease'])}"
            )
    pooled = pd.concat(parts, ignore_index=True)
    print(calibrate(pooled, pooled["true_days"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--regimes", nargs="*", default=["low", "realistic"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[7, 11])
    parser.add_argument("--target", type=float, default=1.0, help="the tenants' target ROAS")
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="print ml.fatigue's calibration on seed 7's training period, both regimes pooled",
    )
    args = parser.parse_args(argv)
    if args.calibrate:
        calibration(args.target)
        return 0
    fatigue_lines, advice_lines, ok = [], [], True
    for regime in args.regimes:
        for seed in args.seeds:
            ds = dataset(regime, seed)
            campaign, _, creative = feature_frames(ds)
            f = evaluate_fatigue(ds, creative)
            for name in (
                "scorer",
                "naive (CTR last 7 d / first 7 d)",
                "scorer (default calibration)",
                "oracle (true retention; true decay rate)",
            ):
                acc, f1, mae = f[name]
                fatigue_lines.append(f"| {regime}, {seed} | {name} | {acc:.3f} | {f1:.3f} | {mae:.2f} |")
            scorer, naive = f["scorer"], f["naive (CTR last 7 d / first 7 d)"]
            ok &= (
                scorer[0] >= TARGETS["accuracy"] and scorer[1] >= TARGETS["macro_f1"] and scorer[1] > naive[1]
            )
            ok &= scorer[2] <= TARGETS["days_mae"]
            print(
                f"{regime} seed {seed}: {f['rows']} creative-days scored ({f['crossing_rows']} crossing within 30 "
                f"days); calibration {f['calibration']}",
                file=sys.stderr,
            )
            r = evaluate_recommendations(ds, campaign, args.target)
            t = r["tallies"]
            for rule, label in (
                ("new", "marginal (curve)"),
                ("current", "average ROAS (current)"),
                ("oracle", "oracle (true curve)"),
            ):
                advice_lines.append(
                    f"| {regime}, {seed} | {label} | {share(t[rule]['increase'])} | "
                    f"{share(t[rule]['decrease'])} | {t[rule]['maintain']} |"
                )
            for action in ("increase", "decrease"):
                new = t["new"][action]
                ok &= not new or np.mean(new) >= TARGETS[f"{action}_right"]
            print(
                f"{regime} seed {seed}: {r['campaigns']} campaign-days with a usable curve, curve fits "
                f"{r['fit_seconds']:.1f} s",
                file=sys.stderr,
            )
    print(
        "Fatigue against the true retention bands (days 61-90; MAE over creative-days crossing within 30 days)\n"
    )
    print("| regime, seed | rule | level accuracy | macro-F1 | MAE days until critical |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(fatigue_lines))
    print(
        f"\nBudget recommendations against the true 30-day marginal return (target ROAS {args.target:g}; "
        f"decision days {END} and {END - timedelta(days=14)})\n"
    )
    print(
        "| regime, seed | rule | increase: added spend truly above target | decrease: removed spend truly "
        "below target | maintain |"
    )
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(advice_lines))
    ds = dataset("realistic", 7)
    s = speed(ds, feature_frames(ds)[0])
    print(
        f"\nSpeed: fatigue P50 {s['fatigue_p50_ms']:.3f} ms per score (target <= {TARGETS['fatigue_p50_ms']}); "
        f"recommendations of {s['batch_rows']:,} forecasts with curves {s['batch_100k_s']:.2f} s "
        f"(target <= {TARGETS['batch_100k_s']})"
    )
    ok &= s["fatigue_p50_ms"] <= TARGETS["fatigue_p50_ms"] and s["batch_100k_s"] <= TARGETS["batch_100k_s"]
    print(f"\nall targets met: {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
