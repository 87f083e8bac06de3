"""The `stratum demo` arguments and the dataset they describe; no Dagster here, so the CLI can read the demo's
first day (the partitions' start) before the definitions load."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from stratum_pipeline.demo.generator import NOISE_REGIMES, DemoConfig


@dataclass(frozen=True)
class DemoOptions:
    """The `stratum demo` arguments."""

    end_date: date
    seed: int = 7
    bad_row_rate: float = 0.002
    noise: str = "low"
    tenants: int | None = None  # scaled data: this many identical tenants instead of the demo four
    campaigns: int = 50
    days: int = 365

    def config(self) -> DemoConfig:
        if self.tenants:
            return DemoConfig.scaled(
                self.end_date,
                self.tenants,
                self.campaigns,
                self.days,
                seed=self.seed,
                bad_row_rate=self.bad_row_rate,
                noise=NOISE_REGIMES[self.noise],
            )
        return DemoConfig(
            end_date=self.end_date,
            seed=self.seed,
            bad_row_rate=self.bad_row_rate,
            noise=NOISE_REGIMES[self.noise],
        )
