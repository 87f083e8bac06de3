"""Monitoring benchmark: does the monitoring loop notice each kind of change, ask for one retrain, and help?

For each noise regime and seed it generates one world of seven tenants: five each get one injected change
(demo/changes.py, fixed sizes, all starting on day 0 = END - 60) and two are untouched. Every tenant's ROAS
and conversion models are trained on the data before day 0 (90 days, 14-day holdout, the drift profile with
its noise levels as modelops.training keeps it), then the days from day -14 to the end are replayed one by one.

What is replayed, and how: NOT the Dagster jobs and sensor (two months of in-process runs per tenant and world
do not fit the 10-minute budget here; benchmarks/monitoring_dagster.py runs one world through them), but the
same functions they call, in the same order:
- forecasts: the serving champion's `ROASPredictor.predict_frame` on each day's campaign features;
- `forecast_accuracy`: ml.monitoring.forecast_accuracy / recent_accuracy / accuracy_degraded over the last 7
  days against the version's holdout MAE, or bias_degraded (the last 2 days' relative bias against the
  holdout's day-to-day bias noise): the asset's rule;
- `feature_drift`: ml.monitoring.feature_drift on the last 7 days against the champion's profile, then
  persistent_drift (k of n days) and, for conversion, calibration; retrain on drift_needs_retraining or a
  calibration failure (the asset's rule);
- `retraining_sensor`: the day's signals (accuracy; drift or calibration) and `returning` through the same
  `modelops.retraining.step` the sensor calls (one episode per tenant-model, cooldown, self-correcting, the
  wait, nothing more after a refusal); a requested retrain runs at once and its outcome reaches the next day's
  step. ROAS retrains use the sensor's 35-day window, conversion retrains the full one, both from the
  decision's change date (`recent_from`; `--no-recent`: without it, as before #21's recency work);
- training: modelops.training's holdout rule, fit_roas / fit_conversion and modelops.gate.decide (no MLflow).

Printed per change kind, regime and seed:
- detection delay: days from day 0 to the first signal naming the changed model (accuracy degraded, drift
  alarm = a feature failing its noise-calibrated k-of-n rule, or calibration failing), and which signal;
- retrain requests for the changed model (in all, and the most in one episode), the policy's action on each
  change (`wait@0 self@3 retrain@27`: action@day) and the gate's decisions;
- forecast error and recovery, loop vs no action (the original champion left alone). ROAS error: the MAE of
  the next-day forecast against the *expected* (ground-truth) ROAS, relative to the mean expected ROAS of the
  day's campaigns (scale-free, so a lower ROAS level does not look like a better model); conversion error:
  the log loss above the oracle's (true probabilities) over the last 7 days' sessions, each scored by the model
  that served on its day (a retrain is never scored on the sessions it trained on). Recovery: the first day from
  day 0 whose 3-day mean error and the next two days' are within 10% of the mean of days -14..-1 (`never` if
  not within the replay). Beside them the naive forecast (trailing 7-day ROAS) and the oracle (error 0 by
  construction for ROAS against the expected ROAS); errors over days 0-20 and 21 to the end;
- recovery bound (response change, conversion shift; `--no-oracle` skips it): retrains that know the true
  change day, at day 7, 14 and 21, served from the next day without a gate: post-change days only, the
  sensor's window with the post-change rows weighted (ml.recency), and for conversion the original model's
  log-odds shifted on the post-change sessions (alone and after a weighted fit). If no such retrain recovers
  30% faster than no action, no policy can;
- level shift: our detection day beside an oracle detector that knows the true pre-change mean
  (`oracle_detection`);
- false alarms: drift alarm episodes (runs of days with any feature alarming) on the untouched tenants, per
  tenant-month, and accuracy-degraded episodes on them.
Targets of issue #21 are printed beside the figures. "Training runs failing because of a correct refusal" is
measured by benchmarks/monitoring_dagster.py (real runs), not here.

    python benchmarks/monitoring.py [--regimes low realistic] [--seeds 1 2] [--campaigns 20] [--wait 28 7]
        [--kinds ...] [--no-recent] [--no-oracle]

Runtime: 3.5-4 minutes per regime and seed with the oracle bound on the shared 2-core machine (load ~6), so
~7.5 minutes per regime with two seeds (run the regimes as two processes).
"""

from __future__ import annotations

import os

