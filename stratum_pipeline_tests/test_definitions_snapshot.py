"""A snapshot of the code location's graph: any change to its assets, checks, jobs, schedules or sensors shows
up in review as a diff of snapshots/definitions.json. After an intended change, refresh it with
`STRATUM_UPDATE_SNAPSHOT=1 pytest stratum_pipeline_tests/test_definitions_snapshot.py` and commit the diff."""

import json
import os
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": type(node.partitions_def).__name__ if node.partitions_def else None,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
        }
    checks = sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys)
    jobs = sorted(job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__"))
    schedules = {
        s.name: {"cron": s.cron_schedule, "job": s.job_name, "status": s.default_status.value}
        for s in defs.schedules or []
    }
    sensors = {s.name: {"status": s.default_status.value} for s in defs.sensors or []}
    return {
        "assets": assets,
        "checks": checks,
        "jobs": jobs,
        "schedules": dict(sorted(schedules.items())),
        "sensors": dict(sorted(sensors.items())),
    }


def test_the_definitions_match_their_snapshot():
    from stratum_pipeline.definitions import defs

    current = describe(defs)
    if os.environ.get("STRATUM_UPDATE_SNAPSHOT"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=False) + "\n")
    recorded = json.loads(SNAPSHOT.read_text())
    for part in ("assets", "checks", "jobs", "schedules", "sensors"):
        assert current[part] == recorded[part], (
            f"the code location's {part} changed: review the difference, then refresh snapshots/definitions.json "
            "(STRATUM_UPDATE_SNAPSHOT=1)"
        )
