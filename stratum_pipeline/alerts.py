"""Alerts and where they go: a small notifier interface, with the warehouse `alerts` table as the first target.

Slack or e-mail later means one more `Notifier` (a class with `notify(alert)`) in `notifiers()`; the sensors
that raise alerts do not change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Protocol

import sqlalchemy as sa

from stratum_pipeline.storage import warehouse_schema as wh


@dataclass(frozen=True)
class Alert:
    kind: str  # run_failure, ...
    summary: str
    run_id: str | None = None
    job_name: str | None = None
    partition_key: str | None = None  # the day or the tenant
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc).replace(tzinfo=None))


class Notifier(Protocol):
    def notify(self, alert: Alert) -> None: ...


class WarehouseNotifier:
    """Records alerts in the warehouse `alerts` table (what the product's status page and on-call read)."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def notify(self, alert: Alert) -> None:
        row = asdict(alert)
        row["summary"] = row["summary"][:4000]
        with self.engine.begin() as conn:
            conn.execute(wh.alerts.insert(), [row])


def notifiers(warehouse) -> list[Notifier]:
    """Every configured alert target (today: the warehouse table)."""
    return [WarehouseNotifier(warehouse.engine)]


def send(alert: Alert, targets: list[Notifier]) -> None:
    for target in targets:
        target.notify(alert)
