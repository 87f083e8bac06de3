"""Event-match quality (EMQ) of conversion events sent to ad platforms' conversion APIs.

Each platform matches an event to a user through the customer keys it carries; the score (0-10,
like Meta's EMQ) is the sum of the weights of the keys present. Email and phone count in full only
when SHA-256 hashed (64 hex characters), as the platforms require; a plain value counts half and
earns a recommendation. Platforms without weights of their own use Meta's.
The attribution-accuracy estimate maps the score linearly from 40% (no keys) to 95% (all keys):
a planning heuristic, not a measured rate.

`analyze(event, platform)` answers on two scales side by side:

- the seed's contract (what the product's backend reads): `score` 0-100 with the seed's
  `FIELD_WEIGHTS` on `email`, `phone`, `click_id` (`gclid` for Google), `ip_address`, `user_agent`,
  `external_id`; `level` excellent 80+ / good 60+ / fair 40+ / poor; `missing_fields` in the seed's
  names; `roas_impact_estimate`, the seed's sentence; `recommendations`.
- the conversion-API view: `emq_score` 0-10 as Meta reports EMQ, on the platforms' own field names
  (`fbc`, `fbp`, `client_ip_address`, `client_user_agent`, ...), with hashing checks: `quality_level`,
  `present_fields`, `capi_missing_fields`, `unhashed_fields`, `attribution_accuracy_estimate`.

Either spelling of a field counts on both scales: `ip_address` is `client_ip_address`, `user_agent` is
`client_user_agent`, and on Meta (and platforms that use Meta's weights) `click_id` is `fbc`.
The daily `event_match_quality` table keeps the 0-10 scale and its column names.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from stratum_pipeline.ml.inputs import InputError, require_mapping

FIELD_WEIGHTS = {
    "meta": {
        "email": 3.0,
        "phone": 2.0,
        "fbc": 1.5,
        "fbp": 1.0,
        "external_id": 1.0,
        "client_ip_address": 0.75,
        "client_user_agent": 0.75,
    },
    "google": {
        "gclid": 3.5,
        "email": 3.0,
        "phone": 2.0,
        "external_id": 0.5,
        "client_ip_address": 0.5,
        "client_user_agent": 0.5,
    },
}
HASHED_FIELDS = ("email", "phone")
LEVELS = ((8.0, "excellent"), (6.0, "good"), (4.0, "fair"), (0.0, "poor"))
ATTRIBUTION_FLOOR, ATTRIBUTION_CEILING = 0.40, 0.95
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Work limits: a customer key longer than this is not one (a SHA-256 is 64 characters); a frame of more events
# than MAX_EVENTS is split by the caller (the daily asset scores one tenant, platform and day at a time).
MAX_FIELD_CHARS = 4096
MAX_EVENTS = 5_000_000
ADVICE = {
    "email": "send the customer's email (SHA-256 hashed)",
    "phone": "send the phone number in E.164 form (SHA-256 hashed)",
    "fbc": "capture the fbclid click id into the _fbc cookie and send it as fbc",
    "fbp": "send the _fbp browser id",
    "gclid": "keep the gclid from the landing URL and send it with the conversion",
    "external_id": "send your stable customer id as external_id",
    "client_ip_address": "forward the client IP address from the server request",
    "client_user_agent": "forward the client user agent from the server request",
}


CAPI_FIELD_WEIGHTS = FIELD_WEIGHTS

# The seed's DataQualityAnalyzer contract, verbatim: weights summing to 1 (score = 100 x the sum present).
SEED_FIELD_WEIGHTS = {
    "meta": {
        "email": 0.25,
        "phone": 0.20,
        "click_id": 0.20,
        "ip_address": 0.15,
        "user_agent": 0.10,
        "external_id": 0.10,
    },
    "google": {
        "email": 0.25,
        "phone": 0.20,
        "gclid": 0.25,
        "ip_address": 0.10,
        "user_agent": 0.10,
        "external_id": 0.10,
    },
}
SEED_QUALITY_LEVELS = {"excellent": (80, 100), "good": (60, 79), "fair": (40, 59), "poor": (0, 39)}
# seed name -> the conversion-API name it stands for (click_id only where Meta's weights apply: fbc).
SEED_TO_CAPI = {"ip_address": "client_ip_address", "user_agent": "client_user_agent", "click_id": "fbc"}
SEED_ADVICE = {
    "click_id": ADVICE["fbc"],
    "ip_address": ADVICE["client_ip_address"],
    "user_agent": ADVICE["client_user_agent"],
}


def seed_weights_for(platform: str) -> dict[str, float]:
    return SEED_FIELD_WEIGHTS.get(str(platform).lower(), SEED_FIELD_WEIGHTS["meta"])


def seed_level(score: float) -> str:
    """excellent 80+, good 60+, fair 40+, else poor (the seed's QUALITY_LEVELS)."""
    for name, (low, _) in SEED_QUALITY_LEVELS.items():
        if score >= low:
            return name
    return "poor"


def seed_roas_impact(score: float) -> str:
    """The seed's `_estimate_roas_impact` sentences."""
    if score >= 80:
        return "~95% attribution accuracy"
    if score >= 60:
        return "~80% attribution accuracy"
    if score >= 40:
        return "~60% attribution accuracy"
    return "<40% attribution accuracy - significant loss"


def with_field_aliases(event: dict, platform: str) -> dict:
    """`event` with each field filled from its other spelling (seed <-> conversion API) where it is absent."""
    out = dict(event)
    pairs = dict(SEED_TO_CAPI)
    if "click_id" not in seed_weights_for(platform) or "fbc" not in weights_for(platform):
        pairs.pop("click_id")
    for seed, capi in pairs.items():
        for missing, other in ((capi, seed), (seed, capi)):
            if not _present(pd.Series([out.get(missing)], dtype=object))[0] and other in out:
                out[missing] = out[other]
    return out


def weights_for(platform: str) -> dict[str, float]:
    return FIELD_WEIGHTS.get(str(platform).lower(), FIELD_WEIGHTS["meta"])


def quality_level(score) -> np.ndarray:
    score = np.asarray(score, dtype=float)
    return np.select([score >= t for t, _ in LEVELS[:-1]], [name for _, name in LEVELS[:-1]], default="poor")


def attribution_accuracy(score) -> np.ndarray:
    return (
        ATTRIBUTION_FLOOR
        + (ATTRIBUTION_CEILING - ATTRIBUTION_FLOOR) * np.clip(np.asarray(score, float), 0, 10) / 10
    )


def _present(values: pd.Series) -> np.ndarray:
    text = values.astype("string").str.strip()
    return (text.notna() & (text != "")).fillna(False).to_numpy(dtype=bool)


def _hashed(values: pd.Series) -> np.ndarray:
    return (
        values.astype("string")
        .str.strip()
        .str.lower()
        .str.fullmatch(SHA256.pattern)
        .fillna(False)
        .to_numpy(dtype=bool)
    )


class DataQualityAnalyzer:
    """Scores events one at a time (`analyze`) or as a frame (`score_frame`, `summarize`)."""

    def field_credit(self, events: pd.DataFrame, platform: str) -> pd.DataFrame:
        """Per event and weighted field: the credit earned (weight, half weight if unhashed, or 0)."""
        if len(events) > MAX_EVENTS:
            raise InputError(
                f"{len(events):,} events is more than the limit of {MAX_EVENTS:,} per batch: score them in parts"
            )
        credit = {}
        for field, weight in weights_for(platform).items():
            values = events[field] if field in events else pd.Series([None] * len(events), index=events.index)
            present = _present(values)
            factor = np.where(_hashed(values), 1.0, 0.5) if field in HASHED_FIELDS else 1.0
            credit[field] = np.where(present, weight * factor, 0.0)
        return pd.DataFrame(credit, index=events.index)

    def score_frame(self, events: pd.DataFrame, platform_column: str = "platform") -> pd.DataFrame:
        """emq_score, quality_level and attribution_accuracy per event (each scored by its own platform)."""
        scores = pd.Series(0.0, index=events.index)
        for platform, rows in events.groupby(events[platform_column].astype(str).str.lower()):
            scores.loc[rows.index] = self.field_credit(rows, platform).sum(axis=1)
        return pd.DataFrame(
            {
                "emq_score": scores.round(3),
                "quality_level": quality_level(scores),
                "attribution_accuracy": attribution_accuracy(scores).round(4),
            },
            index=events.index,
        )

    FIELD_WEIGHTS = SEED_FIELD_WEIGHTS
    QUALITY_LEVELS = SEED_QUALITY_LEVELS

    def analyze(self, event: dict, platform: str) -> dict:
        """One event on the seed's 0-100 scale (score, level, missing_fields, roas_impact_estimate,
        recommendations) and on the conversion-API 0-10 scale (emq_score, quality_level, present_fields,
        capi_missing_fields, unhashed_fields, attribution_accuracy_estimate). Either field spelling counts."""
        require_mapping(event, "event")
        event = with_field_aliases(event, platform)
        seed_weights = seed_weights_for(platform)
        weights = weights_for(platform)
        for field in {
            *weights,
            *seed_weights,
        }:  # only the weighted keys are read: other keys, however many, cost nothing
            value = event.get(field)
            if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
                raise InputError(
                    f"{field} is {len(value):,} characters long, more than the limit of {MAX_FIELD_CHARS:,}"
                )
        # an int beyond float range as text: pandas cannot hold it as a number (an id is text anyway)
        frame = pd.DataFrame(
            [
                {
                    field: str(v) if isinstance(v := event.get(field), int) and not isinstance(v, bool) else v
                    for field in {*weights, *seed_weights}
                }
            ]
        )
        seed_present = {f: bool(f in frame and _present(frame[f].astype(object))[0]) for f in seed_weights}
        seed_score = round(100 * sum(w for f, w in seed_weights.items() if seed_present[f]), 1)
        seed_missing = [f for f in seed_weights if not seed_present[f]]
        credit = self.field_credit(frame, platform).iloc[0]
        score = float(credit.sum())
        missing = [f for f in weights if credit[f] == 0]
        unhashed = [f for f in HASHED_FIELDS if f in weights and 0 < credit[f] < weights[f]]
        recommendations = [SEED_ADVICE.get(f, ADVICE.get(f)) for f in seed_missing]
        recommendations += [
            ADVICE[f] for f in sorted(missing, key=lambda f: -weights[f]) if ADVICE[f] not in recommendations
        ]
        recommendations += [f"hash {f} with SHA-256 before sending" for f in unhashed]
        return {
            "score": seed_score,
            "level": seed_level(seed_score),
            "missing_fields": seed_missing,
            "roas_impact_estimate": seed_roas_impact(seed_score),
            "recommendations": recommendations,
            "platform": str(platform).lower(),
            "emq_score": round(score, 2),
            "quality_level": str(quality_level(score)),
            "present_fields": [f for f in weights if credit[f] > 0],
            "capi_missing_fields": missing,
            "unhashed_fields": unhashed,
            "attribution_accuracy_estimate": round(float(attribution_accuracy(score)), 3),
        }

    def summarize(self, events: pd.DataFrame, platform: str) -> dict:
        """One platform's events: score distribution, levels, most-missing fields, attribution, advice."""
        weights = weights_for(platform)
        credit = self.field_credit(events, platform)
        scores = credit.sum(axis=1)
        missing_rate = (credit == 0).mean().sort_values(ascending=False)
        worst = [f for f in missing_rate.index if missing_rate[f] > 0][:3]
        levels = pd.Series(quality_level(scores)).value_counts()
        return {
            "events": int(len(events)),
            "score_mean": round(float(scores.mean()), 3) if len(events) else None,
            "score_p10": round(float(scores.quantile(0.1)), 3) if len(events) else None,
            "score_p50": round(float(scores.quantile(0.5)), 3) if len(events) else None,
            "score_p90": round(float(scores.quantile(0.9)), 3) if len(events) else None,
            "levels": {name: int(levels.get(name, 0)) for _, name in LEVELS},
            "most_missing_fields": {f: round(float(missing_rate[f]), 3) for f in worst},
            "attribution_accuracy_estimate": round(float(attribution_accuracy(scores).mean()), 3)
            if len(events)
            else None,
            "recommendations": [
                f"{ADVICE[f]} (missing in {missing_rate[f]:.0%} of events)"
                for f in sorted(worst, key=lambda f: -missing_rate[f] * weights[f])
            ],
        }

    def daily_summaries(self, tenant: str, events: pd.DataFrame) -> list[dict]:
        """One `event_match_quality` row per platform and day of a tenant's events (`summarize` flattened:
        events per level as events_<level>, the JSON lists as text)."""
        out = []
        for (platform, day), rows in events.groupby(["platform", "date"]):
            summary = self.summarize(rows, platform)
            out.append(
                {
                    "tenant_id": tenant,
                    "platform": platform,
                    "date": day,
                    "events": summary["events"],
                    "score_mean": summary["score_mean"],
                    "score_p10": summary["score_p10"],
                    "score_p50": summary["score_p50"],
                    "score_p90": summary["score_p90"],
                    **{f"events_{name}": summary["levels"][name] for _, name in LEVELS},
                    "most_missing_fields": json.dumps(summary["most_missing_fields"]),
                    "attribution_accuracy_estimate": summary["attribution_accuracy_estimate"],
                    "recommendations": json.dumps(summary["recommendations"]),
                }
            )
        return out
