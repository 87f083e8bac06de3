"""Training a tenant's (or the global default) model, registering it, and running the promotion gate.

No Dagster here: the model assets call `train_roas` / `train_conversion` with the rows they read
and the registry resource, and turn the outcome into a materialisation and a check result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd

from stratum_pipeline.ml.anomalies import touches_flagged
from stratum_pipeline.ml.conversion import ConversionPredictor
from stratum_pipeline.ml.evaluation import best_naive_roas, conversion_metrics, roas_metrics
from stratum_pipeline.ml.features import CONVERSION_FEATURES
from stratum_pipeline.ml.monitoring import (
    DRIFT_FEATURES,
    PROFILE_ARTIFACT,
    daily_bias_sd,
    feature_profile,
    noise_levels,
    reference_rows,
)
from stratum_pipeline.ml.recency import POST_SHARE, recent_weights
from stratum_pipeline.ml.roas import TARGET, ROASPredictor, training_frame
from stratum_pipeline.ml.sampling import stratified_tenants
from stratum_pipeline.modelops.gate import GateDecision, decide
from stratum_pipeline.modelops.plots import HOLDOUT_PLOT, conversion_holdout_plot, roas_holdout_plot
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.tenancy import DEFAULT_MODEL_OWNER


@dataclass(frozen=True)
class DataMinimum:
    """The seed's minimums for a tenant model of its own."""

    campaigns: int = 100  # ROAS: campaigns with...
    campaign_days: int = 30  # ...at least this many days of data
    sessions: int = 10_000  # conversion


@dataclass
class TrainingOutcome:
    tenant: str
    model_type: str
    served_by: str  # the tenant's own model, or "default"
    metadata: dict = field(default_factory=dict)
    decision: GateDecision | None = None

    @property
    def trained(self) -> bool:
        return self.decision is not None


