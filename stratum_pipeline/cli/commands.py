"""The `stratum` subcommands: each reads its arguments, calls the package and prints JSON or a summary; a
user-facing problem is a `Fail` (one line, exit 2)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

from stratum_pipeline.cli.embedded import (
    DEFAULT_HOME,
    Fail,
    apply_environment,
    embedded_environment,
    fail_orphaned_runs,
    lock_home,
    record_partitions_start,
)
from stratum_pipeline.settings import Env

MAX_INPUT_BYTES = 1 << 20  # JSON input of predict / simulate / fatigue / emq (1 MiB)


def _settings():
    """The validated settings (after apply_environment); a bad value is a one-line Fail."""
    from stratum_pipeline.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise Fail(str(exc)) from None


def _say(message: str = "") -> None:
    print(message, flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    env = apply_environment(Path(args.home))
    lock_home(Path(args.home), "demo")
    orphaned = fail_orphaned_runs(Path(args.home))
    _settings()
    _quietly()
    from stratum_pipeline.demo.options import DemoOptions

    end_date = args.end_date or (datetime.now(timezone.utc).date() - timedelta(days=1))
    options = DemoOptions(
        end_date=end_date,
        seed=args.seed,
        bad_row_rate=args.bad_row_rate,
        noise=args.noise,
        tenants=args.tenants,
        campaigns=args.campaigns,
        days=args.days,
    )
    # The daily partitions start at the demo's first day (before the definitions load, which fix them), so the
    # catalog shows no missing day without data; `stratum ui` and plain `dagster dev` read it from the folder.
    first_day = options.config().start_date
    loaded = sys.modules.get("stratum_pipeline.partitions")  # in a process that loaded them already (tests)
    if loaded is not None and loaded.DAILY_START_DATE > first_day.isoformat():
        raise Fail(
            f"the daily partitions start at {loaded.DAILY_START_DATE}, after the demo's first day {first_day}"
        )
    record_partitions_start(Path(args.home), first_day)
    env[Env.PARTITIONS_START] = first_day.isoformat()
    from stratum_pipeline.demo.run import run_demo

    ok = run_demo(options, env, _say, orphaned)
    _say("")
    _say("Open the Dagster UI on the same instance and databases:")
    _say(f"  stratum --home {args.home} ui")
    _say(f'  (or: eval "$(stratum --home {args.home} env)"; dagster dev -m stratum_pipeline.definitions)')
    if Path(args.home).resolve() == Path(DEFAULT_HOME).resolve():
        _say(
            "  (or, in the repository root: dagster dev - its workspace.yaml and dagster.yaml are this default)"
        )
    return 0 if ok else 1


def _read_json(text: str | None):
    if text in (None, "-"):
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        if len(data) > MAX_INPUT_BYTES:
            raise Fail(f"input is larger than {MAX_INPUT_BYTES:,} bytes: send one record at a time")
        raw = data.decode("utf-8", errors="replace")
    else:
        raw = text
        if len(raw.encode("utf-8", errors="replace")) > MAX_INPUT_BYTES:
            raise Fail(f"input is larger than {MAX_INPUT_BYTES:,} bytes: send one record at a time")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Fail(f"input is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise Fail("input JSON is nested too deeply") from None


def _print_json(value) -> int:
    print(json.dumps(value, indent=2, default=str, allow_nan=False))  # strict JSON: never NaN or Infinity
    return 0


def _service():
    import sqlalchemy as sa

    from stratum_pipeline.resources import ModelRegistry, SourceDatabase
    from stratum_pipeline.serving.cache import cache_from_url
    from stratum_pipeline.serving.inference import InferenceService
    from stratum_pipeline.storage import source_schema

    settings = _settings()
    source = SourceDatabase(url=settings.source_url)

    def tenant_exists(tenant: str) -> bool:
        try:
            found = source.read(
                sa.select(source_schema.tenants.c.id).where(source_schema.tenants.c.id == tenant)
            )
        except sa.exc.SQLAlchemyError as exc:
            raise Fail(f"cannot read tenants from the source database: {type(exc).__name__}") from None
        return len(found) > 0

    from stratum_pipeline.serving.vertex import remote_from_settings

    registry = ModelRegistry(tracking_uri=settings.mlflow_tracking_uri)
    return InferenceService(
        registry,
        cache_from_url(settings.redis_url),
        tenant_exists,
        remote=remote_from_settings(settings),
        remote_fallback=settings.vertex_fallback == "local",
        warehouse_url=settings.warehouse_url,
    )


def _quietly():
    """The commands print their own output: silence library chatter (MLflow configures its loggers on import)."""
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    logging.getLogger("mlflow").setLevel(logging.ERROR)


def cmd_predict(args: argparse.Namespace) -> int:
    apply_environment(Path(args.home))
    _quietly()
    payload = _read_json(args.json)
    from stratum_pipeline.serving.inference import PredictionError
    from stratum_pipeline.serving.vertex import VertexError

    service = _service()  # a bad setting is its own one-line error
    try:
        return _print_json(service.get_prediction(args.model_type, payload, args.tenant))
    except (PredictionError, VertexError) as exc:
        raise Fail(str(exc)) from None
    except Exception as exc:  # a broken model store or registry: one line, not a traceback
        raise Fail(f"prediction failed: {type(exc).__name__}: {exc}") from None


def cmd_anomalies(args: argparse.Namespace) -> int:
    apply_environment(Path(args.home))
    _quietly()
    from stratum_pipeline.serving.inference import PredictionError

    service = _service()
    try:
        return _print_json(service.anomalies(args.tenant, args.campaign, args.days))
    except PredictionError as exc:
        raise Fail(str(exc)) from None


def cmd_simulate(args: argparse.Namespace) -> int:
    from stratum_pipeline.ml.simulator import BudgetSimulator, SimulationInputError

    payload = _read_json(args.json)
    if not isinstance(payload, dict):
        raise Fail(
            "input must be a JSON object: a campaign, {campaign, scenarios, days, iterations, seed}, "
            "or the seed's request {campaign_id, base_budget, scenarios, time_horizon_days, simulations}"
        )
    seed_request = "base_budget" in payload
    campaign = payload if seed_request else payload.get("campaign", payload)
    if (
        seed_request
        and not any(k in payload for k in ("response_curve", "roas", "predicted_roas"))
        and payload.get("campaign_id") is not None
    ):
        campaign = {**payload, "response_curve": _campaign_curve(args, payload["campaign_id"])}
    try:
        if seed_request:
            return _print_json(BudgetSimulator().simulate(campaign, seed=payload.get("seed")))
        return _print_json(
            BudgetSimulator().simulate(
                campaign,
                payload.get("scenarios"),
                payload.get("days", 30),
                payload.get("iterations", 1000),
                payload.get("seed"),
            )
        )
    except (SimulationInputError, TypeError, ValueError) as exc:
        raise Fail(str(exc)) from None


def _campaign_curve(args: argparse.Namespace, campaign_id) -> dict:
    """The campaign's latest response curve from the warehouse (the seed's request names only the campaign)."""
    apply_environment(Path(args.home))
    import sqlalchemy as sa

    from stratum_pipeline.serving.budget import curves_from_env

    store = curves_from_env()
    if store is None:
        raise Fail(
            "the seed's request names a campaign: set STRATUM_WAREHOUSE_URL to read its response curve"
        )
    try:
        curve = store.campaign(campaign_id, args.tenant)
    except sa.exc.SQLAlchemyError as exc:
        raise Fail(f"cannot read campaign_response_curves from the warehouse: {type(exc).__name__}") from None
    if curve is None:
        raise Fail(
            f"no response curve for campaign {campaign_id!r}: materialise campaign_response_curves first, "
            "or give its roas"
        )
    return curve


def cmd_allocate(args: argparse.Namespace) -> int:
    apply_environment(Path(args.home))
    _quietly()
    import sqlalchemy as sa

    from stratum_pipeline.serving.budget import curves_from_env
    from stratum_pipeline.serving.inference import InferenceService, PredictionError

    service = InferenceService(registry=_NoRegistry(), curves=curves_from_env())
    try:
        return _print_json(
            service.allocate(
                args.tenant, args.total, tuple(args.bounds), args.target_marginal_roas, caution=args.caution
            )
        )
    except PredictionError as exc:
        raise Fail(str(exc)) from None
    except sa.exc.SQLAlchemyError as exc:
        raise Fail(f"cannot read campaign_response_curves from the warehouse: {type(exc).__name__}") from None


class _NoRegistry:
    """`stratum allocate` reads curves only: no model registry is opened."""

    def serving_model(self, model_type: str, tenant: str):  # pragma: no cover - never called by allocate
        raise RuntimeError("no model registry")


def cmd_fatigue(args: argparse.Namespace) -> int:
    from stratum_pipeline.ml.fatigue import FatigueScorer

    payload = _read_json(args.json)
    try:
        return _print_json(FatigueScorer().calculate_score(payload))
    except (TypeError, ValueError) as exc:
        raise Fail(str(exc)) from None


def cmd_emq(args: argparse.Namespace) -> int:
    from stratum_pipeline.ml.emq import DataQualityAnalyzer

    payload = _read_json(args.json)
    try:
        return _print_json(DataQualityAnalyzer().analyze(payload, args.platform))
    except (TypeError, ValueError) as exc:
        raise Fail(str(exc)) from None


def cmd_ui(args: argparse.Namespace) -> int:
    """`dagster dev` on the embedded instance and, for a local MLflow store, `mlflow ui` beside it (the model
    assets' MLflow links point at it). Both stop on SIGINT, SIGTERM or SIGHUP, also when started from a script
    (a background job starts with SIGINT ignored); the state folder stays locked until both have stopped."""
    import signal
    import subprocess

    env = apply_environment(Path(args.home))
    _settings()
    lock_home(Path(args.home), "ui")
    for run_id in fail_orphaned_runs(Path(args.home)):
        print(f"stratum: run {run_id} was left STARTED by a killed process: marked FAILED", file=sys.stderr)
    bin_dir = Path(sys.executable).parent
    tracking = env[Env.MLFLOW_TRACKING_URI]
    commands = []
    if args.mlflow_port and tracking.startswith("sqlite:///"):
        if os.environ.get(Env.MLFLOW_UI_URL) == embedded_environment(Path(args.home))[Env.MLFLOW_UI_URL]:
            os.environ[Env.MLFLOW_UI_URL] = f"http://{args.host}:{args.mlflow_port}"  # not set by the caller
        commands.append(
            [
                str(bin_dir / "mlflow"),
                "ui",
                "--backend-store-uri",
                tracking,
                "--host",
                args.host,
                "--port",
                str(args.mlflow_port),
            ]
        )
    commands.append(
        [
            str(bin_dir / "dagster"),
            "dev",
            "-m",
            "stratum_pipeline.definitions",
            "-h",
            args.host,
            "-p",
            str(args.port),
        ]
    )

    def default_signals():  # in the child: Ctrl-C and SIGTERM behave normally even if we were started ignoring them
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)

    children = [subprocess.Popen(c, start_new_session=True, preexec_fn=default_signals) for c in commands]
    stopping = []

    def stop(signum, _frame):
        stopping.append(signum)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGINT if child is children[-1] else signal.SIGTERM)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    if len(children) > 1:
        print(f"stratum: MLflow UI at {os.environ[Env.MLFLOW_UI_URL]}", file=sys.stderr)
    code = children[-1].wait()  # dagster dev: when it ends, everything ends
    for child in children[:-1]:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
    return 0 if stopping else code


def cmd_cadence(args: argparse.Namespace) -> int:
    apply_environment(Path(args.home))
    import sqlalchemy as sa

    from stratum_pipeline.resources import SourceDatabase, Warehouse
    from stratum_pipeline.storage import source_schema
    from stratum_pipeline.tenancy import InvalidTenantId, validate_tenant_id

    settings = _settings()
    try:
        tenant = validate_tenant_id(args.tenant)
    except InvalidTenantId as exc:
        raise Fail(str(exc)) from None
    found = SourceDatabase(url=settings.source_url).read(
        sa.select(source_schema.tenants.c.id).where(source_schema.tenants.c.id == tenant)
    )
    if not len(found):
        raise Fail(f"unknown tenant {tenant!r}: it is not in the source database's tenants")
    Warehouse(url=settings.warehouse_url).set_retraining_cadence(tenant, args.cadence)
    print(f"{args.tenant}: {args.cadence} retraining")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    """`export` lines for the embedded defaults this command sets, then the validated settings as comments.

    Variables the caller had already set are not repeated (they may hold passwords): the comments
    show every setting with passwords masked and the credentials file by name only.
    """
    import shlex

    preset = {key for key in embedded_environment(Path(args.home)) if os.environ.get(key)}
    env = apply_environment(Path(args.home))
    settings = _settings()
    for key, value in env.items():
        if key not in preset:
            print(f"export {key}={shlex.quote(value)}")
    print("# settings (validated; passwords masked):")
    for key, value in settings.describe().items():
        print(f"#   {key}={value}")
    return 0
