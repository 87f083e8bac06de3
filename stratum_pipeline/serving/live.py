"""Live conversion predictions for the sessions of a time window, with their top factors."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import pandas as pd
import sqlalchemy as sa

from stratum_pipeline.ml.features import session_features
from stratum_pipeline.modelops.registry import NoModelError
from stratum_pipeline.storage import source_schema as src
from stratum_pipeline.tenancy import InvalidTenantId, validate_tenant_id

COLUMNS = [
    "tenant_id",
    "session_id",
    "started_at",
    "conversion_probability",
    "will_convert",
    "top_factors",
    "model_name",
    "model_version",
    "predicted_at",
]


def live_predictions(source, registry, start: datetime, end: datetime) -> tuple[pd.DataFrame, dict[str, int]]:
    """Score every session that started in [start, end) with its tenant's serving conversion model.

    Returns the predictions and, per tenant that no model serves yet, the number of sessions not
    scored. Sessions without an id, tenant or start time cannot be scored or stored and are left out.
    """
    s = src.sessions
    statement = sa.select(
        s.c.session_id,
        s.c.tenant_id,
        s.c.started_at,
        s.c.session_duration,
        s.c.pages_viewed,
        s.c.cart_value,
        s.c.items_in_cart,
        s.c.time_since_last_visit,
        s.c.previous_purchases,
        s.c.device_type,
        s.c.traffic_source,
        s.c.user_segment,
    ).where(s.c.started_at >= start, s.c.started_at < end)
    raw = source.read(statement)
    raw = raw.dropna(subset=["session_id", "tenant_id", "started_at"]).drop_duplicates("session_id")
    if raw.empty:
        return pd.DataFrame(columns=COLUMNS), {}
    features = session_features(raw)
    predicted_at = datetime.now(timezone.utc).replace(tzinfo=None)
    parts, unserved = [], {}
    for tenant, rows in features.groupby("tenant_id"):
        try:
            model = registry.serving_model("conversion", validate_tenant_id(tenant))
        except (
            NoModelError,
            InvalidTenantId,
        ):  # an invalid id is never a model name: its sessions are not scored
            unserved[tenant] = len(rows)
            continue
        try:
            probability = model.predictor.predict_proba(rows)
            factors = [json.dumps(f) for f in model.predictor.top_factors(rows)]
        except Exception as exc:  # one tenant's failure stays that tenant's: its sessions are not scored
            logging.getLogger(__name__).error(
                f"tenant {tenant}: {model.name} v{model.version} failed on its "
                f"{len(rows)} sessions: {type(exc).__name__}: {exc}"[:500]
            )
            unserved[tenant] = len(rows)
            continue
        parts.append(
            pd.DataFrame(
                {
                    "tenant_id": tenant,
                    "session_id": rows["session_id"].to_numpy(),
                    "started_at": rows["started_at"].to_numpy(),
                    "conversion_probability": probability.round(4),
                    "will_convert": probability >= model.predictor.threshold_,
                    "top_factors": factors,
                    "model_name": model.name,
                    "model_version": model.version,
                    "predicted_at": predicted_at,
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)[COLUMNS] if parts else pd.DataFrame(columns=COLUMNS)
    return frame, unserved
