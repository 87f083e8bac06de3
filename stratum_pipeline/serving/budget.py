"""Budget advice for the backend: the latest response curves of a tenant, read from the warehouse (no Dagster)."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from stratum_pipeline.settings import Env
from stratum_pipeline.storage import warehouse_schema as wh
from stratum_pipeline.storage.sqlio import read_frame


class WarehouseCurves:
    """The campaign_response_curves rows of a tenant's (or a campaign's) latest day in the warehouse."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def tenant(self, tenant_id: str) -> pd.DataFrame:
        t = wh.campaign_response_curves
        latest = sa.select(sa.func.max(t.c.date)).where(t.c.tenant_id == tenant_id).scalar_subquery()
        with self.engine.connect() as conn:
            return read_frame(conn, sa.select(t).where(t.c.tenant_id == tenant_id, t.c.date == latest))

    def campaign(self, campaign_id: str, tenant_id: str | None = None) -> dict | None:
        t = wh.campaign_response_curves
        statement = sa.select(t).where(t.c.campaign_id == str(campaign_id))
        if tenant_id is not None:
            statement = statement.where(t.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            frame = read_frame(conn, statement.order_by(t.c.date.desc()).limit(1))
        return frame.iloc[0].to_dict() if len(frame) else None


def curves_from_env(env=None) -> WarehouseCurves | None:
    """The warehouse at STRATUM_WAREHOUSE_URL, or None when it is not set."""
    import os

    url = (env if env is not None else os.environ).get(Env.WAREHOUSE_URL)
    return (
        WarehouseCurves(sa.create_engine(url)) if url else None
    )  # a reader: no Dagster resource module here
