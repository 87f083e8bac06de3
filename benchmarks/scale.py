"""Scale benchmark: wall time and peak memory of the daily graph, a backfill and training, with and without Dagster.

Generates the demo source data (default 100 tenants x 50 campaigns x 365 days, 100 sessions per tenant and
day) one tenant at a time, plus one more day, then measures, each in its own process:

  (b) backfill  the raw extracts and features (daily_ingest_job) for the first `--days` days, in the ranged
                runs the backfill policy cuts it into (at most MAX_DAYS_PER_RUN days each: 12 for a year);
                the run count is read from the instance; plain runs the same ranges
  (c) train     the default models and every tenant's ROAS and conversion models (MLflow): one Dagster run
                for the defaults and one per tenant, as the monthly schedules launch them
  (a) daily     the whole daily graph for the new day with the models trained: ingest + features
                (daily_ingest_job), creative fatigue (fatigue_scores_job), forecasts, budget scenarios and
                event-match quality (daily_forecasts_job)

"dagster" runs the jobs in process (`execute_in_process`, the in-process executor) on a SQLite Dagster
instance; "plain" calls the same asset and check bodies as Python functions in dependency order (a minimal
context stand-in: no run, executor, event log or instance), on a second warehouse and MLflow store, so the
ratio dagster/plain is the orchestration overhead. Wall time counts the work only (imports excluded); peak
memory is the largest of the stage process's ru_maxrss, its children's, and the sampled RSS sum of its
process tree.

    python benchmarks/scale.py [--tenants 100 --campaigns 50 --days 365 --sessions-per-day 100]
                               [--backend sqlite|postgres] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

RESULT_PREFIX = "SCALE-RESULT "
# (stage, mode) in execution order; printed as (a) daily, (b) backfill, (c) train, (d) launched training
PLAN = (
    ("backfill", "dagster"),
    ("backfill", "plain"),
    ("train", "dagster"),
    ("train", "plain"),
    ("launch", "runs"),
    ("launch", "batched"),
    ("daily", "dagster"),
    ("daily", "plain"),
)
MODES = ("dagster", "plain")
MEMORY_TARGET_GIB = 4.0
MAX_CONCURRENT_RUNS = 4  # the deployment's queued run coordinator (deploy/dagster.yaml)
BENCHMARK_TAG = "stratum/benchmark"  # the launched mode of a run (its materialisations are counted per mode)
DAILY_OVERHEAD_TARGET = 1.3
GIB = 2**30


# --- the parent: databases, stage processes, memory sampling, report -------------------------------------------


def _tree_rss(root: int) -> int:
    """RSS bytes of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * page
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def run_stage(name: str, spec: dict, env: dict) -> dict:
    """Run one stage in a fresh process; return its report with the peak RSS of its process tree."""
    command = [sys.executable, __file__, "--stage", name, "--spec", json.dumps(spec)]
    log = Path(spec["workdir"]) / f"{name}.log"  # the stage's warnings and logs
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(process.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.stdout.read()
    process.wait()
    done.set()
    sampler.join()
    lines = [line for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not lines:
        raise SystemExit(
            f"stage {name} failed (exit code {process.returncode}):\n{output[-2000:]}\n{log.read_text()[-3000:]}"
        )
    report = json.loads(lines[-1][len(RESULT_PREFIX) :])
    report["peak_rss_bytes"] = max(peak[0], report["maxrss_self_bytes"], report["maxrss_children_bytes"])
    return report


@contextmanager
def databases(backend: str, workdir: Path, pg_url: str):
    """SQLAlchemy URLs of the source and the two warehouses (dagster, plain); PostgreSQL ones are created and dropped."""
    names = ("source", "warehouse_dagster", "warehouse_plain")
    if backend == "sqlite":
        yield {n: f"sqlite:///{workdir / f'{n}.db'}" for n in names}
        return
    import sqlalchemy as sa

    server = sa.engine.make_url(pg_url)
    prefix = f"stratum_scale_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    created = []
    try:
        with admin.connect() as conn:
            for n in names:
                conn.execute(sa.text(f'CREATE DATABASE "{prefix}_{n}"'))
                created.append(f"{prefix}_{n}")
        yield {n: server.set(database=f"{prefix}_{n}").render_as_string(hide_password=False) for n in names}
    finally:
        with admin.connect() as conn:
            for db in created:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def _ratio(modes: dict, measure: str) -> float:
    return modes["dagster"][measure] / max(modes["plain"][measure], 1e-9)


def print_report(spec: dict, generated: dict, results: dict) -> None:
    print()
    print(
        f"Scale benchmark: {spec['tenants']} tenants x {spec['campaigns']} campaigns x {spec['days']} days "
        f"(+1 new day), {spec['sessions_per_day']} sessions per tenant and day, backend {spec['backend']}"
    )
    print(
        f"generate+write source: {generated['wall_s']:.1f} s wall, {generated['cpu_s']:.1f} s CPU, peak {_gib(generated['peak_rss_bytes'])}; rows: "
        + ", ".join(f"{k} {v:,}" for k, v in generated["rows"].items() if not k.startswith("truth"))
    )
    print()
    print(f"{'stage':<12} {'mode':<8} {'wall s':>9} {'CPU s':>9} {'peak RSS':>10} {'runs':>5}  detail")
    labels = (
        ("(a) daily", "daily"),
        ("(b) backfill", "backfill"),
        ("(c) train", "train"),
        ("(d) launched", "launch"),
    )
    for label, stage in labels:
        for mode, r in results.get(stage, {}).items():
            runs = str(r["runs"]) if r.get("runs") else "-"
            print(
                f"{label:<12} {mode:<8} {r['wall_s']:>9.1f} {r['cpu_s']:>9.1f} "
                f"{_gib(r['peak_rss_bytes']):>10} {runs:>5}  {r['detail']}"
            )
            label = ""
        if set(MODES) <= set(results.get(stage, {})):
            print(
                f"{'':<12} overhead ratio dagster/plain: {_ratio(results[stage], 'wall_s'):.2f} (wall), "
                f"{_ratio(results[stage], 'cpu_s'):.2f} (CPU)"
            )
    print()
    print_training_launches(spec, results)
    print_targets(spec, generated, results)


def _launch_figures(spec: dict, results: dict, mode: str) -> dict | None:
    """A launched mode's wall and CPU, scaled to every tenant when it ran a subset, and its CPU per tenant beyond
    the plain training of the same tenants (read + fit + MLflow + gate, measured per tenant in train_plain)."""
    r = results.get("launch", {}).get(mode)
    if r is None:
        return None
    n, total = len(r["tenants"]), spec["tenants"]
    plain = results.get("train", {}).get("plain", {}).get("tenant_cpu_s")
    # the plain work of the same tenants; with --plain-tenants, the mean of the tenants trained plain times n
    work = sum(plain.get(t, sum(plain.values()) / len(plain)) for t in r["tenants"]) if plain else None
    return {
        "tenants": n,
        "runs": r["runs"],
        "wall_all": r["wall_s"] * total / n,
        "cpu_all": r["cpu_s"] * total / n,
        "scaled": n < total,
        "work_per_tenant": work / n if work is not None else None,
        "overhead_per_tenant": (r["cpu_s"] - work) / n if work is not None else None,
    }


def print_training_launches(spec: dict, results: dict) -> None:
    """(d): one run process per tenant vs the schedule's batch runs, per tenant, against the plain training."""
    figures = {mode: _launch_figures(spec, results, mode) for mode in ("runs", "batched")}
    if not any(figures.values()):
        return
    plain_tenants = len(results.get("train", {}).get("plain", {}).get("tenant_cpu_s") or {})
    print(
        f"training {spec['tenants']} tenants as the schedule launches it (each run its own process, "
        f"`dagster job execute` with the multiprocess executor, at most {MAX_CONCURRENT_RUNS} runs at once):"
    )
    for mode, f in figures.items():
        if f is None:
            print(f"  {mode:<8} not run")
            continue
        scaled = f" (measured on {f['tenants']} tenants, scaled per tenant)" if f["scaled"] else ""
        overhead = (
            f"; read + fit + MLflow + gate (plain, {plain_tenants} tenants) {f['work_per_tenant']:.2f} s CPU per "
            "tenant, overhead beyond it "
            f"{f['overhead_per_tenant']:.2f} s CPU per tenant"
            if f["overhead_per_tenant"] is not None
            else "; overhead per tenant: train_plain not run"
        )
        print(
            f"  {mode:<8} {f['runs']} run(s) for {f['tenants']} tenants: {f['wall_all']:.1f} s wall, "
            f"{f['cpu_all']:.1f} s CPU for {spec['tenants']} tenants{scaled}{overhead}"
        )
    print()


def print_targets(spec: dict, generated: dict, results: dict) -> None:
    """The issue's target table: this run's figures ("before" from the issue where this run has none)."""
    from stratum_pipeline.partitions import MAX_DAYS_PER_RUN

    def measured(stage, mode, key):
        r = results.get(stage, {}).get(mode)
        return r[key] if r else None

    def fmt(value, unit="s", note=""):
        return "not measured in this run" if value is None else f"{value:,.1f} {unit}{note}"

    size = f"{spec['tenants']} x {spec['campaigns']} x {spec['days']} d"
    runs, batched = (_launch_figures(spec, results, m) for m in ("runs", "batched"))
    # the one-run-per-tenant launches are the code before #16's batching: their peak is the "before" column
    peaks = [
        r["peak_rss_bytes"]
        for stage, modes in results.items()
        for mode, r in modes.items()
        if (stage, mode) != ("launch", "runs")
    ]
    peak = max(peaks + [generated["peak_rss_bytes"]])
    before_peak = results.get("launch", {}).get("runs")

    def launched(f, key):
        if f is None or f[key] is None:
            return None
        return f[key] / 60 if key == "wall_all" else f[key]

    rows = [
        (
            "365-day backfill, 100 x 50 campaigns, CPU",
            "~1,300 s (issue)",
            fmt(measured("backfill", "dagster", "cpu_s"), note=f" at {size}"),
            "<= 330 s",
        ),
        (
            "daily incremental run, 100 tenants, wall",
            "30 s (issue)",
            fmt(measured("daily", "dagster", "wall_s"), note=f" at {spec['tenants']} tenants"),
            "<= 10 s",
        ),
        (
            f"training {spec['tenants']} tenants as the schedule launches it, wall",
            fmt(launched(runs, "wall_all"), "min", " (one run per tenant)"),
            fmt(launched(batched, "wall_all"), "min", " (batched)"),
            "<= 6 min",
        ),
        (
            "per-tenant training overhead beyond fit + MLflow, CPU",
            fmt(launched(runs, "overhead_per_tenant")),
            fmt(launched(batched, "overhead_per_tenant")),
            "<= 1 s",
        ),
        (
            "peak memory",
            f"{_gib(before_peak['peak_rss_bytes'])} (one run per tenant)"
            if before_peak
            else "2.65 GiB (issue)",
            f"{_gib(peak)} (the other stages run here)",
            "<= 4 GiB",
        ),
    ]
    print(
        f"targets of #16 ({size}, backend {spec['backend']}; the launched rows are before/after in this run):"
    )
    print("| measure | before | after | target |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"peak memory <= {MEMORY_TARGET_GIB:.0f} GiB: {_gib(peak)} "
        f"{'MET' if peak <= MEMORY_TARGET_GIB * GIB else 'NOT MET'}"
    )
    backfill = results.get("backfill", {}).get("dagster")
    if backfill:
        cap = -(-spec["days"] // MAX_DAYS_PER_RUN)  # the fewest runs when no run holds more than the cap
        ok = backfill["runs"] == cap and backfill["runs"] < spec["days"]
        print(
            f"backfill runs: {backfill['runs']} run(s) counted in the instance for {spec['days']} daily partitions "
            f"(at most {MAX_DAYS_PER_RUN} days per run: at least {cap}; one run per day would be {spec['days']}) "
            f"{'MET' if ok else 'NOT MET'}"
        )
    if set(MODES) <= set(results.get("daily", {})):
        ratio = _ratio(results["daily"], "cpu_s")
        print(
            f"daily overhead ratio dagster/plain <= {DAILY_OVERHEAD_TARGET}: {ratio:.2f} CPU "
            f"{'MET' if ratio <= DAILY_OVERHEAD_TARGET else 'NOT MET'}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--campaigns", type=int, default=50)
    parser.add_argument(
        "--days", type=int, default=365, help="days of history to backfill (one more is generated)"
    )
    parser.add_argument("--sessions-per-day", type=int, default=100, help="web sessions per tenant and day")
    parser.add_argument("--end-date", default="2026-11-24", help="the new day of the daily run")
    parser.add_argument(
        "--before",
        nargs="*",
        default=[],
        metavar="REF",
        help="git refs (commits) whose code is measured beside this code on the same data: the daily run and one "
        "31-day ingest run, each on its own copy of the backfilled warehouse, alternating (see --repeat)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per code in the before/after comparison")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "STRATUM_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
        ),
        help="PostgreSQL server for --backend postgres (databases are created and dropped)",
    )
    parser.add_argument(
        "--workdir",
        help="folder for SQLite files, MLflow stores and the Dagster instance (default: a temporary one)",
    )
    parser.add_argument(
        "--only",
        help="comma-separated stages or stage_mode names to run (default all): backfill, train, launch, daily, "
        "e.g. backfill,train_plain,launch (training needs the backfill's features; daily needs train_dagster)",
    )
    parser.add_argument(
        "--run-tenants",
        type=int,
        default=0,
        help="launch_runs (one run process per tenant) for only the first N tenants; its 100-tenant time is then "
        "extrapolated per tenant (default: every tenant)",
    )
    parser.add_argument(
        "--plain-tenants",
        type=int,
        default=0,
        help="train_plain trains only the first N tenants (the per-tenant work is then their mean; default: all)",
    )
    parser.add_argument(
        "--skip-default-models", action="store_true", help="train_plain leaves out the two default models"
    )
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        return stage_main(args.stage, json.loads(args.spec))
    if args.before:
        return compare_main(args)

    with tempfile.TemporaryDirectory(prefix="stratum-scale-") as tmp:
        workdir = Path(args.workdir or tmp).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        with databases(args.backend, workdir, args.pg_url) as urls:
            spec = {
                "tenants": args.tenants,
                "campaigns": args.campaigns,
                "days": args.days,
                "sessions_per_day": args.sessions_per_day,
                "end_date": args.end_date,
                "backend": args.backend,
                "run_tenants": args.run_tenants,
                "plain_tenants": args.plain_tenants,
                "skip_default_models": args.skip_default_models,
                "workdir": str(workdir),
                "urls": urls,
            }
            home = workdir / "dagster_home"
            home.mkdir(exist_ok=True)
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            env = {
                **os.environ,
                "DAGSTER_HOME": str(home),
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "GX_ANALYTICS_ENABLED": "false",
                "PYTHONWARNINGS": "ignore",
            }
            print(f"workdir {workdir}", flush=True)
            generated = run_stage("generate", spec, env)
            print(f"  generate: {generated['wall_s']:.1f} s, {_gib(generated['peak_rss_bytes'])}", flush=True)
            results = {}
            wanted = set(args.only.split(",")) if args.only else None
            if wanted and not {"backfill", "backfill_plain"} & wanted:
                # the plain stages read the features the Dagster backfill wrote (their MLflow store stays their own)
                urls["warehouse_plain"] = urls["warehouse_dagster"]
                print(
                    "backfill plain not run: the plain stages read the Dagster backfill's warehouse",
                    flush=True,
                )
            for stage, mode in PLAN:
                if wanted and not {stage, f"{stage}_{mode}"} & wanted:
                    continue
                results.setdefault(stage, {})[mode] = run_stage(f"{stage}_{mode}", spec, env)
                r = results[stage][mode]
                (workdir / "results.json").write_text(
                    json.dumps({"spec": spec, "generated": generated, "results": results})
                )
                print(
                    f"  {stage} {mode}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, {_gib(r['peak_rss_bytes'])}; {r['detail']}",
                    flush=True,
                )
            print_report(spec, generated, results)
    return 0


# --- before/after: the same measurements with other commits' code on the same data ---------------------------


def _export(ref: str, workdir: Path) -> Path:
    """The package of commit `ref` (git archive of this repository) in workdir/code_<ref>: its PYTHONPATH."""
    root = Path(__file__).resolve().parents[1]
    target = workdir / f"code_{ref}"
    if not (target / "stratum_pipeline").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", ref, "stratum_pipeline"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def _copy_warehouse(spec: dict, name: str) -> str:
    """A copy of the backfilled Dagster-mode warehouse (file copy; PostgreSQL: CREATE DATABASE ... TEMPLATE)."""
    import shutil

    import sqlalchemy as sa

    source = spec["urls"]["warehouse_dagster"]
    if spec["backend"] == "sqlite":
        path = Path(spec["workdir"]) / f"{name}.db"
        shutil.copyfile(sa.engine.make_url(source).database, path)
        return f"sqlite:///{path}"
    url = sa.engine.make_url(source)
    copy = f"{url.database}_{name}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{copy}" TEMPLATE "{url.database}"'))
    admin.dispose()
    spec.setdefault("copies", []).append(copy)
    return url.set(database=copy).render_as_string(hide_password=False)


def _drop_copies(spec: dict) -> None:
    import sqlalchemy as sa

    if not spec.get("copies"):
        return
    admin = sa.create_engine(
        sa.engine.make_url(spec["urls"]["warehouse_dagster"]).set(database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        for copy in spec.pop("copies"):
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)'))
    admin.dispose()


def compare_main(args) -> int:
    """`--before REF...`: generate, backfill and train with this code (Dagster in process), then `compare_codes`
    and its report. A SQLite workdir that already holds a prepared dataset (prepared.json) is reused as is."""
    with tempfile.TemporaryDirectory(prefix="stratum-scale-") as tmp:
        workdir = Path(args.workdir or tmp).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        prepared = workdir / "prepared.json"
        reuse = args.backend == "sqlite" and prepared.exists()
        with databases(args.backend, workdir, args.pg_url) as urls:
            dims = ("tenants", "campaigns", "days", "sessions_per_day", "end_date", "backend")
            fresh = {**{k: getattr(args, k) for k in dims}, "workdir": str(workdir), "urls": urls}
            spec = json.loads(prepared.read_text()) if reuse else fresh
            home = workdir / "dagster_home"
            home.mkdir(exist_ok=True)
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            env = {**os.environ, "DAGSTER_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
            env.update({"GX_ANALYTICS_ENABLED": "false", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"})
            print(f"workdir {workdir}" + (" (prepared data reused)" if reuse else ""), flush=True)
            for stage in () if reuse else ("generate", "backfill_dagster", "train_dagster"):
                r = run_stage(stage, spec, env)
                print(
                    f"  {stage}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU; {r['detail'][:160]}",
                    flush=True,
                )
            if args.backend == "sqlite":
                prepared.write_text(json.dumps(spec))
            print_comparison(spec, compare_codes(spec, env, args.before, args.repeat))
    return 0


def compare_codes(spec: dict, env: dict, refs: list[str], repeat: int) -> dict:
    """Per code (each ref, then this code): `repeat` rounds, alternating the codes within a round, of a 31-day
    ingest run and of the daily run, each code on its own copy of the backfilled warehouse and with the models
    trained once. Returns {code label: {"month": [reports], "daily": [reports]}}."""
    workdir = Path(spec["workdir"])
    codes = [(ref, str(_export(ref, workdir))) for ref in refs] + [("this code", None)]
    try:
        copies = {label: _copy_warehouse(spec, f"compare{i}") for i, (label, _) in enumerate(codes)}
        runs = {label: {"month": [], "daily": []} for label, _ in codes}
        for round_ in range(repeat):
            for label, path in codes:
                stage_env = {**env, "PYTHONPATH": path} if path else env
                for kind in ("month", "daily"):
                    report = run_stage(
                        f"{kind}_dagster", {**spec, "compare_warehouse": copies[label]}, stage_env
                    )
                    runs[label][kind].append(report)
                    print(
                        f"  compare round {round_ + 1} {label} {kind}: {report['wall_s']:.1f} s wall, "
                        f"{report['cpu_s']:.1f} s CPU; {report['detail'][:120]}",
                        flush=True,
                    )
        return runs
    finally:
        _drop_copies(spec)


DAILY_WALL_TARGET_S = 10.0  # issue #16: the daily incremental run at 100 tenants
BACKFILL_SPEEDUP_TARGET = 4.0  # issue #16: the 365-day backfill 4x less CPU than before the issue


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def print_steps(runs: dict, labels: list[str]) -> None:
    """The daily run split by step (asset or check): CPU and wall seconds, medians over the rounds, per code;
    the steps of the last code (this one) by its CPU, largest first."""
    steps = {label: [r.get("steps") or {} for r in runs[label]["daily"]] for label in labels}
    last = steps[labels[-1]]
    if not any(last):
        return
    names = sorted(
        {n for report in last for n in report}, key=lambda n: -_median([r.get(n, [0, 0])[0] for r in last])
    )
    print(
        f"{'daily run by step, CPU s / wall s (median)':<52} " + " ".join(f"{label:>26}" for label in labels)
    )
    for name in names:
        cells = []
        for label in labels:
            values = [r[name] for r in steps[label] if name in r]
            cells.append(
                f"{_median([v[0] for v in values]):.2f} / {_median([v[1] for v in values]):.2f}"
                if values
                else "-"
            )
        print(f"  {name[:50]:<50} " + " ".join(f"{c:>26}" for c in cells))


def print_comparison(spec: dict, runs: dict) -> None:
    """The daily-run and backfill rows of issue #16's target table, before (each ref) and after (this code)."""
    first, last = _month(spec)
    labels = list(runs)
    print()
    print(
        f"Before/after on the same data ({spec['tenants']} tenants x {spec['campaigns']} campaigns x {spec['days']} "
        f"days, backend {spec['backend']}; {len(runs[labels[0]]['daily'])} alternating rounds, median [all runs]):"
    )
    rows = (
        ("daily run (3 jobs, new day), CPU s", "daily", "cpu_s"),
        ("daily run (3 jobs, new day), wall s", "daily", "wall_s"),
        (f"31-day ingest run ({first}..{last}), CPU s", "month", "cpu_s"),
        (f"31-day ingest run ({first}..{last}), wall s", "month", "wall_s"),
    )
    print(f"{'measure':<52} " + " ".join(f"{label:>26}" for label in labels) + "   before/after")
    medians = {}
    for name, kind, measure in rows:
        cells = []
        for label in labels:
            values = [r[measure] for r in runs[label][kind]]
            medians[(label, kind, measure)] = _median(values)
            cells.append(f"{_median(values):.1f} [{', '.join(f'{v:.1f}' for v in values)}]")
        ratios = ", ".join(
            f"{medians[(label, kind, measure)] / max(medians[(labels[-1], kind, measure)], 1e-9):.2f}x"
            for label in labels[:-1]
        )
        print(f"{name:<52} " + " ".join(f"{c:>26}" for c in cells) + f"   {ratios}")
    print_steps(runs, labels)
    for label in labels:
        details = {r["detail"] for kind in ("month", "daily") for r in runs[label][kind]}
        print(f"  {label}: {'; '.join(sorted(details))[:300]}")
    print("targets (issue #16):")
    daily = medians[(labels[-1], "daily", "wall_s")]
    at_scale = spec["tenants"] >= 100
    print(
        f"  daily incremental run <= {DAILY_WALL_TARGET_S:.0f} s wall at 100 tenants: {daily:.1f} s at "
        f"{spec['tenants']} tenants "
        + (
            ("MET" if daily <= DAILY_WALL_TARGET_S else "NOT MET")
            if at_scale
            else f"(not measured at 100 tenants; {'already over the target' if daily > DAILY_WALL_TARGET_S else 'not decided'})"
        )
    )
    for label in labels[:-1]:
        ratio = medians[(label, "month", "cpu_s")] / max(medians[(labels[-1], "month", "cpu_s")], 1e-9)
        print(
            f"  backfill CPU {BACKFILL_SPEEDUP_TARGET:.0f}x less than {label}: {ratio:.2f}x on a 31-day ingest run "
            f"{'MET' if ratio >= BACKFILL_SPEEDUP_TARGET else 'NOT MET'}"
        )


# --- the stages (each runs in its own process) -------------------------------------------------------------------


def _days(spec: dict) -> tuple[date, date, date]:
    """First and last day of the backfill, and the new day of the daily run."""
    new_day = date.fromisoformat(spec["end_date"])
    return new_day - timedelta(days=spec["days"]), new_day - timedelta(days=1), new_day


def _config(spec: dict):
    from stratum_pipeline.demo.generator import DemoConfig

    return DemoConfig.scaled(
        date.fromisoformat(spec["end_date"]),
        spec["tenants"],
        spec["campaigns"],
        spec["days"] + 1,
        sessions_per_day=spec["sessions_per_day"],
    )


def _resources(spec: dict, mode: str) -> dict:
    from stratum_pipeline.resources import ModelRegistry, SourceDatabase, Warehouse

    if spec.get("compare_warehouse"):  # a before/after run: its own warehouse copy, the models trained once
        mode, warehouse = "dagster", spec["compare_warehouse"]
    else:
        warehouse = spec["urls"][f"warehouse_{mode}"]
    mlflow_db = Path(spec["workdir"]) / f"mlflow_{mode}" / "mlflow.db"
    return {
        "source": SourceDatabase(url=spec["urls"]["source"]),
        "warehouse": Warehouse(url=warehouse),
        "registry": ModelRegistry(tracking_uri=f"sqlite:///{mlflow_db}"),
    }


def stage_generate(spec: dict) -> dict:
    from stratum_pipeline.demo.generator import generate_in_chunks
    from stratum_pipeline.demo.writer import write_source_chunks
    from stratum_pipeline.storage.database import engine_for

    rows = write_source_chunks(
        engine_for(spec["urls"]["source"]),
        generate_in_chunks(_config(spec), tenants_per_chunk=1),
        truth=False,
    )
    return {"rows": rows, "detail": f"{sum(rows.values()):,} rows"}


# Dagster: the jobs as the schedules run them, in process, on the instance under DAGSTER_HOME.


def _dagster(spec: dict):
    import dagster as dg

    from stratum_pipeline.definitions import build_definitions

    return build_definitions(_resources(spec, "dagster")), dg.DagsterInstance.get()


def _checks(results) -> str:
    from stratum_pipeline.automation.local_runs import RunSummary

    summary = RunSummary.of(results)
    return f"checks passed {summary.checks_passed}/{summary.checks_passed + summary.checks_failed}"


def _dagster_daily_jobs(spec: dict, jobs: tuple[str, ...], first: date, last: date) -> dict:
    """Each job over [first, last] in the ranged runs a backfill of that range launches."""
    from stratum_pipeline.automation.local_runs import execute_daily_range
    from stratum_pipeline.partitions import backfill_ranges

    defs, instance = _dagster(spec)
    before = instance.get_runs_count()
    steps = _step_clock(instance)
    results = [
        execute_daily_range(defs, start.isoformat(), end.isoformat(), instance=instance, job_name=job)
        for job in jobs
        for start, end in backfill_ranges(first, last)
    ]
    runs = instance.get_runs_count() - before
    events = sum(len(instance.all_logs(r.run_id)) for r in results)
    ok = all(r.success for r in results)
    return {
        "runs": runs,
        "success": ok,
        "events": events,
        "steps": steps,
        "detail": f"{'succeeded' if ok else 'FAILED'}; {runs} run(s), {events:,} events; {_checks(results)}",
    }


def _step_clock(instance) -> dict[str, list[float]]:
    """Per step (asset or check): [CPU s, wall s] between its STEP_START and its STEP_SUCCESS or STEP_FAILURE
    event, summed over the runs, filled in as the instance stores the events. The in-process executor runs the
    steps one after another in this process, so a step's CPU is this process's (and its reaped children's, e.g.
    forked fits) over that span, its events included."""
    started: dict[tuple, tuple[float, float]] = {}
    steps: dict[str, list[float]] = {}
    store = instance.handle_new_event

    def handle(event, *args, **kwargs):
        store(event, *args, **kwargs)
        kind = event.dagster_event.event_type_value if event.dagster_event else None
        key = (event.run_id, event.step_key)
        if kind == "STEP_START":
            started[key] = (_cpu_seconds(), time.perf_counter())
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and key in started:
            cpu, wall = started.pop(key)
            total = steps.setdefault(event.step_key, [0.0, 0.0])
            total[0] += _cpu_seconds() - cpu
            total[1] += time.perf_counter() - wall

    instance.handle_new_event = handle
    return steps


def stage_backfill_dagster(spec: dict) -> dict:
    first, last, _ = _days(spec)
    return _dagster_daily_jobs(spec, ("daily_ingest_job",), first, last)


def stage_daily_dagster(spec: dict) -> dict:
    _, _, day = _days(spec)
    return _dagster_daily_jobs(
        spec, ("daily_ingest_job", "fatigue_scores_job", "daily_forecasts_job"), day, day
    )


def stage_month_dagster(spec: dict) -> dict:
    """One ranged ingest run (daily_ingest_job) over the backfill's last 31 days: the unit a backfill repeats."""
    first, last = _month(spec)
    return _dagster_daily_jobs(spec, ("daily_ingest_job",), first, last)


def _month(spec: dict) -> tuple[date, date]:
    first, last, _ = _days(spec)
    return max(first, last - timedelta(days=30)), last


def _served(materialization_metadata: list[dict]) -> str:
    own = sum(1 for md in materialization_metadata if "version" in md)
    return f"{own} own model(s), {len(materialization_metadata) - own} served by the default"


def _training_summary(outcomes: dict[str, list[dict]]) -> str:
    def default(mds: list[dict]) -> str:
        if not mds:
            return "FAILED (not materialised; see the stage log)"
        return (
            f"v{mds[0]['version']} gate: {mds[0]['gate']}"[:160]
            if "version" in mds[0]
            else str(mds[0].get("reason"))
        )

    return "; ".join(
        f"{kind}: {default(mds) if kind.endswith('default_model') else _served(mds)}"
        for kind, mds in outcomes.items()
    )


def stage_train_dagster(spec: dict) -> dict:
    from stratum_pipeline.partitions import tenant_partitions

    defs, instance = _dagster(spec)
    tenants = _tenant_ids(spec)
    instance.add_dynamic_partitions(tenant_partitions.name, tenants)
    before = instance.get_runs_count()
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    results = [
        defs.resolve_job_def("train_default_models_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=quiet
        )
    ]
    results += [
        defs.resolve_job_def("train_tenant_models_job").execute_in_process(
            instance=instance, partition_key=t, raise_on_error=False, run_config=quiet
        )
        for t in tenants
    ]
    runs = instance.get_runs_count() - before
    outcomes = {
        "roas_default_model": [],
        "conversion_default_model": [],
        "roas_model": [],
        "conversion_model": [],
    }
    for result in results:
        for event in result.get_asset_materialization_events():
            m = event.event_specific_data.materialization
            outcomes[m.asset_key.to_user_string()].append({k: v.value for k, v in m.metadata.items()})
    ok = all(r.success for r in results)
    return {
        "runs": runs,
        "success": ok,
        "detail": f"{'succeeded' if ok else 'some gate kept a champion or a step FAILED'}; {runs} runs; "
        f"{_training_summary(outcomes)}",
    }


# Plain: the same asset and check bodies, called as functions.


@dataclass
class _Window:
    start: datetime
    end: datetime


class PlainContext:
    """What the asset and check bodies read from their Dagster context, without a run."""

    run_id = "plain-python"
    instance = None  # no run, no event log
    run = SimpleNamespace(
        tags={}, run_id=run_id
    )  # no `stratum/tenant_id` tag: every tenant, as the scheduled runs
    log = logging.getLogger("stratum.scale.plain")

    def __init__(self, first: date | None = None, last: date | None = None, partition_key: str | None = None):
        if first is not None:
            self.partition_time_window = _Window(
                datetime.combine(first, datetime.min.time(), timezone.utc),
                datetime.combine(last + timedelta(days=1), datetime.min.time(), timezone.utc),
            )
        self.partition_key = partition_key
        self.has_partition_key = partition_key is not None

    def add_asset_metadata(self, metadata, asset_key=None, partition_key=None) -> None:
        """Per-partition metadata of a ranged run: nothing records it without a run."""


PLAIN_FAILURES: list[str] = []  # bodies that raised: reported in the stage's detail, never skipped silently


def _call(definition, context: PlainContext, resources: dict):
    """Call an asset's or check's body with the resources (and config) it names. An error is logged,
    recorded in PLAIN_FAILURES and gives None, as a failed step does not stop the others."""
    from stratum_pipeline.assets.models import TrainingConfig

    node = definition.op if hasattr(definition, "op") else definition.node_def
    fn = node.compute_fn.decorated_fn
    available = {**resources, "config": TrainingConfig()}
    kwargs = {name: available[name] for name in inspect.signature(fn).parameters if name != "context"}
    try:
        return fn(context, **kwargs)
    except Exception as exc:
        context.log.error(f"{node.name} failed: {type(exc).__name__}: {exc}")
        PLAIN_FAILURES.append(f"{node.name} ({type(exc).__name__}: {str(exc)[:80]})")
        return None


def _plain_graph(definitions: list, context: PlainContext, resources: dict) -> tuple[int, int]:
    """Run bodies in the given (dependency) order; returns (checks passed, checks run)."""
    import dagster as dg

    passed = total = 0
    for definition in definitions:
        result = _call(definition, context, resources)
        if result is None:
            continue
        if inspect.isgenerator(result):  # a ranged check's evaluation per partition (checks/partitioned.py)
            checks = [e for e in result if isinstance(e, dg.AssetCheckEvaluation)]
            checks = [dg.AssetCheckResult(passed=all(e.passed for e in checks))] if checks else []
        else:
            checks = (
                [result]
                if isinstance(result, dg.AssetCheckResult)
                else list(getattr(result, "check_results", None) or [])
            )
        total += len(checks)
        passed += sum(1 for c in checks if c.passed)
    return passed, total


def _ingest_graph() -> list:
    from stratum_pipeline.assets.features import feature_assets
    from stratum_pipeline.assets.raw import raw_assets
    from stratum_pipeline.checks.data_quality import feature_contract_checks, raw_contract_checks

    return [*raw_assets, *raw_contract_checks, *feature_assets, *feature_contract_checks]


def stage_backfill_plain(spec: dict) -> dict:
    from stratum_pipeline.partitions import backfill_ranges

    first, last, _ = _days(spec)
    passed = total = 0
    for start, end in backfill_ranges(first, last):  # the same ranges as the Dagster runs
        p, t = _plain_graph(_ingest_graph(), PlainContext(start, end), _resources(spec, "plain"))
        passed, total = passed + p, total + t
    return {"detail": f"checks passed {passed}/{total}"}


def stage_daily_plain(spec: dict) -> dict:
    from stratum_pipeline.assets.budget import budget_allocations, campaign_response_curves
    from stratum_pipeline.assets.products import (
        budget_scenarios,
        creative_fatigue_scores,
        daily_roas_forecasts,
        event_match_quality,
    )

    _, _, day = _days(spec)
    graph = [  # daily_forecasts_job's assets in dependency order (the response curves came with #9)
        *_ingest_graph(),
        creative_fatigue_scores,
        campaign_response_curves,
        daily_roas_forecasts,
        budget_scenarios,
        budget_allocations,
        event_match_quality,
    ]
    passed, total = _plain_graph(graph, PlainContext(day, day), _resources(spec, "plain"))
    return {"detail": f"checks passed {passed}/{total}"}


def stage_train_plain(spec: dict) -> dict:
    from stratum_pipeline.assets.models import default_model_assets, tenant_model_assets

    resources = _resources(spec, "plain")
    outcomes = {
        "roas_default_model": [],
        "conversion_default_model": [],
        "roas_model": [],
        "conversion_model": [],
    }
    defaults = [] if spec.get("skip_default_models") else default_model_assets
    tenants = _tenant_ids(spec)[: spec.get("plain_tenants") or None]
    runs = [(d, None) for d in defaults] + [(d, t) for t in tenants for d in tenant_model_assets]
    tenant_cpu: dict[
        str, float
    ] = {}  # each tenant's read + fit + MLflow + gate: the work a run must do anyway
    for definition, tenant in runs:
        started = _cpu_seconds()
        result = _call(definition, PlainContext(partition_key=tenant), resources)
        if tenant is not None:
            tenant_cpu[tenant] = tenant_cpu.get(tenant, 0.0) + _cpu_seconds() - started
        if result is None:
            continue
        outcomes[definition.key.to_user_string()].append(
            {k: getattr(v, "value", v) for k, v in result.metadata.items()}
        )
    if not defaults:
        outcomes = {k: v for k, v in outcomes.items() if not k.endswith("default_model")}
    detail = _training_summary(outcomes) + ("; default models not trained here" if not defaults else "")
    return {"detail": detail, "tenant_cpu_s": tenant_cpu}


# Training as the schedule launches it: every run its own process, as a queued run launched by the daemon is
# (`dagster job execute`: the run process loads the code location and runs its steps with the multiprocess
# executor, each step a child process), at most MAX_CONCURRENT_RUNS at a time (deploy/dagster.yaml). The daemon's
# own dequeue loop and the code server are not part of it. "runs": one train_tenant_models_job run per tenant
# (before #16's batching); "batched": the runs the monthly schedule requests (train_tenant_batch_job per batch).


def _launch(spec: dict, mode: str, runs: list[tuple[str, dict, dict | None]]) -> dict:
    """Run each (job, tags, run config) as its own `dagster job execute` process, MAX_CONCURRENT_RUNS at once."""
    import yaml

    workdir = Path(spec["workdir"])
    env = {
        **os.environ,
        "STRATUM_SOURCE_URL": spec["urls"]["source"],
        "STRATUM_WAREHOUSE_URL": spec["urls"]["warehouse_dagster"],
        "STRATUM_MLFLOW_TRACKING_URI": f"sqlite:///{workdir / f'mlflow_{mode}' / 'mlflow.db'}",
        "ML_MODELS_PATH": str(workdir / f"models_{mode}"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    dagster = str(Path(sys.executable).with_name("dagster"))
    pending, running, codes = list(enumerate(runs)), [], []
    while pending or running:
        while pending and len(running) < MAX_CONCURRENT_RUNS:
            i, (job, tags, config) = pending.pop(0)
            command = [dagster, "job", "execute", "-m", "stratum_pipeline.definitions", "-j", job]
            command += ["--tags", json.dumps({**tags, BENCHMARK_TAG: mode})]
            if config:
                path = workdir / f"run_config_{mode}_{i}.yaml"
                path.write_text(yaml.safe_dump(config))
                command += ["-c", str(path)]
            log = open(workdir / f"run_{mode}_{i}.log", "w")
            running.append((subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        time.sleep(0.2)
        for process, log in [r for r in running if r[0].poll() is not None]:
            codes.append(process.returncode)
            log.close()
            running.remove((process, log))
    return {"runs": len(runs), "failed_runs": sum(1 for c in codes if c != 0)}


def _launched_outcomes(tenants: list[str], mode: str) -> str:
    """Which tenant partitions of the model assets the runs `mode` launched materialised (read from the instance)."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    runs = set(instance.get_run_ids(dg.RunsFilter(tags={BENCHMARK_TAG: mode})))
    done = {}
    for asset in ("roas_model", "conversion_model"):
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records
        done[asset] = len({r.partition_key for r in records if r.run_id in runs} & set(tenants))
    return ", ".join(f"{asset} {n}/{len(tenants)} tenant partitions" for asset, n in done.items())


def _register_tenants(tenants: list[str]) -> None:
    import dagster as dg

    from stratum_pipeline.partitions import tenant_partitions

    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(tenant_partitions.name, tenants)


def _fresh_mlflow(spec: dict, mode: str) -> None:
    """Create the run mode's MLflow store once, before parallel runs start (no migration race)."""
    from stratum_pipeline.modelops.registry import MlflowRegistry

    MlflowRegistry(f"sqlite:///{Path(spec['workdir']) / f'mlflow_{mode}' / 'mlflow.db'}").experiment_id()


def stage_launch_runs(spec: dict) -> dict:
    """One run process per tenant (the first `run_tenants` tenants), as the schedule launched them before."""
    from stratum_pipeline.automation.jobs import training_run_tags

    tenants = _tenant_ids(spec)[: spec.get("run_tenants") or None]
    _register_tenants(_tenant_ids(spec))
    _fresh_mlflow(spec, "runs")
    runs = [
        ("train_tenant_models_job", {"dagster/partition": t, **training_run_tags(t)}, None) for t in tenants
    ]
    report = _launch(spec, "runs", runs)
    report["tenants"] = tenants
    report["detail"] = (
        f"{len(runs)} run(s), {report['failed_runs']} failed; {_launched_outcomes(tenants, 'runs')}"
    )
    return report


def stage_launch_batched(spec: dict) -> dict:
    """The runs the monthly schedule requests for every tenant (train_tenant_batch_job, one per batch)."""
    from stratum_pipeline.automation.jobs import training_batch_requests

    tenants = _tenant_ids(spec)
    _register_tenants(tenants)
    _fresh_mlflow(spec, "batched")
    requests = training_batch_requests(tenants, "bench")
    runs = [("train_tenant_batch_job", dict(r.tags), r.run_config) for r in requests]
    report = _launch(spec, "batched", runs)
    report["tenants"] = tenants
    report["detail"] = (
        f"{len(runs)} run(s), {report['failed_runs']} failed; {_launched_outcomes(tenants, 'batched')}"
    )
    return report


def _tenant_ids(spec: dict) -> list[str]:
    return [t.tenant_id for t in _config(spec).tenants]


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (steps of a multiprocess executor)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def stage_main(name: str, spec: dict) -> int:
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import warnings

    warnings.filterwarnings("ignore")
    import dagster  # noqa: F401  (imports are not part of the measured work)

    import stratum_pipeline.definitions  # noqa: F401
    from stratum_pipeline.checks.expectations import _batch_definition

    _batch_definition()  # great-expectations' context, built once per process in both modes
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    report = globals()[f"stage_{name}"](spec)
    if PLAIN_FAILURES:
        report["detail"] += f"; {len(PLAIN_FAILURES)} step(s) FAILED: {', '.join(PLAIN_FAILURES)[:300]}"
    report["wall_s"] = time.perf_counter() - started
    report["cpu_s"] = _cpu_seconds() - cpu_started
    report["maxrss_self_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    report["maxrss_children_bytes"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    report.setdefault("runs", 0)
    print(RESULT_PREFIX + json.dumps(report, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
