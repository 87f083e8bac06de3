"""`stratum` command line.

    stratum demo     generate the demo source data and materialise the graph on the embedded default
    stratum ui       open the Dagster UI (dagster dev) on the same instance and databases
    stratum env      print the environment the embedded default uses (to export in a shell) and the
                     validated settings, credentials masked

The embedded default keeps everything under --home (default ./.stratum): source.db, warehouse.db
and dagster_home/. Variables already set in the environment (e.g. PostgreSQL URLs) win.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import uuid
import warnings
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

DEFAULT_HOME = ".stratum"


def embedded_environment(home: Path) -> dict[str, str]:
    """The embedded default: SQLite files and a SQLite Dagster instance under `home`."""
    home = home.resolve()
    return {
        "STRATUM_SOURCE_URL": f"sqlite:///{home / 'source.db'}",
        "STRATUM_WAREHOUSE_URL": f"sqlite:///{home / 'warehouse.db'}",
        "DAGSTER_HOME": str(home / "dagster_home"),
        # MLflow beside the home folder: ./mlruns for the default ./.stratum
        "STRATUM_MLFLOW_TRACKING_URI": f"sqlite:///{home.parent / 'mlruns' / 'mlflow.db'}",
        # where champions are published as the existing backend's {model_type}_t{tenant}.joblib files
        "ML_MODELS_PATH": str(home / "models"),
    }


# Variables the commands read: set but empty is an error (never "the current folder" or an empty URL).
CHECKED_VARIABLES = ("STRATUM_SOURCE_URL", "STRATUM_WAREHOUSE_URL", "DAGSTER_HOME", "STRATUM_MLFLOW_TRACKING_URI",
                     "ML_MODELS_PATH", "STRATUM_REDIS_URL", "STRATUM_DAGSTER_PG_URL")
MAX_INPUT_BYTES = 1 << 20  # JSON input of predict / simulate / fatigue / emq (1 MiB)


# The daemon of `stratum ui` (dagster dev) fails runs stuck starting or cancelling; runs whose process was killed
# (kill -9) are failed by `fail_orphaned_runs` when `stratum demo` or `stratum ui` next takes the folder's lock.
EMBEDDED_RUN_MONITORING = """run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
"""


def fail_orphaned_runs(home: Path) -> list[str]:
    """Mark FAILED the runs of the embedded instance still STARTING, STARTED or CANCELING: with the folder's lock
    held no other stratum process can be running them, so their process died (killed). Only for the embedded
    instance under `home` (a DAGSTER_HOME set elsewhere may be shared); returns the run ids."""
    if Path(os.environ["DAGSTER_HOME"]).resolve() != Path(embedded_environment(home)["DAGSTER_HOME"]):
        return []
    import dagster as dg

    instance = dg.DagsterInstance.get()
    orphaned = instance.get_runs(filters=dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]))
    for run in orphaned:
        instance.report_run_failed(run, "the process running it ended without finishing (killed); found by "
                                        "the next stratum demo or ui on this folder")
    return [run.run_id for run in orphaned]


def apply_environment(home: Path) -> dict[str, str]:
    """Set the embedded defaults for variables that are not already set; return the effective values.

    The embedded models folder is created; a models folder set by the caller must exist already.
    A variable that is set but empty is a one-line error (unset it for the embedded default).
    """
    defaults = embedded_environment(home)
    for key in CHECKED_VARIABLES:
        if key in os.environ and not os.environ[key].strip():
            hint = f" (the embedded default is {defaults[key]})" if key in defaults else ""
            raise _Fail(f"{key} is set but empty: unset it to use the default{hint}, or give it a value")
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    if os.environ["ML_MODELS_PATH"] == defaults["ML_MODELS_PATH"]:
        Path(defaults["ML_MODELS_PATH"]).mkdir(parents=True, exist_ok=True)
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_config = dagster_home / "dagster.yaml"
    if not instance_config.exists():  # SQLite storage (Dagster's default) under DAGSTER_HOME; no telemetry
        instance_config.write_text("telemetry:\n  enabled: false\n")
    if "run_monitoring" not in instance_config.read_text():
        with instance_config.open("a") as out:
            out.write(EMBEDDED_RUN_MONITORING)
    return {key: os.environ[key] for key in embedded_environment(home)}


class _Fail(Exception):
    """A user-facing error: printed as one line, exit code 2."""


_held_locks: dict[Path, int] = {}


def lock_home(home: Path, command: str) -> int:
    """Hold an exclusive lock on the embedded state folder for this process's lifetime (and, via an inherited
    descriptor, for the process it execs). A second `stratum demo` or `stratum ui` on the same folder gets a
    one-line _Fail instead of racing the first one's SQLite files and MLflow schema migration."""
    import fcntl

    home = home.resolve()
    if home in _held_locks:
        return _held_locks[home]
    home.mkdir(parents=True, exist_ok=True)
    path = home / ".stratum.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise _Fail(f"another stratum demo or ui is using {home} ({holder}): wait for it to finish or use another --home")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"stratum {command}, pid {os.getpid()}".encode(), 0)
    _held_locks[home] = fd
    return fd


