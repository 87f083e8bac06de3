"""Training time of N tenants on the Celery engine (deploy/celery/) with 1 and with 2 workers.

    nice -n 10 python benchmarks/celery_training.py --tenants 4 --repeats 3

Needs RabbitMQ (127.0.0.1:5672, guest/guest, rabbitmqctl for a vhost of its own) and the local PostgreSQL
(STRATUM_TEST_PG_URL). For each worker count: a fresh Dagster instance, warehouse and MLflow store on PostgreSQL
(stratum_pipeline_tests/celery_cluster.py), the workers started and ready (not timed), then `--repeats` rounds of
one `train_tenant_models_job` run per tenant launched at once as run processes; a round is timed from the launch to
the last run's end. Each tenant is a copy of the model dataset's `big` tenant (60 campaigns, 75 days, both models
trained). Printed per worker count: the median and range of the rounds' wall time, the median summed step time
(STEP_START to STEP_SUCCESS: the work the workers did), and the steps each worker took.

The machine has 2 cores, shared with other work: the figures are noisy, and a second worker can only help as far
as a core is free.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stratum_pipeline_tests.celery_cluster import CeleryCluster, Vhost, rabbitmq_up  # noqa: E402
from stratum_pipeline_tests.conftest import PostgresDatabases  # noqa: E402


def step_seconds(cluster: CeleryCluster, run_id: str) -> float:
    """Summed STEP_START -> STEP_SUCCESS time of the run's steps (the last execution of each)."""
    starts, total = {}, 0.0
    for entry in cluster.instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS and event.step_key in starts:
            total += entry.timestamp - starts.pop(event.step_key)
    return total


def measure(workers: int, tenants: tuple[str, ...], repeats: int, root: Path, databases) -> dict:
    with Vhost("stratum-bench") as broker_url:
        cluster = CeleryCluster(root / f"workers-{workers}", databases.create, broker_url, tenants)
        try:
            names = [f"w{i + 1}" for i in range(workers)]
            for name in names:
                cluster.start_worker(name)
            cluster.wait_ready(names)
            walls, work, per_worker = [], [], Counter()
            for round_ in range(repeats):
                started = time.monotonic()
                launches = [cluster.launch(tenant) for tenant in tenants]
                runs = cluster.wait_runs(launches, timeout=1800)
                walls.append(time.monotonic() - started)
                failed = [r.run_id for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
                if failed:
                    raise RuntimeError(f"{len(failed)} runs failed with {workers} worker(s): {failed}")
                work.append(sum(step_seconds(cluster, r.run_id) for r in runs))
                per_worker.update(w.split("@")[0] for r in runs for _, w in cluster.step_workers(r.run_id))
                print(
                    f"  {workers} worker(s), round {round_ + 1}: {walls[-1]:.1f} s wall, {work[-1]:.1f} s of steps",
                    flush=True,
                )
            return {"walls": walls, "work": work, "per_worker": dict(sorted(per_worker.items()))}
        finally:
            cluster.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=4, help="tenants trained per round (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per worker count (default 3)")
    args = parser.parse_args(argv)
    if args.tenants < 1 or args.repeats < 1:
        parser.error("--tenants and --repeats must be at least 1")
    if not rabbitmq_up():
        print(
            "RabbitMQ is not running at 127.0.0.1:5672: start it with `rabbitmq-server -detached`",
            file=sys.stderr,
        )
        return 2
    tenants = tuple(f"t{i:02d}" for i in range(args.tenants))
    databases = PostgresDatabases()
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="stratum-celery-bench-") as tmp:
            for workers in (1, 2):
                results[workers] = measure(workers, tenants, args.repeats, Path(tmp), databases)
    finally:
        databases.drop_all()

    print(
        f"\nCelery training, {args.tenants} tenants x 2 models, {args.repeats} rounds per worker count "
        "(2 shared cores: noisy)"
    )
    print("| workers | wall, median | wall, min-max | summed step time, median | steps per worker |")
    print("| --- | --- | --- | --- | --- |")
    for workers, r in results.items():
        print(
            f"| {workers} | {statistics.median(r['walls']):.1f} s | {min(r['walls']):.1f}-{max(r['walls']):.1f} s | "
            f"{statistics.median(r['work']):.1f} s | {r['per_worker']} |"
        )
    one, two = (statistics.median(results[w]["walls"]) for w in (1, 2))
    print(f"speed-up of 2 workers over 1: {one / two:.2f}x (ideal 2.00x on 2 free cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