# One thread per process: on this shared machine XGBoost/OpenMP threads oversubscribe the cores (a ROAS fit
# took 120 s instead of 7 s). Set before numpy and xgboost load.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import date, timedelta  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from stratum_pipeline.demo.changes import KINDS, MODEL, Change  # noqa: E402
from stratum_pipeline.demo.features import feature_frames  # noqa: E402
from stratum_pipeline.demo.generator import NOISE_REGIMES, DemoConfig, TenantSpec, generate  # noqa: E402
from stratum_pipeline.ml import monitoring as M  # noqa: E402
from stratum_pipeline.ml.conversion import ConversionPredictor  # noqa: E402
from stratum_pipeline.ml.evaluation import best_naive_roas, conversion_metrics, roas_metrics  # noqa: E402
from stratum_pipeline.ml.recency import POST_SHARE, recent_weights  # noqa: E402
from stratum_pipeline.ml.roas import TARGET, ROASPredictor, training_frame  # noqa: E402
from stratum_pipeline.modelops.gate import decide  # noqa: E402
from stratum_pipeline.modelops.retraining import RETRAIN, WAIT_DAYS, episode_key, step  # noqa: E402
from stratum_pipeline.modelops.training import (  # noqa: E402
    fit_conversion,
    fit_roas,
    holdout_split,
    recent_holdout_days,
)

END = date(2026, 6, 30)
DAY0 = END - timedelta(days=60)  # 60 days after the change: long enough to see a retrain that waited act
HISTORY_DAYS = 170  # the 90 training days before day -14, and the replay
BEFORE = 14  # replayed days before the change: the pre-change error level and quiet days
TRAIN_DAYS = 90
HOLDOUT_DAYS = 14
RETRAIN_WINDOW = {"roas": 35, "conversion": TRAIN_DAYS}  # the sensor's windows (conversion: the full one)
SIZES = {
    "level_shift": 0.6,
    "response_change": 0.45,
    "conversion_shift": 0.5,
    "traffic_mix_shift": 0.5,
    "seasonal_jump": 1.6,
}
UNTOUCHED = ("steady_a", "steady_b")
RECOVERY_TOLERANCE = 0.10
TARGETS = {
    "detection_level_shift_days": 2,
    "false_alarms_per_tenant_month": 1.0,
    "requests_per_episode": 1,
    "faster_where_retraining_helps": 0.30,  # response_change, conversion_shift
}
HELPS = ("response_change", "conversion_shift")
SHORT = {
    "retrain": "retrain",
    "cooldown": "cool",
    "promoted": "promoted",
    "self_correcting": "self",
    "waiting": "wait",
    "after_refusal": "hold",
}


@dataclass
class Model:
    version: int
    predictor: object
    profile: dict
    holdout: dict


@dataclass
class Track:
    """One tenant-model through the replay."""

    tenant: str
    model_type: str
    models: list[Model] = field(default_factory=list)
    serving: list[tuple[pd.Timestamp, int]] = field(default_factory=list)  # (from day, version index)
    requests: list[int] = field(default_factory=list)  # day offsets
    decisions: list[str] = field(default_factory=list)
    signals: dict[int, list[str]] = field(default_factory=dict)  # day offset -> signals
    drift_alarm_days: list[int] = field(default_factory=list)
    degraded_days: list[int] = field(default_factory=list)
    episode_requests: list[int] = field(default_factory=list)  # retrain requests per episode
    actions: list[str] = field(default_factory=list)  # the policy's action on each change, "action@day"
    gate_reasons: list[str] = field(default_factory=list)  # the gate's summary of each retrain

    def champion_at(self, day: pd.Timestamp) -> int:
        current = 0
        for since, index in self.serving:
            if day >= since:
                current = index
        return current


def _world(regime: str, seed: int, campaigns: int):
    tenants = tuple(TenantSpec(k, k, campaigns, HISTORY_DAYS, 300) for k in KINDS) + tuple(
        TenantSpec(t, t, campaigns, HISTORY_DAYS, 300) for t in UNTOUCHED
    )
    changes = tuple(Change(k, k, start=DAY0, size=SIZES[k], days=14) for k in KINDS)
    config = DemoConfig(
        end_date=END,
        seed=seed,
        tenants=tenants,
        bad_row_rate=0.0,
        noise=NOISE_REGIMES[regime],
        anomalies=False,
        changes=changes,
    )
    data = generate(config)
    campaign, sessions, _ = feature_frames(data)
    campaign["date"] = pd.to_datetime(campaign["date"])
    sessions["date"] = pd.to_datetime(sessions["date"])
    truth = data["truth_campaign_daily"][["campaign_id", "date", "expected_roas"]].copy()
    truth["date"] = pd.to_datetime(truth["date"]) - pd.Timedelta(days=1)  # keyed by the forecast's day
    frame = training_frame(campaign).merge(
        truth.rename(columns={"expected_roas": "expected_next"}), on=["campaign_id", "date"], how="left"
    )
    sessions = sessions.merge(data["truth_sessions"], on="session_id", how="left")
    return frame, campaign, sessions