def _settings():
    """The validated settings (after apply_environment); a bad value is a one-line _Fail."""
    from stratum_pipeline.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise _Fail(str(exc)) from None


def _say(message: str = "") -> None:
    print(message, flush=True)


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def cmd_demo(args: argparse.Namespace) -> int:
    env = apply_environment(Path(args.home))
    lock_home(Path(args.home), "demo")
    orphaned = fail_orphaned_runs(Path(args.home))
    _settings()
    _quietly()
    from stratum_pipeline.demo.run import DemoOptions, run_demo

    end_date = args.end_date or (datetime.now(timezone.utc).date() - timedelta(days=1))
    options = DemoOptions(end_date=end_date, seed=args.seed, bad_row_rate=args.bad_row_rate, noise=args.noise,
                          tenants=args.tenants, campaigns=args.campaigns, days=args.days)
    ok = run_demo(options, env, _say, orphaned)
    _say("")
    _say("Open the Dagster UI on the same instance and databases:")
    _say(f"  stratum --home {args.home} ui")
    _say(f"  (or: eval \"$(stratum --home {args.home} env)\"; dagster dev -m stratum_pipeline.definitions)")
    return 0 if ok else 1


def _read_json(text: str | None):
    if text in (None, "-"):
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        if len(data) > MAX_INPUT_BYTES:
            raise _Fail(f"input is larger than {MAX_INPUT_BYTES:,} bytes: send one record at a time")
        raw = data.decode("utf-8", errors="replace")
    else:
        raw = text
        if len(raw.encode("utf-8", errors="replace")) > MAX_INPUT_BYTES:
            raise _Fail(f"input is larger than {MAX_INPUT_BYTES:,} bytes: send one record at a time")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _Fail(f"input is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise _Fail("input JSON is nested too deeply") from None


def _print_json(value) -> int:
    print(json.dumps(value, indent=2, default=str, allow_nan=False))  # strict JSON: never NaN or Infinity
    return 0


def _service():
    import sqlalchemy as sa

    from stratum_pipeline.storage import source_schema
    from stratum_pipeline.resources import ModelRegistry, SourceDatabase
    from stratum_pipeline.serving.cache import cache_from_url
    from stratum_pipeline.serving.inference import InferenceService

    settings = _settings()
    source = SourceDatabase(url=settings.source_url)

    def tenant_exists(tenant: str) -> bool:
        try:
            found = source.read(sa.select(source_schema.tenants.c.id).where(source_schema.tenants.c.id == tenant))
        except sa.exc.SQLAlchemyError as exc:
            raise _Fail(f"cannot read tenants from the source database: {type(exc).__name__}") from None
        return len(found) > 0

    from stratum_pipeline.serving.vertex import remote_from_settings

    registry = ModelRegistry(tracking_uri=settings.mlflow_tracking_uri)
    return InferenceService(registry, cache_from_url(settings.redis_url), tenant_exists,
                            remote=remote_from_settings(settings), remote_fallback=settings.vertex_fallback == "local",
                            warehouse_url=settings.warehouse_url)


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
        raise _Fail(str(exc)) from None
    except Exception as exc:  # a broken model store or registry: one line, not a traceback
        raise _Fail(f"prediction failed: {type(exc).__name__}: {exc}") from None


def cmd_anomalies(args: argparse.Namespace) -> int:
    apply_environment(Path(args.home))
    _quietly()
    from stratum_pipeline.serving.inference import PredictionError

    service = _service()
    try:
        return _print_json(service.anomalies(args.tenant, args.campaign, args.days))
    except PredictionError as exc:
        raise _Fail(str(exc)) from None


def cmd_simulate(args: argparse.Namespace) -> int:
    from stratum_pipeline.ml.simulator import BudgetSimulator, SimulationInputError

    payload = _read_json(args.json)
    if not isinstance(payload, dict):
        raise _Fail("input must be a JSON object: a campaign, {campaign, scenarios, days, iterations, seed}, "
                    "or the seed's request {campaign_id, base_budget, scenarios, time_horizon_days, simulations}")
    seed_request = "base_budget" in payload
    campaign = payload if seed_request else payload.get("campaign", payload)
    if seed_request and not any(k in payload for k in ("response_curve", "roas", "predicted_roas")) \
            and payload.get("campaign_id") is not None:
        campaign = {**payload, "response_curve": _campaign_curve(args, payload["campaign_id"])}
    try:
        if seed_request:
            return _print_json(BudgetSimulator().simulate(campaign, seed=payload.get("seed")))
        return _print_json(BudgetSimulator().simulate(
            campaign, payload.get("scenarios"), payload.get("days", 30), payload.get("iterations", 1000),
            payload.get("seed")))
    except (SimulationInputError, TypeError, ValueError) as exc:
        raise _Fail(str(exc)) from None


def _campaign_curve(args: argparse.Namespace, campaign_id) -> dict:
    """The campaign's latest response curve from the warehouse (the seed's request names only the campaign)."""
    apply_environment(Path(args.home))
    import sqlalchemy as sa

    from stratum_pipeline.serving.budget import curves_from_env

    store = curves_from_env()
    if store is None:
        raise _Fail("the seed's request names a campaign: set STRATUM_WAREHOUSE_URL to read its response curve")
    try:
        curve = store.campaign(campaign_id, args.tenant)
    except sa.exc.SQLAlchemyError as exc:
        raise _Fail(f"cannot read campaign_response_curves from the warehouse: {type(exc).__name__}") from None
    if curve is None:
        raise _Fail(f"no response curve for campaign {campaign_id!r}: materialise campaign_response_curves first, "
                    "or give its roas")
    return curve


def cmd_allocate(args: argparse.Namespace) -> int:
    apply_environment(Path(args.home))
    _quietly()
    import sqlalchemy as sa

    from stratum_pipeline.serving.budget import curves_from_env
    from stratum_pipeline.serving.inference import InferenceService, PredictionError

    service = InferenceService(registry=_NoRegistry(), curves=curves_from_env())
    try:
        return _print_json(service.allocate(args.tenant, args.total, tuple(args.bounds), args.target_marginal_roas))
    except PredictionError as exc:
        raise _Fail(str(exc)) from None
    except sa.exc.SQLAlchemyError as exc:
        raise _Fail(f"cannot read campaign_response_curves from the warehouse: {type(exc).__name__}") from None


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
        raise _Fail(str(exc)) from None


def cmd_emq(args: argparse.Namespace) -> int:
    from stratum_pipeline.ml.emq import DataQualityAnalyzer

    payload = _read_json(args.json)
    try:
        return _print_json(DataQualityAnalyzer().analyze(payload, args.platform))
    except (TypeError, ValueError) as exc:
        raise _Fail(str(exc)) from None


def cmd_ui(args: argparse.Namespace) -> int:
    apply_environment(Path(args.home))
    _settings()
    os.set_inheritable(lock_home(Path(args.home), "ui"), True)  # `dagster dev` keeps the folder locked
    for run_id in fail_orphaned_runs(Path(args.home)):
        print(f"stratum: run {run_id} was left STARTED by a killed process: marked FAILED", file=sys.stderr)
    command = ["dagster", "dev", "-m", "stratum_pipeline.definitions", "-h", args.host, "-p", str(args.port)]
    os.execvp(command[0], command)
    return 0  # pragma: no cover - exec does not return


def cmd_cadence(args: argparse.Namespace) -> int:
    apply_environment(Path(args.home))
    import sqlalchemy as sa

    from stratum_pipeline.storage import source_schema
    from stratum_pipeline.resources import SourceDatabase, Warehouse
    from stratum_pipeline.tenancy import InvalidTenantId, validate_tenant_id

    settings = _settings()
    try:
        tenant = validate_tenant_id(args.tenant)
    except InvalidTenantId as exc:
        raise _Fail(str(exc)) from None
    found = SourceDatabase(url=settings.source_url).read(
        sa.select(source_schema.tenants.c.id).where(source_schema.tenants.c.id == tenant))
    if not len(found):
        raise _Fail(f"unknown tenant {tenant!r}: it is not in the source database's tenants")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratum", description="Stratum Pipeline: the ML engine as a Dagster project.")
    parser.add_argument("--home", default=DEFAULT_HOME, help="folder of the embedded default (default: .stratum)")
    parser.add_argument("--debug", action="store_true", help="on failure, print the full traceback, not one line")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="generate demo data and materialise the graph (embedded default)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--end-date", type=_parse_date, help="last day of data (default: yesterday, UTC)")
    demo.add_argument("--bad-row-rate", type=float, default=0.002, help="share of injected bad rows (default 0.002)")
    demo.add_argument("--tenants", type=int, help="scaled data: this many identical tenants instead of the demo four")
    demo.add_argument("--campaigns", type=int, default=50, help="campaigns per tenant with --tenants (default 50)")
    demo.add_argument("--days", type=int, default=365, help="days of history with --tenants (default 365)")
    demo.add_argument("--noise", choices=("low", "realistic"), default="low",
                      help="low: the textbook world (default); realistic: low volumes, overdispersed counts, zero-revenue "
                           "days, heavy-tailed orders, adstock, abrupt budget changes")
    demo.set_defaults(func=cmd_demo)

    ui = sub.add_parser("ui", help="run `dagster dev` on the same instance and databases")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    predict = sub.add_parser("predict", help="a prediction from the tenant's serving model (JSON in, JSON out)")
    predict.add_argument("model_type", choices=["roas", "conversion", "fatigue"])
    predict.add_argument("--tenant", required=True)
    predict.add_argument("json", nargs="?", help="the input as JSON (default: read stdin)")
    predict.set_defaults(func=cmd_predict)

    anomalies = sub.add_parser("anomalies", help="a tenant's recent campaign anomalies (JSON out)")
    anomalies.add_argument("tenant")
    anomalies.add_argument("--campaign", default=None, help="one campaign's anomalies only")
    anomalies.add_argument("--days", type=int, default=7, help="the last N judged days (default 7)")
    anomalies.set_defaults(func=cmd_anomalies)

    simulate = sub.add_parser("simulate", help="Monte Carlo budget scenarios for a campaign")
    simulate.add_argument("json", nargs="?", help="a campaign, {campaign, scenarios, days, iterations, seed}, or the "
                          "seed's request {campaign_id, base_budget, scenarios, time_horizon_days, simulations}")
    simulate.add_argument("--tenant", default=None, help="the tenant of the seed request's campaign_id")
    simulate.set_defaults(func=cmd_simulate)

    allocate = sub.add_parser("allocate", help="re-split a tenant's daily budget across its campaigns (response curves)")
    allocate.add_argument("--tenant", required=True)
    allocate.add_argument("--total", type=float, default=None, help="total daily budget (default: today's total)")
    allocate.add_argument("--bounds", type=float, nargs=2, default=(0.5, 2.0), metavar=("LOW", "HIGH"),
                          help="each campaign's budget within LOW x-HIGH x today's (default 0.5 2.0)")
    allocate.add_argument("--target-marginal-roas", type=float, default=None,
                          help="instead of a total: scale each campaign until its marginal ROAS falls to this")
    allocate.set_defaults(func=cmd_allocate)

    fatigue = sub.add_parser("fatigue", help="fatigue score of one creative")
    fatigue.add_argument("json", nargs="?")
    fatigue.set_defaults(func=cmd_fatigue)

    emq = sub.add_parser("emq", help="event-match quality of one conversion event")
    emq.add_argument("--platform", default="meta")
    emq.add_argument("json", nargs="?")
    emq.set_defaults(func=cmd_emq)

    cadence = sub.add_parser("cadence", help="switch a tenant to weekly retraining (busy periods) or back to monthly")
    cadence.add_argument("tenant")
    cadence.add_argument("cadence", choices=["monthly", "weekly"])
    cadence.set_defaults(func=cmd_cadence)

    env = sub.add_parser("env", help="print the environment of the embedded default")
    env.set_defaults(func=cmd_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse cannot give an optional positional after an option (`predict roas --tenant t '{...}'`)
    if len(extra) == 1 and getattr(args, "json", "") is None and not extra[0].startswith("-"):
        args.json, extra = extra[0], []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "bad_row_rate", 0) and not 0 <= args.bad_row_rate < 0.5:
        print("stratum: --bad-row-rate must be in [0, 0.5)", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except _Fail as exc:
        print(f"stratum: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stratum: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an outage, a bad URL, an unknown host...: one line unless --debug
        if args.debug:
            raise
        print(f"stratum: {args.command} failed: {describe_error(exc)} (--debug shows the traceback)", file=sys.stderr)
        return 2


def _one_line(text: str) -> str:
    """`text` on one line with every URL secret of the environment masked."""
    from stratum_pipeline.settings import scrub

    first = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    return scrub(first, [os.environ.get(key) for key in CHECKED_VARIABLES])[:500]


def describe_error(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message (a database driver's own message
    for SQLAlchemy errors, without SQLAlchemy's background link), secrets masked."""
    cause = getattr(exc, "orig", None) or exc
    message = _one_line(str(cause)) or type(cause).__name__
    message = message.split(" (Background on this error at:")[0]
    return f"{type(cause).__name__}: {message}"


if __name__ == "__main__":
    sys.exit(main())
