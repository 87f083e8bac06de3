"""Latency benchmark: single in-process calls (P50/P95/P99) beside the seed's table, and batch forecasting.

Trains the ROAS and conversion models on one demo tenant (acme_outdoor), then times each operation
`--repeat` times after a warm-up. Absolute timings on a shared machine are noisy: read the medians.

    python benchmarks/latency.py [--repeat 2000] [--batch 100000]
"""

import argparse
import statistics
import sys
import time
from datetime import date

import numpy as np
import pandas as pd

from stratum_pipeline.demo.features import feature_frames
from stratum_pipeline.demo.generator import DemoConfig, generate
from stratum_pipeline.ml.conversion import ConversionPredictor
from stratum_pipeline.ml.fatigue import FatigueScorer
from stratum_pipeline.ml.features import CONVERSION_FEATURES
from stratum_pipeline.ml.roas import TARGET, ROASPredictor, training_frame
from stratum_pipeline.ml.simulator import BudgetSimulator

SEED_MS = {
    "roas": (12, 35, 85),
    "conversion": (8, 25, 60),
    "simulation_1000": (180, 350, 500),
    "fatigue": (5, 15, 30),
}
TARGET_P50_MS = {"roas": 1.2, "conversion": 0.8, "simulation_1000": 5.0, "fatigue": 0.5}


def plain(record: dict) -> dict:
    return {
        k: (None if isinstance(v, float) and np.isnan(v) else v.item() if hasattr(v, "item") else v)
        for k, v in record.items()
    }


def timed(fn, inputs, repeat: int) -> list[float]:
    for x in inputs[:50]:
        fn(x)
    out = []
    for i in range(repeat):
        x = inputs[i % len(inputs)]
        t = time.perf_counter()
        fn(x)
        out.append((time.perf_counter() - t) * 1000)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100_000)
    args = parser.parse_args(argv)

    data = generate(DemoConfig(end_date=date(2026, 11, 24), bad_row_rate=0.0))
    campaign_features, session_features, _ = feature_frames(data)
    campaigns = training_frame(campaign_features[campaign_features.tenant_id == "acme_outdoor"])
    sessions = session_features[session_features.tenant_id == "acme_outdoor"]
    roas = ROASPredictor().fit(campaigns, campaigns[TARGET])
    conversion = ConversionPredictor().fit(sessions, sessions["converted"])
    simulator, fatigue = BudgetSimulator(), FatigueScorer()

    campaign_inputs = [plain(r) for r in campaigns.tail(500).to_dict("records")]
    session_inputs = [plain(r) for r in sessions[CONVERSION_FEATURES].tail(500).to_dict("records")]
    creative_inputs = [
        {
            "days_active": d,
            "frequency": f,
            "ctr_current": 0.01,
            "ctr_baseline": 0.015,
            "engagement_rate_current": 0.02,
            "engagement_rate_baseline": 0.03,
        }
        for d, f in zip(range(1, 90), np.linspace(1, 9, 89))
    ]
    sim_inputs = [
        {"daily_spend": c["spend"], "roas": c["roas_7d"] or 2.0} for c in campaign_inputs if c["spend"]
    ]
    operations = {
        "roas": (roas.predict, campaign_inputs),
        "conversion": (conversion.predict, session_inputs),
        "simulation_1000": (lambda c: simulator.simulate(c, iterations=1000), sim_inputs),
        "fatigue": (fatigue.calculate_score, creative_inputs),
    }

    print(f"Single in-process calls, {args.repeat} each (ms)")
    print(
        f"{'operation':<17}{'P50':>8}{'P95':>8}{'P99':>8}   {'seed P50/P95/P99':<18}{'P50 vs seed':>12}{'target P50':>12}"
    )
    for name, (fn, inputs) in operations.items():
        ms = timed(fn, inputs, args.repeat)
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        seed = SEED_MS[name]
        verdict = "ok" if p50 <= TARGET_P50_MS[name] else "MISSED"
        print(
            f"{name:<17}{p50:>8.3f}{p95:>8.3f}{p99:>8.3f}   {'/'.join(map(str, seed)):<18}{seed[0] / p50:>11.1f}x"
            f"{TARGET_P50_MS[name]:>9.1f} {verdict}"
        )

    batch = pd.concat([campaigns] * (args.batch // len(campaigns) + 1), ignore_index=True).head(args.batch)
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        roas.predict_frame(batch)
        runs.append(time.perf_counter() - t)
    print(
        f"\nbatch forecast of {args.batch:,} campaigns: median {statistics.median(runs):.2f} s of 3 (target <= 2 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