def _fit(model_type: str, rows: pd.DataFrame, champion: Model | None, version: int, recent_from=None):
    """As modelops.training does: hold out the last HOLDOUT_DAYS (for a change on `recent_from`: the later half
    of the post-change days), fit (weighted and, for conversion, recalibrated after a change), evaluate both on
    the holdout, gate: (Model, decision)."""
    target_day = rows["date"] + pd.Timedelta(days=1 if model_type == "roas" else 0)
    train, test = holdout_split(rows, recent_holdout_days(target_day, recent_from, HOLDOUT_DAYS))
    if model_type == "roas":
        predictor, _ = fit_roas(train, recent_from)

        def evaluate(model):
            forecast = model.predict_frame(test)
            return {
                **roas_metrics(test[TARGET], forecast),
                **best_naive_roas(test[TARGET], test),
                "daily_bias_sd": M.daily_bias_sd(test["date"], test[TARGET], forecast["predicted_roas"]),
            }
    else:
        predictor, _ = fit_conversion(train, recent_from)

        def evaluate(model):
            return conversion_metrics(test["converted"], model.predict_proba(test), model.threshold_)

    metrics = evaluate(predictor)
    decision = decide(model_type, metrics, evaluate(champion.predictor) if champion else None)
    profile = M.feature_profile(M.reference_rows(train), M.DRIFT_FEATURES[model_type])
    profile["noise"] = M.noise_levels(train, profile)
    return Model(version, predictor, profile, metrics), decision


def _window(frame: pd.DataFrame, end: pd.Timestamp, days: int) -> pd.DataFrame:
    return frame[(frame["date"] > end - pd.Timedelta(days=days)) & (frame["date"] <= end)]


def _roas_error(predicted, today: pd.DataFrame) -> float:
    """The next-day forecasts' MAE against the expected ROAS, relative to the day's mean expected ROAS."""
    scale = today["expected_next"].mean()
    return float(np.abs(np.asarray(predicted) - today["expected_next"].to_numpy()).mean() / scale)


def _served_errors(model_type: str, rows: pd.DataFrame, days, model_for) -> dict[int, float]:
    """The daily error of what was served ({offset from day0: error}); `model_for(day)` is the predictor serving
    on that day. ROAS: the relative MAE of the day's next-day forecasts against the expected ROAS. Conversion:
    the log loss above the oracle's (true probabilities) over the last 7 days' sessions, each session scored
    by the model that served on its day (never by a model that later trained on it)."""
    day0, out, scored = days[0], {}, {}
    if model_type == "conversion":  # the days before the first: the first day's model served them
        for before in pd.date_range(
            days[0] - pd.Timedelta(days=M.NOISE_WINDOW_DAYS - 1), days[0], inclusive="left"
        ):
            scored[before] = _session_scores(model_for(days[0]), rows[rows["date"] == before])
    for day in days:
        today = rows[rows["date"] == day]
        offset = (day - day0).days
        if model_type == "roas":
            if len(today):
                out[offset] = _roas_error(model_for(day).predict_frame(today)["predicted_roas"], today)
            continue
        scored[day] = _session_scores(model_for(day), today)
        window = [scored[d] for d in pd.date_range(day - pd.Timedelta(days=M.NOISE_WINDOW_DAYS - 1), day)]
        p, q, y = (np.concatenate(parts) for parts in zip(*window))
        out[offset] = float(
            -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
            + (y * np.log(q) + (1 - y) * np.log(1 - q)).mean()
        )
    return out


