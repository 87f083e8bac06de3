"""Anomaly benchmark: ml.anomalies against the generator's injected anomalies (truth_anomalies).

For each noise regime and seed it generates a world with anomalies on (`DemoConfig(anomalies=True)`), fits
each tenant's detector on the first `--fit-days` days and judges every later campaign-day. Four methods
side by side on the same campaign-days:

- `ours`: AnomalyDetector (per tenant), at its shipped threshold (alpha) and at the threshold that gives
  <= 1 false alarm per 1,000 clean campaign-days on this world (the same rule as the other three);
- `reference`: the detector a data team writes first: per campaign and metric (conversions, spend against
  the budget, CPC, conversion rate; log scale), the median of the same weekday over the previous 28 days
  as baseline and a robust z-score (1.4826 x MAD of the previous 28 days' residuals); a day's score is its
  largest z in the anomalous direction;
- `stl`: the established method the issue asks for, a robust seasonal-trend decomposition (STL-style,
  implemented with numpy: statsmodels is not a dependency) of the same four series over the previous 35 days,
  flagging on the MAD-scaled residual (see `stl_scores`), at the same calibrated false-alarm rate;
- `oracle`: the perfect count-aware test on conversions: the likelihood (negative-binomial lower tail) of
  the observed conversions under the true expected level and the true dispersion. Spend spikes do not
  lower conversions, so it has no answer for them (n/a); nor is it the limit for CPC jumps, which show in
  clicks and impressions (its column there is what conversions alone could find). For the targets it does
  limit (outages, conversion-rate drops) the report prints its recall on the target's band and says when
  the target is unmeetable even by it (a multi-day test can pass this per-day oracle).

An event counts as found when one of its days is flagged (any kind) by its last day; outages and spikes
within 1 day of their start ("kind ok": the share of found events flagged with their true kind). The
targets are judged on the shipped detector (`ours@alpha`), whose false-alarm rate is printed and must be
<= 1 per 1,000; `ours` at the calibrated threshold shows what the same scores give at exactly that rate.
Recall per kind and per volume band (true expected conversions a day).
Then the ROAS forecast's MAE against the expected ROAS when training keeps the anomalous days, leaves out
the days our detector flagged (what the pipeline does), or leaves out the truly anomalous days.
Clean campaign-days: days of no injected campaign anomaly. Also: the time to score one day for 100
tenants (50 campaigns each, 35 days of history) and CAPI match-key outages (no target).

    nice -n 10 python benchmarks/anomalies.py [--regimes low realistic] [--seeds 7 11]
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import numpy as np
import pandas as pd
from scipy import stats

from stratum_pipeline.demo.generator import NOISE_REGIMES, DemoConfig, generate
from stratum_pipeline.ml.anomalies import fit_detector, match_key_outages

END = date(2026, 6, 30)
FA_RATE = 1e-3
BANDS = [(0, 5, "<5/day"), (5, 20, "5-20/day"), (20, np.inf, ">=20/day")]
KINDS = ("tracking_outage", "spend_spike", "conversion_rate_drop", "cpc_jump")
WITHIN_ONE_DAY = ("tracking_outage", "spend_spike")
TARGETS = {  # kind -> (minimum expected conversions a day, recall target)
    "tracking_outage": (5.0, 0.95),
    "spend_spike": (0.0, 0.95),
    "cpc_jump": (0.0, 0.9),
    "conversion_rate_drop": (20.0, 0.7),
}
VS_REFERENCE = 1.5
ORACLE_IS_LIMIT = ("tracking_outage", "conversion_rate_drop")  # kinds the conversions oracle is the limit of
SCORING_SECONDS = 10.0
MAD_FLOOR = 0.05  # the reference's robust scale floor (log scale): a series constant for 28 days is not infinitely sure


def reference_scores(metrics: pd.DataFrame, budget: pd.Series) -> pd.DataFrame:
    """The reference detector's score per campaign-day: max robust z in the anomalous direction."""
    m, days, camps, c, t, series = _metric_grids(metrics, budget)
    score = np.full((len(camps), len(days)), -np.inf)
    for sign, values in series.values():
        grid = np.full((len(camps), len(days) + 56), np.nan)
        grid[c, t + 56] = values  # 56 days of NaN in front: every window is defined
        lags = np.stack([grid[:, 56 - 7 * k : grid.shape[1] - 7 * k] for k in (1, 2, 3, 4)])
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                resid = grid[:, 56:] - np.nanmedian(lags, axis=0)
                padded = np.concatenate([np.full((len(camps), 28), np.nan), resid], axis=1)
                window = np.lib.stride_tricks.sliding_window_view(padded, 28, axis=1)[
                    :, :-1
                ]  # previous 28 days
                center = np.nanmedian(window, axis=2)
                mad = 1.4826 * np.nanmedian(np.abs(window - center[..., None]), axis=2)
                z = sign * (resid - center) / np.maximum(mad, MAD_FLOOR)
        enough = np.sum(np.isfinite(window), axis=2) >= 14
        score = np.fmax(score, np.where(enough & np.isfinite(z), z, -np.inf))
    return pd.DataFrame({"campaign_id": camps[c], "date": m["date"].to_numpy(), "ref_score": score[c, t]})


