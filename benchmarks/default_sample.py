"""The default ROAS model on a stratified sample of tenants vs on every tenant: quality and training time.

The default model serves every tenant below the data minimum, so it is judged on every tenant's holdout. For each
noise regime and seed this generates a population of tenants of varied size (campaigns drawn log-uniformly from
`--campaigns-min`..`--campaigns-max`, all below the 100-campaign minimum, as at the issue's scale), builds the
features as the pipeline does, and trains the default model (ROASPredictor on the past, test on the last
`--holdout-days` days of every tenant) three ways:

- `all tenants`: the model before #16 (every tenant's rows);
- `stratified`: the production rule (`ml.sampling.stratified_tenants`, `TrainingConfig.default_sample_tenants`);
- `random`: the same number of tenants drawn at random (seeded), for comparison with an unstratified sample.

Beside them on the same test rows: the naive forecasts (today's ROAS, trailing 7/14/30 days), and the oracle (the
generator's expected ROAS of the forecast day: 0 error against it; its error against the realised ROAS is the
noise no forecast removes). Columns as benchmarks/model_quality.py: MAE against the realised and the expected ROAS,
bias overall and per campaign-volume tercile, 10-90% coverage; plus the MAE (expected) on the small, middle and
large thirds of tenants by campaign-days, and the fit's CPU seconds.

    python benchmarks/default_sample.py [--regimes low realistic] [--seeds 7 11] [--tenants 60]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_quality import forecast_scores, roas_rows  # noqa: E402

from stratum_pipeline.assets.models import TrainingConfig  # noqa: E402
from stratum_pipeline.demo.features import feature_frames  # noqa: E402
from stratum_pipeline.demo.generator import NOISE_REGIMES, DemoConfig, TenantSpec, generate  # noqa: E402
from stratum_pipeline.ml.evaluation import naive_roas_forecasts  # noqa: E402
from stratum_pipeline.ml.roas import TARGET, ROASPredictor  # noqa: E402
from stratum_pipeline.ml.sampling import stratified_tenants  # noqa: E402
from stratum_pipeline.modelops.training import holdout_split  # noqa: E402


def population(n: int, low: int, high: int, days: int, seed: int) -> tuple[TenantSpec, ...]:
    """n tenants with log-uniform campaign counts in [low, high] (the sizes the sample stratifies on)."""
    rng = np.random.default_rng(1000 + seed)
    campaigns = np.round(np.exp(rng.uniform(np.log(low), np.log(high), n))).astype(int)
    return tuple(
        TenantSpec(f"tenant_{i:03d}", f"Tenant {i:03d}", int(c), days, 5) for i, c in enumerate(campaigns)
    )


def size_thirds(test: pd.DataFrame, volume: pd.Series) -> np.ndarray:
    """0/1/2: the test row's tenant in the small, middle or large third of tenants by campaign-days."""
    third = pd.qcut(volume.rank(method="first"), 3, labels=False)
    return test["tenant_id"].map(third).to_numpy()


def evaluate(train: pd.DataFrame, test: pd.DataFrame, volume: pd.Series, samples: dict) -> pd.DataFrame:
    thirds = size_thirds(test, volume)
    expected = test["expected_roas"].to_numpy()
    rows = {}

    def score(name, predicted, lower=None, upper=None, seconds=float("nan"), tenants=None):
        out = forecast_scores(test, predicted, lower, upper)
        p = np.asarray(predicted, dtype=float)
        for k, label in enumerate(("small", "mid", "large")):
            out[f"mae_exp_{label}"] = np.abs(p - expected)[thirds == k].mean()
        out["tenants"] = tenants if tenants is not None else float("nan")
        out["fit_cpu_s"] = seconds
        rows[name] = out

    for name, tenants in samples.items():
        rows_in = train[train["tenant_id"].isin(tenants)]
        started = time.process_time()
        model = ROASPredictor().fit(rows_in, rows_in[TARGET])
        seconds = time.process_time() - started
        forecast = model.predict_frame(test)
        score(
            name,
            forecast["predicted_roas"],
            forecast["confidence_lower"],
            forecast["confidence_upper"],
            seconds,
            len(tenants),
        )
    score("oracle", expected)
    for name, values in naive_roas_forecasts(test).items():
        score(f"naive {name}", values)
    return pd.DataFrame(rows).T


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimes", nargs="+", choices=sorted(NOISE_REGIMES), default=["low", "realistic"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[7, 11])
    parser.add_argument("--tenants", type=int, default=60)
    parser.add_argument("--campaigns-min", type=int, default=4)
    parser.add_argument("--campaigns-max", type=int, default=60)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--holdout-days", type=int, default=14)
    parser.add_argument(
        "--max-tenants",
        type=int,
        default=TrainingConfig().default_sample_tenants,
        help="the sample's size (default: the production setting)",
    )
    parser.add_argument("--end-date", type=date.fromisoformat, default=date(2026, 11, 24))
    args = parser.parse_args(argv)
    pd.set_option("display.width", 250)
    summary = []
    for regime in args.regimes:
        for seed in args.seeds:
            specs = population(args.tenants, args.campaigns_min, args.campaigns_max, args.days, seed)
            config = DemoConfig(
                end_date=args.end_date,
                seed=seed,
                tenants=specs,
                bad_row_rate=0.0,
                noise=NOISE_REGIMES[regime],
                anomalies=False,
            )
            dataset = generate(config)
            campaign_features, _, _ = feature_frames(dataset)
            volume = campaign_features.groupby("tenant_id").size()
            train, test = holdout_split(roas_rows(dataset, campaign_features), args.holdout_days)
            rng = np.random.default_rng(seed)
            samples = {
                "all tenants": sorted(volume.index),
                "stratified": stratified_tenants(volume, args.max_tenants),
                "random": sorted(rng.choice(sorted(volume.index), args.max_tenants, replace=False)),
            }
            table = evaluate(train, test, volume, samples)
            print(
                f"=== regime {regime}, seed {seed}: {args.tenants} tenants, {int(volume.sum()):,} campaign-days "
                f"(per tenant {volume.min()}-{volume.max()}), test = last {args.holdout_days} days of every tenant: "
                f"{len(test):,} rows"
            )
            columns = [
                "tenants",
                "mae_real",
                "mae_exp",
                "mae_exp_small",
                "mae_exp_mid",
                "mae_exp_large",
                "bias",
                "bias_t1",
                "bias_t2",
                "bias_t3",
                "coverage",
                "fit_cpu_s",
            ]
            print(table[columns].to_string(float_format=lambda v: f"{v:.3f}", na_rep="-"))
            print()
            summary.append((regime, seed, table))
    print("=== stratified sample vs all tenants (MAE against the expected ROAS; fit CPU)")
    for regime, seed, table in summary:
        full, strat, rand = (table.loc[k] for k in ("all tenants", "stratified", "random"))
        naive = table[table.index.str.startswith("naive")]["mae_exp"]
        print(
            f"{regime:<10} seed {seed:<3} all {full['mae_exp']:.3f}, stratified {strat['mae_exp']:.3f} "
            f"({strat['mae_exp'] / full['mae_exp'] - 1:+.1%}), random {rand['mae_exp']:.3f} "
            f"({rand['mae_exp'] / full['mae_exp'] - 1:+.1%}); best naive {naive.min():.3f}, oracle 0.000; "
            f"fit {full['fit_cpu_s']:.1f} s -> {strat['fit_cpu_s']:.1f} s CPU "
            f"({full['fit_cpu_s'] / max(strat['fit_cpu_s'], 1e-9):.1f}x less)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
