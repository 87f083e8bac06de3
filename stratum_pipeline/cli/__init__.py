"""`stratum` command line: the parser and `main`; the subcommands are in `commands.py`, the embedded
default in `embedded.py`.

    stratum demo     generate the demo source data and materialise the graph on the embedded default
    stratum ui       open the Dagster UI (dagster dev) on the same instance and databases
    stratum env      print the environment the embedded default uses (to export in a shell) and the
                     validated settings, credentials masked

The embedded default keeps everything under --home (default ./.stratum): source.db, warehouse.db
and dagster_home/. Variables already set in the environment (e.g. PostgreSQL URLs) win.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date

from stratum_pipeline.cli.commands import (
    cmd_allocate,
    cmd_anomalies,
    cmd_cadence,
    cmd_demo,
    cmd_emq,
    cmd_env,
    cmd_fatigue,
    cmd_predict,
    cmd_simulate,
    cmd_ui,
)
from stratum_pipeline.cli.embedded import (  # noqa: F401  (the package's API, used by tests and scripts)
    CHECKED_VARIABLES,
    DEFAULT_HOME,
    Fail,
    _held_locks,
    apply_environment,
    embedded_environment,
    embedded_instance_yaml,
    fail_orphaned_runs,
    lock_home,
)


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stratum", description="Stratum Pipeline: the ML engine as a Dagster project."
    )
    parser.add_argument(
        "--home", default=DEFAULT_HOME, help="folder of the embedded default (default: .stratum)"
    )
    parser.add_argument(
        "--debug", action="store_true", help="on failure, print the full traceback, not one line"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="generate demo data and materialise the graph (embedded default)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--end-date", type=_parse_date, help="last day of data (default: yesterday, UTC)")
    demo.add_argument(
        "--bad-row-rate", type=float, default=0.002, help="share of injected bad rows (default 0.002)"
    )
    demo.add_argument(
        "--tenants", type=int, help="scaled data: this many identical tenants instead of the demo four"
    )
    demo.add_argument(
        "--campaigns", type=int, default=50, help="campaigns per tenant with --tenants (default 50)"
    )
    demo.add_argument("--days", type=int, default=365, help="days of history with --tenants (default 365)")
    demo.add_argument(
        "--noise",
        choices=("low", "realistic"),
        default="low",
        help="low: the textbook world (default); realistic: low volumes, overdispersed counts, zero-revenue "
        "days, heavy-tailed orders, adstock, abrupt budget changes",
    )
    demo.set_defaults(func=cmd_demo)

    ui = sub.add_parser("ui", help="run `dagster dev` on the same instance and databases")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument(
        "--mlflow-port",
        type=int,
        default=5000,
        help="port of the `mlflow ui` started beside it for a local MLflow store (0: none)",
    )
    ui.set_defaults(func=cmd_ui)

    predict = sub.add_parser(
        "predict", help="a prediction from the tenant's serving model (JSON in, JSON out)"
    )
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
    simulate.add_argument(
        "json",
        nargs="?",
        help="a campaign, {campaign, scenarios, days, iterations, seed}, or the "
        "seed's request {campaign_id, base_budget, scenarios, time_horizon_days, simulations}",
    )
    simulate.add_argument("--tenant", default=None, help="the tenant of the seed request's campaign_id")
    simulate.set_defaults(func=cmd_simulate)

    allocate = sub.add_parser(
        "allocate", help="re-split a tenant's daily budget across its campaigns (response curves)"
    )
    allocate.add_argument("--tenant", required=True)
    allocate.add_argument(
        "--total", type=float, default=None, help="total daily budget (default: today's total)"
    )
    allocate.add_argument(
        "--bounds",
        type=float,
        nargs=2,
        default=(0.5, 2.0),
        metavar=("LOW", "HIGH"),
        help="each campaign's budget within LOW x-HIGH x today's (default 0.5 2.0)",
    )
    allocate.add_argument(
        "--target-marginal-roas",
        type=float,
        default=None,
        help="instead of a total: scale each campaign until its marginal ROAS falls to this",
    )
    allocate.add_argument(
        "--caution",
        type=float,
        default=None,
        help="charge each move this many sds of its gain over the curve's draws: uncertain curves move less "
        "(default 0: off)",
    )
    allocate.set_defaults(func=cmd_allocate)

    fatigue = sub.add_parser("fatigue", help="fatigue score of one creative")
    fatigue.add_argument("json", nargs="?")
    fatigue.set_defaults(func=cmd_fatigue)

    emq = sub.add_parser("emq", help="event-match quality of one conversion event")
    emq.add_argument("--platform", default="meta")
    emq.add_argument("json", nargs="?")
    emq.set_defaults(func=cmd_emq)

    cadence = sub.add_parser(
        "cadence", help="switch a tenant to weekly retraining (busy periods) or back to monthly"
    )
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
    except Fail as exc:
        print(f"stratum: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stratum: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an outage, a bad URL, an unknown host...: one line unless --debug
        if args.debug:
            raise
        print(
            f"stratum: {args.command} failed: {describe_error(exc)} (--debug shows the traceback)",
            file=sys.stderr,
        )
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