def _metric_grids(metrics: pd.DataFrame, budget: pd.Series):
    """The reference's four log-scale series per campaign-day (direction: +1 high is bad, -1 low is bad)."""
    m = metrics.copy()
    m["date"] = pd.to_datetime(m["date"])
    days = pd.date_range(m["date"].min(), m["date"].max(), freq="D")
    camps = np.sort(m["campaign_id"].unique())
    c = np.searchsorted(camps, m["campaign_id"].to_numpy())
    t = ((m["date"] - days[0]) // pd.Timedelta(days=1)).to_numpy()
    series = {
        "conversions": (-1, np.log1p(m["conversions"].to_numpy(float))),
        "spend_vs_budget": (
            1,
            np.log(
                np.maximum(m["spend"].to_numpy(float), 0.01) / budget.reindex(m["campaign_id"]).to_numpy()
            ),
        ),
        "cpc": (1, np.log((m["spend"].to_numpy(float) + 0.01) / (m["clicks"].to_numpy(float) + 1))),
        "conversion_rate": (
            -1,
            np.log((m["conversions"].to_numpy(float) + 0.5) / (m["clicks"].to_numpy(float) + 1)),
        ),
    }
    return m, days, camps, c, t, series


def _quiet(reduce, values: np.ndarray, axis: int) -> np.ndarray:
    """np.nanmedian / np.nanmean without the warning on all-NaN slices (they give NaN)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return reduce(values, axis=axis)


def _nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    return _quiet(np.nanmedian, values, axis)


def stl_scores(metrics: pd.DataFrame, budget: pd.Series, window: int = 35, span: int = 7) -> pd.DataFrame:
    """The established method: a robust seasonal-trend decomposition (STL-style, in numpy: statsmodels is not
    installed here) of each campaign's four log-scale series over the previous `window` days, and a MAD
    threshold on the day's residual. Per day and series: trend0 = centred rolling median (`span` days);
    weekly seasonal = per-weekday median of the detrended window (centred to mean 0); trend = rolling median
    of the deseasonalised series; the day's forecast = the last `span` days' deseasonalised median + its
    weekday's seasonal; residual scale = 1.4826 x MAD of the window's residuals (floored like the
    reference's). A day's score is its largest robust z in the anomalous direction."""
    m, days, camps, c, t, series = _metric_grids(metrics, budget)
    n_c, n_t = len(camps), len(days)
    dow = days.dayofweek.to_numpy()
    half = span // 2
    score = np.full((n_c, n_t), -np.inf)
    for sign, values in series.values():
        grid = np.full((n_c, n_t), np.nan)
        grid[c, t] = values
        for day in range(window, n_t):
            x = grid[:, day - window : day]
            padded = np.pad(x, ((0, 0), (half, half)), constant_values=np.nan)
            rolling = np.lib.stride_tricks.sliding_window_view(padded, span, axis=1)
            trend0 = _nanmedian(rolling, axis=2)
            detrended = x - trend0
            w_dow = dow[day - window : day]
            seasonal_by_dow = np.stack(
                [_nanmedian(detrended[:, w_dow == d], axis=1) for d in range(7)], axis=1
            )
            seasonal_by_dow = np.nan_to_num(seasonal_by_dow - _quiet(np.nanmean, seasonal_by_dow, 1)[:, None])
            deseason = x - seasonal_by_dow[:, w_dow]
            padded = np.pad(deseason, ((0, 0), (half, half)), constant_values=np.nan)
            trend = _nanmedian(np.lib.stride_tricks.sliding_window_view(padded, span, axis=1), axis=2)
            resid = deseason - trend
            center = _nanmedian(resid, axis=1)
            mad = 1.4826 * _nanmedian(np.abs(resid - center[:, None]), axis=1)
            level = _nanmedian(deseason[:, -span:], axis=1)
            forecast = level + seasonal_by_dow[:, dow[day]]
            z = sign * (grid[:, day] - forecast - center) / np.maximum(mad, MAD_FLOOR)
            enough = np.isfinite(x).sum(axis=1) >= 14
            score[:, day] = np.fmax(score[:, day], np.where(enough & np.isfinite(z), z, -np.inf))
    return pd.DataFrame({"campaign_id": camps[c], "date": m["date"].to_numpy(), "stl_score": score[c, t]})


def oracle_scores(metrics: pd.DataFrame, truth: pd.DataFrame, response: pd.DataFrame) -> pd.Series:
    """-log10 of the lower-tail probability of the observed conversions under the true expected level."""
    m = metrics.merge(truth[["campaign_id", "date", "expected_conversions"]], on=["campaign_id", "date"])
    size = m["campaign_id"].map(response.set_index("campaign_id")["dispersion"]).to_numpy(float)
    mu = np.maximum(m["expected_conversions"].to_numpy(float), 1e-9)
    y = m["conversions"].to_numpy(float)
    p = np.where(
        np.isfinite(size),
        stats.nbinom.cdf(
            y,
            np.where(np.isfinite(size), size, 1.0),
            np.where(np.isfinite(size), size, 1.0) / (np.where(np.isfinite(size), size, 1.0) + mu),
        ),
        stats.poisson.cdf(y, mu),
    )
    return pd.Series(-np.log10(np.maximum(p, 1e-300)), index=m.set_index(["campaign_id", "date"]).index)


def threshold_at(clean_scores: np.ndarray, rate: float = FA_RATE) -> float:
    """The lowest threshold with at most `rate` x n clean days scoring above it."""
    s = np.sort(np.nan_to_num(clean_scores, nan=-np.inf))[::-1]
    allowed = int(np.floor(rate * len(s)))
    return float(s[allowed]) if allowed < len(s) else -np.inf


def world_config(regime: str, seed: int, tenants: int, campaigns: int, days: int, **extra) -> DemoConfig:
    """A generated world of this size in this noise regime, without bad rows."""
    return DemoConfig.scaled(
        END,
        tenants=tenants,
        campaigns=campaigns,
        days=days,
        noise=NOISE_REGIMES[regime],
        seed=seed,
        bad_row_rate=0.0,
        **extra,
    )


def evaluate_world(regime: str, seed: int, tenants: int, campaigns: int, days: int, fit_days: int) -> dict:
    cfg = world_config(regime, seed, tenants, campaigns, days, sessions_per_day=120, anomalies=True)
    ds = generate(cfg)
    metrics = ds["campaign_daily_metrics"].copy()
    metrics["date"] = pd.to_datetime(metrics["date"])
    truth = ds["truth_campaign_daily"].assign(date=lambda f: pd.to_datetime(f["date"]))
    camp = ds["campaigns"].set_index("id")
    metrics["daily_budget"] = metrics["campaign_id"].map(
        camp["daily_budget"]
    )  # as raw_campaign_daily carries it
    eval_start = pd.Timestamp(cfg.start_date) + pd.Timedelta(days=fit_days)
    scored, found_default = [], []
    fit_seconds = 0.0
    for ids in camp.groupby("tenant_id").groups.values():
        m = metrics[metrics["campaign_id"].isin(ids)]
        t0 = time.perf_counter()
        detector = fit_detector(m[m["date"] < eval_start])
        fit_seconds += time.perf_counter() - t0
        s = detector.score(m, since=eval_start)
        s["ours_score"] = detector.anomaly_score(s)
        scored.append(s)
        found_default.append(detector.classify(s))
    s = pd.concat(scored, ignore_index=True)
    findings = pd.concat(found_default, ignore_index=True)
    findings["date"] = pd.to_datetime(findings["date"])
    ref = reference_scores(metrics, camp["daily_budget"])
    s = s.merge(ref, on=["campaign_id", "date"], how="left")
    s = s.merge(stl_scores(metrics, camp["daily_budget"]), on=["campaign_id", "date"], how="left")
    oracle = oracle_scores(metrics, truth, ds["truth_campaign_response"])
    s["oracle_score"] = oracle.reindex(pd.MultiIndex.from_frame(s[["campaign_id", "date"]])).to_numpy()
    s["volume"] = (
        truth.set_index(["campaign_id", "date"])["expected_conversions"]
        .reindex(pd.MultiIndex.from_frame(s[["campaign_id", "date"]]))
        .to_numpy()
    )

    events = ds["truth_anomalies"]
    camp_events = events[events["campaign_id"].notna()].copy()
    camp_events["start_date"] = pd.to_datetime(camp_events["start_date"])
    camp_events["end_date"] = pd.to_datetime(camp_events["end_date"])
    camp_events = camp_events[camp_events["start_date"] >= eval_start]
    anomalous = set()
    for e in events[events["campaign_id"].notna()].itertuples():
        for d in pd.date_range(e.start_date, e.end_date):
            anomalous.add((e.campaign_id, d))
    key = list(zip(s["campaign_id"], s["date"]))
    s["clean"] = [k not in anomalous for k in key]
    flagged_default = set(zip(findings["campaign_id"], findings["date"]))
    s["ours_default"] = [k in flagged_default for k in key]
    clean = s[s["clean"]]
    thr = {m: threshold_at(clean[f"{m}_score"].to_numpy()) for m in ("ours", "ref", "stl", "oracle")}
    by_day = s.set_index(["campaign_id", "date"])
    kind_of = findings.set_index(["campaign_id", "date"])["kind"]
    rows = []
    for e in camp_events.itertuples():
        last = (
            min(e.end_date, e.start_date + pd.Timedelta(days=1)) if e.kind in WITHIN_ONE_DAY else e.end_date
        )
        idx = [
            (e.campaign_id, d)
            for d in pd.date_range(e.start_date, last)
            if (e.campaign_id, d) in by_day.index
        ]
        if not idx:
            continue
        window = by_day.loc[idx]
        kinds = [kind_of.get(i) for i in idx if i in kind_of.index]
        rows.append(
            {
                "kind": e.kind,
                "volume": window["volume"].mean(),
                "ours_default": bool(window["ours_default"].any()),
                "kind_right": e.kind in kinds,
                **{m: bool((window[f"{m}_score"] > thr[m]).any()) for m in thr},
            }
        )
    mk = match_key_outages(ds["capi_events"], since=eval_start)
    mk_events = events[events["kind"] == "capi_match_key_outage"].copy()
    mk_events = mk_events[pd.to_datetime(mk_events["start_date"]) >= eval_start]
    mk_found = sum(
        bool(
            (
                (mk["tenant_id"] == e.tenant_id)
                & (mk["platform"] == e.platform)
                & (pd.to_datetime(mk["date"]) >= pd.Timestamp(e.start_date))
                & (pd.to_datetime(mk["date"]) <= pd.Timestamp(e.end_date))
            ).any()
        )
        for e in mk_events.itertuples()
    )
    return {
        "events": pd.DataFrame(rows),
        "clean_days": int(s["clean"].sum()),
        "fa_default": int((s["clean"] & s["ours_default"]).sum()),
        "fa_at_thr": {m: int((clean[f"{m}_score"] > thr[m]).sum()) for m in thr},
        "match_key": (mk_found, len(mk_events), len(mk) - mk_found),
        "fit_seconds": fit_seconds,
        "tenants": tenants,
    }


def scoring_time(tenants: int = 100, campaigns: int = 50, days: int = 35) -> tuple[float, int, float]:
    """Seconds to score the last day of `tenants` tenants (each its own fitted-or-default detector)."""
    cfg = world_config("realistic", 3, tenants, campaigns, days, sessions_per_day=1)
    ds = generate(cfg)
    metrics = ds["campaign_daily_metrics"].assign(
        daily_budget=lambda m: m["campaign_id"].map(ds["campaigns"].set_index("id")["daily_budget"])
    )
    by_tenant = dict(list(metrics.groupby(metrics["campaign_id"].str.split("-").str[0])))
    detectors = {t: fit_detector(m) for t, m in by_tenant.items()}
    t0 = time.perf_counter()
    found = 0
    for t, m in by_tenant.items():
        found += len(detectors[t].detect(m, since=END))
    return time.perf_counter() - t0, sum(len(m[m["date"] == END]) for m in by_tenant.values()), found


def roas_effect(regime: str, seed: int, holdout_days: int = 14) -> pd.DataFrame:
    """ROAS forecast MAE against the expected ROAS of the forecast day, trained without exclusion, without the
    days our detector flagged (as the pipeline trains) and without the truly anomalous days (the limit)."""
    from model_quality import roas_rows

    from stratum_pipeline.demo.features import feature_frames
    from stratum_pipeline.ml.anomalies import touches_flagged
    from stratum_pipeline.ml.roas import TARGET, ROASPredictor
    from stratum_pipeline.modelops.training import DataMinimum, holdout_split, roas_eligibility

    cfg = DemoConfig(end_date=END, seed=seed, bad_row_rate=0.0, noise=NOISE_REGIMES[regime], anomalies=True)
    ds = generate(cfg)
    campaign_features, _, _ = feature_frames(ds)
    frame = roas_rows(ds, campaign_features)
    camp = ds["campaigns"].set_index("id")
    metrics = ds["campaign_daily_metrics"].assign(
        daily_budget=lambda m: m["campaign_id"].map(camp["daily_budget"])
    )
    by_tenant = metrics.groupby(metrics["campaign_id"].map(camp["tenant_id"]))
    ours = pd.concat([fit_detector(m).detect(m) for _, m in by_tenant])
    events = ds["truth_anomalies"].dropna(subset=["campaign_id"])
    truth = pd.DataFrame(
        [(e.campaign_id, d) for e in events.itertuples() for d in pd.date_range(e.start_date, e.end_date)],
        columns=["campaign_id", "date"],
    )
    rows = []
    for tenant, tenant_rows in frame.groupby("tenant_id"):
        if not roas_eligibility(campaign_features[campaign_features.tenant_id == tenant], DataMinimum())[0]:
            continue
        train, test = holdout_split(tenant_rows, holdout_days)
        clean_test = ~touches_flagged(test, truth)
        for variant, flagged in (("no exclusion", None), ("ours excluded", ours), ("truth excluded", truth)):
            keep = ~touches_flagged(train, flagged)
            model = ROASPredictor().fit(train[keep], train.loc[keep, TARGET])
            error = np.abs(
                model.predict_frame(test)["predicted_roas"].to_numpy() - test["expected_roas"].to_numpy()
            )
            rows.append(
                {
                    "variant": variant,
                    "excluded": int((~keep).sum()),
                    "train": int(keep.sum()),
                    "abs_all": error,
                    "abs_clean": error[clean_test],
                }
            )
    out = []
    for variant, group in pd.DataFrame(rows).groupby("variant", sort=False):
        all_errors = np.concatenate(group["abs_all"].to_list())
        clean_errors = np.concatenate(group["abs_clean"].to_list())
        out.append(
            {
                "regime": regime,
                "seed": seed,
                "variant": variant,
                "train rows": group["train"].sum(),
                "excluded": group["excluded"].sum(),
                "MAE all test days": all_errors.mean(),
                "MAE clean test days": clean_errors.mean(),
                "test rows": len(all_errors),
            }
        )
    return pd.DataFrame(out)


def fmt(x: float | None) -> str:
    return "  n/a" if x is None or not np.isfinite(x) else f"{x:5.2f}"


def report(regime: str, results: list[dict]) -> dict[str, bool]:
    ev = pd.concat([r["events"] for r in results], ignore_index=True)
    clean = sum(r["clean_days"] for r in results)
    print(
        f"\n=== regime {regime}: seeds pooled, {len(ev)} campaign anomalies, {clean:,} clean campaign-days ==="
    )
    print(
        f"ours at its shipped alpha: {sum(r['fa_default'] for r in results)} false alarms "
        f"= {1000 * sum(r['fa_default'] for r in results) / clean:.2f} per 1,000 clean campaign-days"
    )
    for m in ("ours", "ref", "stl", "oracle"):
        fa = sum(r["fa_at_thr"][m] for r in results)
        print(f"{m:>9} at the calibrated threshold: {1000 * fa / clean:.2f} false alarms per 1,000")
    print(
        f"{'kind':<22}{'band':>10}{'n':>5}{'ours@alpha':>11}{'kind ok':>8}{'ours':>7}{'ref':>7}{'stl':>7}"
        f"{'oracle':>7}"
    )
    met, limits = {}, []
    for kind in KINDS:
        k = ev[ev["kind"] == kind]
        for lo, hi, name in [(0, np.inf, "all"), *BANDS]:
            b = k[(k["volume"] >= lo) & (k["volume"] < hi)]
            if b.empty:
                continue
            oracle = None if kind == "spend_spike" else b["oracle"].mean()
            found = b["ours_default"]
            print(
                f"{kind:<22}{name:>10}{len(b):>5}{fmt(found.mean()):>11}"
                f"{fmt(b.loc[found, 'kind_right'].mean() if found.any() else np.nan):>8}"
                f"{fmt(b['ours'].mean()):>7}{fmt(b['ref'].mean()):>7}{fmt(b['stl'].mean()):>7}{fmt(oracle):>7}"
            )
        floor, target = TARGETS[kind]
        t = k[k["volume"] >= floor]
        if kind in ORACLE_IS_LIMIT and len(t):
            limit = t["oracle"].mean()
            limits.append(
                f"  oracle: {kind} (>= {floor:g} conv/day) {limit:.2f} against the target {target}: "
                + (
                    "UNMEETABLE even by the oracle at this false-alarm rate"
                    if limit < target
                    else "within the oracle's reach"
                )
            )
        recall = (
            t["ours_default"].mean() if len(t) else np.nan
        )  # the shipped detector (its rate is <= 1 per 1,000)
        met[f"{kind} (>= {floor:g} conv/day) recall >= {target}"] = (recall, recall >= target)
        ours, ref = k["ours_default"].mean(), k["ref"].mean()
        met[f"{kind} vs reference >= {VS_REFERENCE}x or >= 0.95"] = (
            ours / ref if ref > 0 else np.inf,
            ours >= 0.95 or ours >= VS_REFERENCE * ref,
        )
    found, total, false = (sum(r["match_key"][i] for r in results) for i in range(3))
    print(f"CAPI match-key outages (tenant-platform, no target): found {found}/{total}, {false} false alarms")
    fa = sum(r["fa_default"] for r in results)
    print(
        f"targets (ours as shipped, {1000 * fa / clean:.2f} false alarms per 1,000 clean campaign-days; "
        "the reference at <= 1 per 1,000):"
    )
    met["shipped detector <= 1 false alarm per 1,000 clean campaign-days"] = (
        1000 * fa / clean,
        fa <= FA_RATE * clean,
    )
    for name, (value, ok) in met.items():
        print(f"  {name:<58} {value:6.2f}  {'MET' if ok else 'NOT MET'}")
    print(
        "the limit (a per-day count-aware test under the true expected level; a multi-day test can pass it):"
    )
    print("\n".join(limits))
    return {f"{regime}: {k}": ok for k, (v, ok) in met.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimes", nargs="+", default=["low", "realistic"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[7, 11])
    parser.add_argument("--tenants", type=int, default=6)
    parser.add_argument("--campaigns", type=int, default=40)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--fit-days", type=int, default=70)
    parser.add_argument("--timing-tenants", type=int, default=100)
    parser.add_argument(
        "--roas-regimes",
        nargs="*",
        default=["realistic"],
        help="regimes of the ROAS training comparison (none: skip it; ~6 model fits per seed)",
    )
    args = parser.parse_args()
    print(
        f"worlds: {args.tenants} tenants x {args.campaigns} campaigns x {args.days} days per seed; "
        f"detectors fitted on the first {args.fit_days} days, judged on the rest"
    )
    verdicts = {}
    for regime in args.regimes:
        results = []
        for seed in args.seeds:
            t0 = time.perf_counter()
            results.append(
                evaluate_world(regime, seed, args.tenants, args.campaigns, args.days, args.fit_days)
            )
            seconds = time.perf_counter() - t0
            print(f"[{regime} seed {seed}: {seconds:.1f} s, fitting {results[-1]['fit_seconds']:.1f} s]")
        verdicts.update(report(regime, results))
    if args.roas_regimes:
        print(
            "\nROAS forecast (next day) MAE against the expected ROAS, demo tenants with anomalies, "
            "last 14 days held out:"
        )
        table = pd.concat(
            [roas_effect(r, s) for r in args.roas_regimes for s in args.seeds], ignore_index=True
        )
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    seconds, rows, found = scoring_time(args.timing_tenants)
    ok = seconds <= SCORING_SECONDS
    verdicts["scoring a 100-tenant day"] = ok
    print(
        f"\nscoring a {args.timing_tenants}-tenant day ({rows:,} campaign-days, {found} anomalies): {seconds:.2f} s "
        f"(target <= {SCORING_SECONDS:g} s) {'MET' if ok else 'NOT MET'}"
    )
    print(f"\n{sum(verdicts.values())}/{len(verdicts)} targets met")


if __name__ == "__main__":
    main()