def holdout_split(
    frame: pd.DataFrame, holdout_days: int, date_column: str = "date"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on the past, test on the most recent `holdout_days` days (never a random split)."""
    dates = pd.to_datetime(frame[date_column])
    cut = dates.max() - timedelta(days=holdout_days)
    return frame[dates <= cut].reset_index(drop=True), frame[dates > cut].reset_index(drop=True)


# A retrain told the date of a change (`recent_from`, the retraining policy's "retrain from <date>") weights the
# post-change rows (ml.recency.recent_weights) and judges on a holdout made of post-change days only: half of them,
# at least MIN_RECENT_HOLDOUT_DAYS, at most the usual holdout. So it can act before a whole window of new days.
MIN_RECENT_HOLDOUT_DAYS = 3
MIN_RECALIBRATION_SESSIONS = 500  # post-change training sessions the conversion model's log-odds shift needs


def recent_holdout_days(dates, recent_from, holdout_days: int) -> int:
    """The holdout for a retrain after a change on `recent_from`: half the post-change days in `dates` (at least
    MIN_RECENT_HOLDOUT_DAYS, at most `holdout_days`); `holdout_days` when there is no change date."""
    if not recent_from:
        return holdout_days
    day = pd.to_datetime(pd.Series(dates)).dt.normalize()
    post_days = int(day[day >= pd.Timestamp(recent_from)].nunique())
    return int(min(holdout_days, max(MIN_RECENT_HOLDOUT_DAYS, post_days // 2)))


def check_isolation(frame: pd.DataFrame, tenant: str) -> None:
    if tenant != DEFAULT_MODEL_OWNER:
        others = set(frame["tenant_id"].unique()) - {tenant}
        if others:
            raise ValueError(f"training rows for tenant {tenant} include other tenants: {sorted(others)}")


def roas_eligibility(features: pd.DataFrame, minimum: DataMinimum) -> tuple[bool, dict]:
    days = features.groupby("campaign_id")["date"].nunique() if len(features) else pd.Series(dtype=int)
    qualified = int((days >= minimum.campaign_days).sum())
    detail = {
        f"campaigns_with_{minimum.campaign_days}_days": qualified,
        "minimum_campaigns": minimum.campaigns,
    }
    return qualified >= minimum.campaigns, detail


def conversion_eligibility(sessions: pd.DataFrame, minimum: DataMinimum) -> tuple[bool, dict]:
    return len(sessions) >= minimum.sessions, {
        "sessions": int(len(sessions)),
        "minimum_sessions": minimum.sessions,
    }


@dataclass(frozen=True)
class Challenger:
    """A freshly trained model and what the gate needs to judge it against the champion."""

    model_type: str
    tenant: str
    predictor: object
    metrics: dict  # its holdout metrics
    holdout: pd.DataFrame  # the rows the champion is evaluated on too
    evaluate: Callable[[object, pd.DataFrame], dict]  # (model, rows) -> metrics
    input_example: pd.DataFrame  # a few rows of its input, for the MLflow signature
    params: dict  # logged to MLflow
    tags: dict  # logged to MLflow (the Dagster run, partition, tenant)
    train_rows: pd.DataFrame  # its training rows: their feature profile is kept beside the model
    plots: dict[str, bytes] = field(
        default_factory=dict
    )  # PNG pictures of its holdout, logged to its MLflow run


def register_and_gate(challenger: Challenger, registry) -> TrainingOutcome:
    """Register the challenger in MLflow, evaluate the champion on the same holdout, and move the `champion`
    alias only if the gate promotes it; a refused version is tagged archived."""
    model_type, tenant, metrics = challenger.model_type, challenger.tenant, challenger.metrics
    predictor, test, evaluate, example = (
        challenger.predictor,
        challenger.holdout,
        challenger.evaluate,
        challenger.input_example,
    )
    params, tags, train = challenger.params, challenger.tags, challenger.train_rows
    name = model_name(model_type, tenant)
    # The training distribution of each watched feature, kept beside the model: drift checks compare against it,
    # with the PSI the tenant's own week-to-week variation reaches (its noise level).
    profile = feature_profile(reference_rows(train), DRIFT_FEATURES[model_type])
    profile["noise"] = noise_levels(train, profile)
    registered = registry.log_and_register(
        name, predictor, example, params, metrics, tags, {PROFILE_ARTIFACT: profile}, challenger.plots
    )
    champion_version = registry.champion_version(name)
    champion_metrics, champion_error = None, None
    if champion_version is not None and champion_version != registered.version:
        try:
            champion_metrics = evaluate(registry.load(name, champion_version), test)
        except Exception as exc:  # e.g. pickled by an incompatible older version of this code
            champion_error = (
                f"champion v{champion_version} could not be evaluated ({type(exc).__name__}: {exc})"
            )
    decision = decide(model_type, metrics, champion_metrics)
    if champion_error:
        decision.reasons.append(champion_error[:200])
    if decision.promote:
        registry.set_champion(name, registered.version)
    # A refused version is archived (tag), so the registry's list reads as champions and the archive of refusals.
    registry.tag_version(
        name,
        registered.version,
        {"gate": decision.summary[:250], "promoted": decision.promote, "archived": not decision.promote},
    )
    serving = registered.version if decision.promote else champion_version
    metadata = {
        "model": name,
        "version": registered.version,
        "champion_version": serving,
        "mlflow_run_id": registered.run_id,
        "mlflow_run": registered.run_url,
        "gate": decision.summary,
        **(
            {"holdout_plot": url}
            if challenger.plots and (url := registry.artifact_url(registered.run_id, HOLDOUT_PLOT))
            else {}
        ),
        **{f"holdout_{k}": v for k, v in metrics.items()},
        **({f"champion_{k}": v for k, v in champion_metrics.items()} if champion_metrics else {}),
    }
    return TrainingOutcome(tenant, model_type, tenant, metadata, decision)


def _recency(target_days, recent_from) -> tuple[np.ndarray | None, dict]:
    """The training rows' weights for a change on `recent_from` (None: unweighted) and the MLflow params saying so."""
    if not recent_from:
        return None, {}
    weight = recent_weights(target_days, recent_from)
    post = pd.to_datetime(pd.Series(target_days)).to_numpy() >= np.datetime64(pd.Timestamp(recent_from))
    return weight, {
        "recent_from": str(recent_from)[:10],
        "post_share": POST_SHARE,
        "post_change_rows": int(post.sum()),
    }


def fit_roas(
    train: pd.DataFrame, recent_from: str | None = None, **model_params
) -> tuple[ROASPredictor, dict]:
    """The ROAS predictor fitted on `train` (a training_frame), its rows weighted for a change on `recent_from`
    (by their target day), and the params that say so."""
    weight, recency = _recency(train["date"] + pd.Timedelta(days=1), recent_from)
    return ROASPredictor(**model_params).fit(train, train[TARGET], sample_weight=weight), recency


def fit_conversion(
    train: pd.DataFrame, recent_from: str | None = None, **model_params
) -> tuple[ConversionPredictor, dict]:
    """The conversion predictor fitted on the sessions `train`; for a change on `recent_from`, its log-odds then
    shifted to fit the sessions since (when there are MIN_RECALIBRATION_SESSIONS of them). The booster itself is
    not weighted towards them: a conversion shift moves the rate, not the ranking, and a booster weighted 80% on
    a few days ranked worse (AUC 0.914 against the champion's 0.929 in benchmarks/monitoring.py, realistic seed
    1, refused) and recovered more slowly in the oracle bound than the champion's own log-odds shifted."""
    predictor = ConversionPredictor(**model_params).fit(train, train["converted"])
    if not recent_from:
        return predictor, {}
    post = train[pd.to_datetime(train["date"]) >= pd.Timestamp(recent_from)]
    if len(post) >= MIN_RECALIBRATION_SESSIONS and post["converted"].nunique() == 2:
        predictor = predictor.recalibrated(post, post["converted"])
    return predictor, {
        "recent_from": str(recent_from)[:10],
        "recalibration_sessions": len(post),
        "logit_shift": round(predictor.logit_shift_, 4),
    }


def _below_minimum(model_type, tenant, rows, eligibility, minimum) -> TrainingOutcome | None:
    """Check the rows are the tenant's own; if the tenant is below the data minimum, the outcome that says
    the default model serves it (None when the tenant gets a model of its own, and always for the default)."""
    check_isolation(rows, tenant)
    if tenant == DEFAULT_MODEL_OWNER:
        return None
    eligible, detail = eligibility(rows, minimum)
    if eligible:
        return None
    return TrainingOutcome(
        tenant,
        model_type,
        DEFAULT_MODEL_OWNER,
        {
            **detail,
            "served_by": DEFAULT_MODEL_OWNER,
            "reason": "below the data minimum: served by the global default model",
        },
    )


def train_roas(
    tenant,
    features,
    registry,
    tags: dict,
    minimum=DataMinimum(),
    holdout_days=14,
    anomalies: pd.DataFrame | None = None,
    max_default_tenants: int = 0,
    recent_from: str | None = None,
    **model_params,
) -> TrainingOutcome:
    """Train, register and gate the ROAS model of `tenant` on its campaign features (or the default on all).

    `anomalies` (campaign_id, date rows of the `campaign_anomalies` table): training rows whose day or target
    day was flagged are left out (an outage day's ROAS of 0 is not what the campaign does); the holdout keeps
    every row, so the gate compares models on the same days as before.
    `max_default_tenants` (the default model only; 0: every tenant): above that many tenants the default model
    trains and is gated on a sample of them stratified by their campaign-days (ml.sampling).
    `recent_from` (an ISO date: the change the retraining policy dated): rows whose target day is on or after it
    get POST_SHARE of the training weight, and the holdout is the later half of the post-change days."""
    fallback = _below_minimum("roas", tenant, features, roas_eligibility, minimum)
    if fallback:
        return fallback
    population = features["tenant_id"].nunique()
    if tenant == DEFAULT_MODEL_OWNER and max_default_tenants and population > max_default_tenants:
        sample = stratified_tenants(features.groupby("tenant_id").size(), max_default_tenants)
        features = features[features["tenant_id"].isin(sample)]
    frame = training_frame(features)
    target_day = frame["date"] + pd.Timedelta(days=1) if len(frame) else frame["date"]
    holdout_days = recent_holdout_days(target_day, recent_from, holdout_days)
    train, test = holdout_split(frame, holdout_days)
    excluded = touches_flagged(train, anomalies)
    train = train[~excluded].reset_index(drop=True)
    if len(train) < 200 or len(test) < 20:
        raise ValueError(
            f"too little data to train the ROAS model of {tenant}: {len(train)} train / {len(test)} test rows"
        )
    predictor, recency = fit_roas(train, recent_from, **model_params)

    def evaluate(model, rows):  # with the best naive forecast on the same rows: the gate compares them
        forecast = model.predict_frame(rows)
        bias_sd = daily_bias_sd(rows["date"], rows[TARGET], forecast["predicted_roas"])
        return {
            **roas_metrics(rows[TARGET], forecast),
            **best_naive_roas(rows[TARGET], rows),
            **({"daily_bias_sd": bias_sd} if np.isfinite(bias_sd) else {}),  # the accuracy monitor's noise
        }

    metrics = evaluate(predictor, test)
    params = {
        "tenant": tenant,
        "train_rows": len(train),
        "test_rows": len(test),
        "holdout_days": holdout_days,
        "training_tenants": ",".join(sorted(frame["tenant_id"].unique())),
        "sampled_from_tenants": population,
        "train_start": str(train["date"].min().date()),
        "train_end": str(train["date"].max().date()),
        "excluded_anomaly_rows": int(excluded.sum()),
        **recency,
        **predictor.params,
        "interval_adjustment": predictor.interval_adjustment_,
        **(predictor.complexity_ or {}),
    }
    example = test[predictor.feature_names]
    plots = {
        HOLDOUT_PLOT: roas_holdout_plot(
            test["date"],
            test[TARGET],
            predictor.predict_frame(test),
            f"{model_name('roas', tenant)}: holdout",
        )
    }
    outcome = register_and_gate(
        Challenger("roas", tenant, predictor, metrics, test, evaluate, example, params, tags, train, plots),
        registry,
    )
    outcome.metadata.update({"served_by": tenant, "train_rows": len(train), "test_rows": len(test)})
    if frame["tenant_id"].nunique() < population:
        outcome.metadata["tenant_sample"] = (
            f"{frame['tenant_id'].nunique()} of {population} tenants, stratified by campaign-days"
        )
    return outcome


def train_conversion(
    tenant,
    sessions,
    registry,
    tags: dict,
    minimum=DataMinimum(),
    holdout_days=14,
    recent_from: str | None = None,
    **model_params,
) -> TrainingOutcome:
    """Train, register and gate the conversion model of `tenant` on its session features (or the default on all).
    `recent_from` (an ISO date: the change the retraining policy dated): the model's log-odds are shifted to fit
    the post-change training sessions (`fit_conversion`), and the holdout is the later half of the post-change
    days."""
    fallback = _below_minimum("conversion", tenant, sessions, conversion_eligibility, minimum)
    if fallback:
        return fallback
    holdout_days = recent_holdout_days(sessions["date"], recent_from, holdout_days)
    train, test = holdout_split(sessions, holdout_days)
    if train["converted"].nunique() < 2 or test["converted"].nunique() < 2:
        raise ValueError(
            f"the sessions of {tenant} need converted and non-converted sessions in train and holdout"
        )
    predictor, recency = fit_conversion(train, recent_from, **model_params)

    def evaluate(model, rows):
        return conversion_metrics(rows["converted"], model.predict_proba(rows), model.threshold_)

    metrics = evaluate(predictor, test)
    params = {
        "tenant": tenant,
        "train_rows": len(train),
        "test_rows": len(test),
        "holdout_days": holdout_days,
        "training_tenants": ",".join(sorted(sessions["tenant_id"].unique())),
        "operating_threshold": predictor.threshold_,
        **recency,
        **predictor.params,
    }
    example = test[list(CONVERSION_FEATURES)]
    plots = {
        HOLDOUT_PLOT: conversion_holdout_plot(
            test["converted"],
            predictor.predict_proba(test),
            predictor.threshold_,
            model_name("conversion", tenant),
        )
    }
    outcome = register_and_gate(
        Challenger(
            "conversion", tenant, predictor, metrics, test, evaluate, example, params, tags, train, plots
        ),
        registry,
    )
    outcome.metadata.update({"served_by": tenant, "train_rows": len(train), "test_rows": len(test)})
    return outcome