def _session_scores(predictor, sessions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.clip(predictor.predict_proba(sessions), 1e-6, 1 - 1e-6) if len(sessions) else np.empty(0)
    q = np.clip(sessions["true_probability"].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    return p, q, sessions["converted"].to_numpy(dtype=float)


def _replay(
    track: Track,
    rows: pd.DataFrame,
    day0: pd.Timestamp,
    last: pd.Timestamp,
    wait: dict | None,
    recent: bool = True,
):
    """Run the monitoring loop for one tenant-model from day -BEFORE to `last`; returns the daily error of the
    served model and of the original champion ({offset: error})."""
    first = day0 - pd.Timedelta(days=BEFORE)
    model_type = track.model_type
    drift_rows: list[pd.DataFrame] = []
    key = episode_key(track.tenant, f"{model_type}_model")
    state: dict = {}
    outcomes: dict[str, str] = {}
    forecasts = []
    for day in pd.date_range(first, last):
        offset = (day - day0).days
        index = track.champion_at(day)
        champion = track.models[index]
        signals = []
        if model_type == "roas":
            today = rows[rows["date"] == day]
            if today.empty:
                continue
            pred = champion.predictor.predict_frame(today)
            forecasts.append(
                today[["campaign_id", "tenant_id"]].assign(
                    forecast_date=day + pd.Timedelta(days=1),
                    model_name="roas",
                    model_version=str(champion.version),
                    predicted_roas=pred["predicted_roas"].to_numpy(),
                    confidence_lower=pred["confidence_lower"].to_numpy(),
                    confidence_upper=pred["confidence_upper"].to_numpy(),
                )
            )
            # forecast_accuracy on day D sees the forecasts whose target day (<= D) has its actual
            made = pd.concat(forecasts[-8:], ignore_index=True)
            known = pd.concat(
                [
                    rows[(rows["date"] >= day - pd.Timedelta(days=7)) & (rows["date"] < day)][
                        ["campaign_id", "date", TARGET]
                    ].rename(columns={"date": "forecast_date", TARGET: "actual_roas"})
                ],
                ignore_index=True,
            )
            known["forecast_date"] = known["forecast_date"] + pd.Timedelta(days=1)
            accuracy = M.forecast_accuracy(made, known)
            degraded = False
            returning = {}
            for r in M.recent_accuracy(accuracy, 7).itertuples(index=False):
                holdout = track.models[int(r.model_version) - 1].holdout
                bad = M.accuracy_degraded(r.mae, holdout["mae"])[0]
                version_days = accuracy[accuracy["model_version"] == r.model_version]
                bad = bad or M.bias_degraded(version_days, holdout.get("daily_bias_sd"))[0]
                degraded |= bad
                if bad and M.error_returning(version_days)[0]:  # the asset's `returning`
                    returning[key] = "returning"
            if degraded:
                signals.append("accuracy")
                track.degraded_days.append(offset)
            window = _window(rows, day, M.NOISE_WINDOW_DAYS)
        else:
            returning = {}
            today = rows[rows["date"] == day]
            window = _window(rows, day, M.NOISE_WINDOW_DAYS)
            calibration = M.calibration(
                champion.predictor.predict_proba(window), window["converted"].astype(float)
            )
            if M.calibration_status(calibration["rate_gap"]) == "fail":
                signals.append("calibration")
        drift = M.feature_drift(champion.profile, window).assign(
            tenant_id=track.tenant, model_name=model_type, model_version=str(champion.version), date=day
        )
        drift = M.persistent_drift(
            drift, pd.concat(drift_rows[-(M.PERSIST_WINDOW - 1) :]) if drift_rows else None
        )
        drift_rows.append(drift)
        if (drift["status"] == "fail").any():
            track.drift_alarm_days.append(offset)
            signals.append("drift")
        # the sensor: the day's signals through the retraining policy (modelops/retraining.py)
        named = {}
        if "accuracy" in signals:
            named[key] = {"accuracy"}
        if M.drift_needs_retraining(drift["status"]) or "calibration" in signals:
            named.setdefault(key, set()).add("drift")
        opened = key in named and "opened" not in state.get(key, {})
        state, decisions = step(state, day.date(), named, returning, outcomes, wait)
        outcomes = {}
        if opened:
            track.episode_requests.append(0)
        for decision in decisions:
            if decision.changed:
                track.actions.append(f"{SHORT[decision.action]}@{offset}")
            if decision.action == RETRAIN:
                track.requests.append(offset)
                track.episode_requests[-1] += 1
                outcomes[key] = _retrain(track, rows, day, decision.recent_from if recent else None)
        if signals:
            track.signals[offset] = signals
    days = list(pd.date_range(first, last))
    served = _served_errors(model_type, rows, days, lambda d: track.models[track.champion_at(d)].predictor)
    original = _served_errors(model_type, rows, days, lambda d: track.models[0].predictor)
    shift = BEFORE  # offsets from day -BEFORE to offsets from day 0
    return {k - shift: v for k, v in served.items()}, {k - shift: v for k, v in original.items()}


def _retrain(track: Track, rows: pd.DataFrame, day: pd.Timestamp, recent_from: str | None = None) -> str:
    window = _window(
        rows,
        day - pd.Timedelta(days=1 if track.model_type == "roas" else 0),
        RETRAIN_WINDOW[track.model_type],
    )
    champion = track.models[track.champion_at(day)]
    try:
        model, decision = _fit(track.model_type, window, champion, len(track.models) + 1, recent_from)
    except Exception as exc:  # too little data in the window: the run's outcome, not a crash of the loop
        track.decisions.append(f"not trained ({type(exc).__name__})")
        return "failed"
    track.decisions.append("promoted" if decision.promote else "refused")
    track.gate_reasons.append(f"day {(day - pd.Timestamp(DAY0)).days}: {decision.summary}")
    track.models.append(model)
    if decision.promote:
        track.serving.append((day + pd.Timedelta(days=1), len(track.models) - 1))
    return "promoted" if decision.promote else "refused"


ORACLE_DAYS = (7, 14, 21)  # the oracle retrains on these days after the true change
ORACLE_VARIANTS = {
    "roas": ("post", "weighted"),
    "conversion": ("post", "weighted", "recalibrated", "weighted+recal"),
}


def _oracle_model(model_type: str, variant: str, original, rows: pd.DataFrame, day0, day):
    """A retrain on `day` that knows the true change day: 'post' trains on the post-change days only;
    'weighted' on the sensor's window with the post-change rows given POST_SHARE of the weight;
    'recalibrated' is the original model with its log-odds shifted to fit the post-change sessions;
    'weighted+recal' both. ROAS rows are dated the day before their target (a row is post-change when its
    target is)."""
    if model_type == "roas":
        known = rows[rows["date"] <= day - pd.Timedelta(days=1)]
        target_day = known["date"] + pd.Timedelta(days=1)
        if variant == "post":
            train = known[target_day >= day0]
            return ROASPredictor().fit(train, train[TARGET])
        train = _window(known, day - pd.Timedelta(days=1), RETRAIN_WINDOW["roas"])
        weight = recent_weights(train["date"] + pd.Timedelta(days=1), day0)
        return ROASPredictor().fit(train, train[TARGET], sample_weight=weight)
    known = rows[rows["date"] <= day]
    post = known[known["date"] >= day0]
    if variant == "post":
        return ConversionPredictor().fit(post, post["converted"])
    if variant == "recalibrated":
        return original.recalibrated(post, post["converted"])
    train = _window(known, day, RETRAIN_WINDOW["conversion"])
    model = ConversionPredictor().fit(
        train, train["converted"], sample_weight=recent_weights(train["date"], day0)
    )
    return model.recalibrated(post, post["converted"]) if variant == "weighted+recal" else model


def oracle_retrains(model_type: str, original, rows: pd.DataFrame, day0, original_err: dict) -> list[dict]:
    """How fast can any retrain recover? For each ORACLE_DAYS day and variant, the retrained model serves from
    the next day on (no gate: a bound, not a policy); its error series is the original's before that."""
    out = []
    last = rows["date"].max()
    pre = float(np.mean([original_err[k] for k in original_err if k < 0]))
    for after in ORACLE_DAYS:
        day = day0 + pd.Timedelta(days=after)
        for variant in ORACLE_VARIANTS[model_type]:
            try:
                model = _oracle_model(model_type, variant, original, rows, day0, day)
            except ValueError as exc:  # e.g. too few post-change conversions for a fit of its own
                out.append({"day": after, "variant": variant, "recovery": f"n/a ({str(exc)[:30]})"})
                continue
            first = day0 - pd.Timedelta(days=BEFORE)
            err = _served_errors(
                model_type, rows, list(pd.date_range(first, last)), lambda d: model if d > day else original
            )
            err = {k - BEFORE: v for k, v in err.items()}
            late = [err[k] for k in err if k >= 21]
            out.append(
                {
                    "day": after,
                    "variant": variant,
                    "recovery": _recovery(err, pre),
                    "err_21_": float(np.mean(late)),
                }
            )
    return out


ORACLE_FALSE_ALARMS_PER_DAY = 1 / 30  # the oracle detector's threshold: one false alarm per tenant-month


def oracle_detection(rows: pd.DataFrame, day0: pd.Timestamp, factor: float) -> dict[str, float]:
    """What a detector knowing the truth can do: the day's mean realised ROAS against the mean *expected* ROAS the
    tenant would have had without the change (the generator's truth; the level shift multiplied it by `factor`
    from day 0), relative: r = actual / expected - 1. Its noise is the tenant's own: the threshold is the
    1 - ORACLE_FALSE_ALARMS_PER_DAY quantile of |r| (one day) or of |2-day mean r| over the 60 days before the
    change. Returns the first day >= 0 beyond it (one day and two days), and the thresholds."""
    day = rows["date"] + pd.Timedelta(
        days=1
    )  # the target's day: TARGET and expected_next are next-day values
    expected = rows["expected_next"].where(day < day0, rows["expected_next"] / factor)
    daily = pd.DataFrame({"day": day, "actual": rows[TARGET], "expected": expected}).groupby("day").mean()
    r = (daily["actual"] / daily["expected"] - 1).dropna()
    out = {}
    for name, series in (("1d", r), ("2d", r.rolling(2).mean())):
        pre = series[(series.index < day0) & (series.index >= day0 - pd.Timedelta(days=60))].abs().dropna()
        threshold = float(pre.quantile(1 - ORACLE_FALSE_ALARMS_PER_DAY))
        post = series[series.index >= day0]
        beyond = post[post.abs() > threshold]
        out[f"oracle_{name}"] = float((beyond.index[0] - day0).days) if len(beyond) else np.nan
        out[f"oracle_{name}_threshold"] = threshold
    return out


def _recovery(err: dict[int, float], pre: float) -> str:
    days = sorted(k for k in err if k >= 0)
    series = pd.Series([err[k] for k in days], index=days).rolling(3, min_periods=1).mean()
    ok = series <= pre * (1 + RECOVERY_TOLERANCE)
    for i, k in enumerate(days[: len(days) - 2]):
        if ok.iloc[i] and ok.iloc[i + 1] and ok.iloc[i + 2]:
            return str(k)
    return "never"


def _episodes(days: list[int]) -> int:
    return sum(1 for i, d in enumerate(days) if i == 0 or days[i - 1] != d - 1)


def run(
    regime: str,
    seed: int,
    campaigns: int,
    wait: dict | None = None,
    kinds=KINDS,
    oracle: bool = True,
    recent: bool = True,
) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    frame, _, sessions = _world(regime, seed, campaigns)
    day0, last = pd.Timestamp(DAY0), frame["date"].max()
    rows_out, quiet, oracles, bounds = [], [], [], []
    for tenant in (*kinds, *UNTOUCHED):
        for model_type in ("roas", "conversion"):
            if tenant in KINDS and MODEL[tenant] != model_type:
                continue
            source = frame if model_type == "roas" else sessions
            rows = source[source["tenant_id"] == tenant].reset_index(drop=True)
            initial = _window(rows, day0 - pd.Timedelta(days=BEFORE + 1), TRAIN_DAYS)
            model, _ = _fit(model_type, initial, None, 1)
            track = Track(tenant, model_type, [model], [(day0 - pd.Timedelta(days=BEFORE), 0)])
            served, original = _replay(track, rows, day0, last, wait, recent)
            span = len(served)
            if tenant in UNTOUCHED:
                quiet.append(
                    {
                        "tenant": tenant,
                        "model": model_type,
                        "days": span,
                        "drift_alarm_episodes": _episodes(track.drift_alarm_days),
                        "degraded_episodes": _episodes(track.degraded_days),
                        "requests": len(track.requests),
                        "actions": " ".join(track.actions) or "-",
                    }
                )
                continue
            pre = float(np.mean([served[k] for k in served if k < 0]))
            after = [k for k in served if 0 <= k < 21]
            late = [k for k in served if k >= 21]
            detected = [k for k in sorted(track.signals) if k >= 0]
            naive = np.nan
            if model_type == "roas":
                post = rows[(rows["date"] >= day0) & (rows["date"] < day0 + pd.Timedelta(days=21))]
                naive = float(
                    (
                        np.abs(post["roas_7d"] - post["expected_next"]).groupby(post["date"]).mean()
                        / post.groupby("date")["expected_next"].mean()
                    ).mean()
                )
            rows_out.append(
                {
                    "kind": tenant,
                    "regime": regime,
                    "seed": seed,
                    "detect_day": detected[0] if detected else None,
                    "detected_by": "+".join(track.signals[detected[0]]) if detected else "-",
                    "requests": len(track.requests),
                    "max_per_episode": max(track.episode_requests, default=0),
                    "actions": " ".join(track.actions) or "-",
                    "gate": ",".join(track.decisions) or "-",
                    "pre_err": pre,
                    "loop_err_0_20": float(np.mean([served[k] for k in after])),
                    "none_err_0_20": float(np.mean([original[k] for k in after])),
                    "naive_err_0_20": naive,
                    "loop_err_21_": float(np.mean([served[k] for k in late])),
                    "none_err_21_": float(np.mean([original[k] for k in late])),
                    "recovery_loop": _recovery(served, pre),
                    "recovery_none": _recovery(original, pre),
                    "gate_reasons": track.gate_reasons,
                }
            )
            if oracle and tenant in HELPS:
                for o in oracle_retrains(model_type, track.models[0].predictor, rows, day0, original):
                    bounds.append({"kind": tenant, "regime": regime, "seed": seed, **o})
            if tenant == "level_shift":
                oracles.append(
                    {"regime": regime, "seed": seed, **oracle_detection(rows, day0, SIZES[tenant])}
                )
    return rows_out, quiet, oracles, bounds


def _oracle_days(value: str, horizon: int) -> float:
    return float(horizon + 1) if value == "never" or value.startswith("n/a") else float(value)


def _days(value: str, horizon: int) -> float:
    return float(horizon + 1) if value == "never" else float(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimes", nargs="+", default=["low", "realistic"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), help="the changed tenants to replay")
    parser.add_argument(
        "--wait",
        nargs=2,
        type=int,
        metavar=("ROAS", "CONVERSION"),
        help=f"override the policy's WAIT_DAYS (now {WAIT_DAYS['roas_model']} and {WAIT_DAYS['conversion_model']})",
    )
    parser.add_argument(
        "--no-recent",
        action="store_true",
        help="retrains get no change date (unweighted, no recalibration, the usual holdout: the loop before)",
    )
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle retrains (recovery bound)")
    args = parser.parse_args(argv)
    wait = dict(zip(("roas_model", "conversion_model"), args.wait)) if args.wait else None
    started = time.perf_counter()
    changed, quiet, oracles, bounds = [], [], [], []
    for regime in args.regimes:
        for seed in args.seeds:
            t = time.perf_counter()
            a, b, c, d = run(
                regime, seed, args.campaigns, wait, tuple(args.kinds), not args.no_oracle, not args.no_recent
            )
            changed += a
            oracles += c
            bounds += d
            quiet += [{**q, "regime": regime, "seed": seed} for q in b]
            print(f"# {regime} seed {seed}: {time.perf_counter() - t:.0f}s", file=sys.stderr)
    table = pd.DataFrame(changed)
    horizon = (END - DAY0).days - 1
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    print(
        f"Monitoring benchmark: {len(args.regimes)} regimes x seeds {args.seeds}, {args.campaigns} campaigns per "
        f"tenant; change on day 0 = {DAY0}, replay days -{BEFORE}..{horizon}; errors: ROAS relative MAE vs the "
        "expected ROAS, conversion log loss above the oracle's (oracle error = 0 on both)\n"
    )
    print(table.drop(columns="gate_reasons").to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nGate decisions on the changed tenants' retrains:")
    for r in table.itertuples(index=False):
        for reason in r.gate_reasons:
            print(f"  {r.kind} {r.regime} seed {r.seed}, {reason}")
    if bounds:
        print(
            "\nRecovery bound: oracle retrains that know the true change day, served from the next day without a "
            "gate\n(post = post-change days only; weighted = the sensor's window, post-change rows "
            f"{POST_SHARE:.0%} of the weight; recalibrated = the original's log-odds shifted on the post-change "
            "sessions), beside the loop and no action:"
        )
        bound = pd.DataFrame(bounds)
        bound["at"] = bound["variant"] + "@" + bound["day"].astype(str)
        wide = bound.pivot_table(
            index=["kind", "regime", "seed"], columns="at", values="recovery", aggfunc="first"
        ).reset_index()
        wide = wide.merge(table[["kind", "regime", "seed", "recovery_loop", "recovery_none"]])
        print(wide.to_string(index=False))
        late = bound.pivot_table(
            index=["kind", "regime", "seed"], columns="at", values="err_21_"
        ).reset_index()
        late = late.merge(table[["kind", "regime", "seed", "loop_err_21_", "none_err_21_"]])
        print("\nError after day 21 (same runs):")
        print(late.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    q = pd.DataFrame(quiet)
    months = q["days"].sum() / 30.0
    print("\nUntouched tenants (2 per world, both models):")
    print(q.to_string(index=False))
    verdicts = []
    level = table[table["kind"] == "level_shift"]
    if len(level):
        print(
            "\nLevel shift (order value x0.6) detection, ours beside an oracle detector that knows the true "
            "pre-change mean\n(threshold: 1 false alarm per tenant-month on the tenant's own 60 days before; "
            "'2d' = mean of 2 days):"
        )
        both = level[["regime", "seed", "detect_day", "detected_by"]].merge(pd.DataFrame(oracles))
        print(both.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        delays = level["detect_day"].fillna(horizon + 1)
        verdicts.append(
            (
                "level shifts (40%) detected within 2 days",
                f"delays {', '.join(f'{d:.0f}' for d in delays)} d (max {delays.max():.0f}); untouched tenants: "
                f"{q.loc[q['model'] == 'roas', 'degraded_episodes'].sum()} accuracy episodes",
                (delays <= TARGETS["detection_level_shift_days"]).all(),
            )
        )
    rate = q["drift_alarm_episodes"].sum() / months
    verdicts.append(
        (
            "drift false alarms on untouched tenants <= 1 per tenant-month",
            f"{rate:.2f} per tenant-month ({q['drift_alarm_episodes'].sum()} episodes / {months:.1f} tenant-months)",
            rate <= TARGETS["false_alarms_per_tenant_month"],
        )
    )
    verdicts.append(
        (
            "retrain requests per degradation episode <= 1",
            f"max {table['max_per_episode'].max()} per episode; per change: max {table['requests'].max()}, "
            f"mean {table['requests'].mean():.2f}; untouched tenants: {q['requests'].sum()} requests",
            table["max_per_episode"].max() <= TARGETS["requests_per_episode"],
        )
    )
    loop = table["recovery_loop"].map(lambda v: _days(v, horizon))
    none = table["recovery_none"].map(lambda v: _days(v, horizon))
    verdicts.append(
        (
            "recovery with the loop never slower than no action",
            f"slower in {(loop > none).sum()} of {len(table)} cases",
            (loop <= none).all(),
        )
    )
    helps = table["kind"].isin(HELPS)
    faster = (none[helps] - loop[helps]) / none[helps].clip(lower=1)
    verdicts.append(
        (
            "recovery >= 30% faster where retraining can help (response change, conversion shift)",
            f"median {faster.median():+.0%} (loop {loop[helps].median():.0f} d vs none {none[helps].median():.0f} d)",
            (faster >= TARGETS["faster_where_retraining_helps"]).all(),
        )
    )
    for kind in HELPS:  # per kind, with the best any oracle retrain reached on the same runs
        mine = table["kind"] == kind
        if not mine.any():
            continue
        figure = (
            f"median {faster[mine[helps]].median():+.0%}, per run "
            + ", ".join(f"{f:+.0%}" for f in faster[mine[helps]])
            + f" (loop {', '.join(table.loc[mine, 'recovery_loop'])} d vs none "
            f"{', '.join(table.loc[mine, 'recovery_none'])} d)"
        )
        if bounds:
            best = pd.DataFrame(bounds)
            best = best[best["kind"] == kind].assign(
                days=lambda b: b["recovery"].map(lambda v: _oracle_days(v, horizon))
            )
            runs = best.groupby(["regime", "seed"])["days"].min().reset_index()
            runs = runs.merge(table.loc[mine, ["regime", "seed", "recovery_none"]])
            gains = (runs["recovery_none"].map(lambda v: _days(v, horizon)) - runs["days"]) / runs[
                "recovery_none"
            ].map(lambda v: _days(v, horizon)).clip(lower=1)
            figure += "; the best oracle retrain per run: " + ", ".join(f"{g:+.0%}" for g in gains)
        met = (faster[mine[helps]] >= TARGETS["faster_where_retraining_helps"]).all()
        verdicts.append((f"  {kind}: >= 30% faster", figure, met))
    verdicts.append(
        (
            "training runs failing because of a correct gate refusal: 0",
            "not measured here: benchmarks/monitoring_dagster.py runs the loop through Dagster",
            None,
        )
    )
    print("\nTargets of issue #21:")
    for name, figure, met in verdicts:
        status = "n/a" if met is None else "MET" if met else "NOT MET"
        print(f"  {status:<8} {name}: {figure}")
    print(f"\nruntime {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
