"""Mutation score of the pure decision code on the fast unit tests (mutmut 3), per module.

A benchmark, not CI. mutmut copies the package to mutants/, plants one small change per mutant (an operator, a
constant, a comparison, a dropped argument, ...) and runs the tests that reach the mutated function; a mutant is
killed when a test fails. The score is killed / (mutants - equivalent), where the equivalent mutants (no behaviour
change) are listed with a reason in docs/mutation.md. The test set and the files are configured in pyproject.toml
([tool.mutmut]); SCOPE below picks the decision functions of each file.

    python benchmarks/mutation.py                  # run the whole scope (18.6 min on the quiet 2-core machine) and report
    python benchmarks/mutation.py --report         # report the last run's results (mutants/) without running
    python benchmarks/mutation.py --only 'stratum_pipeline.tenancy.*'   # (re)run some mutants, then report
    python benchmarks/mutation.py --report --merge /tmp/mut_a /tmp/mut_b  # merge runs made in copies of the tree

mutmut 3 mutates code inside functions only: module-level constants (THRESHOLDS, the extracts' RowRules) are
pinned by the contract tests in stratum_pipeline_tests/test_boundaries.py instead.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRIAGE = ROOT / "docs" / "mutation.md"

# module -> the mutant name patterns in scope, after "stratum_pipeline.<module>." ("*" = every function of the file;
# "x_name__*" a function, "*ǁname__*" a method)
SCOPE = {
    "modelops/gate.py": ["*"],
    "storage/validation.py": ["*"],
    "tenancy.py": ["*"],
    "settings.py": ["x_mask_url__*", "x__is_secret_parameter__*"],  # URL masking
    "serving/inference.py": [
        "*ǁ_cached__*",
        "*ǁ_predict__*",
        "*ǁdata_version__*",
        "*ǁnotify_new_data__*",
    ],  # the cache key
    "ml/fatigue.py": ["*"],
    "ml/simulator.py": ["*"],
    "ml/evaluation.py": ["*"],
    "ml/emq.py": ["*"],
    "ml/monitoring.py": ["*"],
    # the decision rules of the ROAS and conversion models (fitting itself is measured by model_quality.py)
    "ml/roas.py": [
        "x_trend_array__*",
        "x_roas_trend__*",
        "x_recommendation_arrays__*",
        "x_budget_recommendation__*",
        "x_recommendation_sentence__*",
        "x__num__*",
        "x__array__*",
        "*ǁ_forecast__*",
        "*ǁ_raw_band__*",
        "*ǁ_check_fitted__*",
    ],
    "ml/conversion.py": ["x_operating_threshold__*", "*ǁ_factors__*", "*ǁtop_factors__*"],
}
STATUS = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    36: "timeout",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    None: "not checked",
}


def module_of(path: str) -> str:
    return path.removeprefix("stratum_pipeline/")


def patterns(module: str) -> list[str]:
    dotted = "stratum_pipeline." + module.removesuffix(".py").replace("/", ".")
    return [f"{dotted}.{p}" for p in SCOPE[module]]


def in_scope(name: str, module: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns(module))


def equivalents() -> dict[str, str]:
    """Mutant name -> why it changes no behaviour, from the "Equivalent mutants" section of docs/mutation.md."""
    if not TRIAGE.exists():
        return {}
    section = TRIAGE.read_text().split("## Equivalent mutants", 1)[-1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^- `([^`]+)`:? (.*)$", section, re.MULTILINE)}


def results(roots: list[Path] | None = None) -> dict[str, dict[str, int | None]]:
    """Mutant name -> exit code per module, from the `.meta` files of each tree's mutants/ in turn: a later
    tree's verdict replaces an earlier one, a mutant it did not check keeps the earlier verdict."""
    out: dict[str, dict[str, int | None]] = {}
    for meta_path, module in _metas(roots):
        codes = json.loads(meta_path.read_text())["exit_code_by_key"]
        merged = out.setdefault(module, {})
        for k, v in codes.items():
            if in_scope(k, module) and (v is not None or k not in merged):
                merged[k] = v
    return out


def durations(roots: list[Path] | None = None) -> dict[str, dict[str, float]]:
    """Mutant name -> seconds mutmut took to check it, per module (the latest tree that checked it)."""
    out: dict[str, dict[str, float]] = {}
    for meta_path, module in _metas(roots):
        seconds = json.loads(meta_path.read_text()).get("durations_by_key", {})
        out.setdefault(module, {}).update({k: v for k, v in seconds.items() if in_scope(k, module)})
    return out


def _metas(roots: list[Path] | None):
    for root in roots or [ROOT]:
        for module in SCOPE:
            meta = root / "mutants" / "stratum_pipeline" / (module + ".meta")
            if meta.exists() and meta.stat().st_size:
                yield meta, module


def report(seconds: float | None, roots: list[Path] | None = None) -> int:
    """Per module: mutants, killed, equivalent, survived, timeouts / no tests, not checked, and the score
    killed / (checked - equivalent). A mutant not checked (a run stopped early) is left out of the score and shown."""
    equivalent = equivalents()
    found = results(roots)
    timed = durations(roots)
    print(
        f"{'module':<24} {'mutants':>7} {'killed':>6} {'equiv.':>6} {'survived':>8} {'t/o,none':>8} "
        f"{'unchecked':>9} {'score':>6} {'s/mutant':>8}"
    )
    totals = Counter()
    survivors = []
    for module in SCOPE:
        codes = found.get(module, {})
        status = {k: STATUS.get(c, "suspicious") for k, c in codes.items()}
        killed = sum(s == "killed" for s in status.values())
        unchecked = sum(s == "not checked" for s in status.values())
        eq = sum(1 for k, s in status.items() if k in equivalent and s not in ("killed", "not checked"))
        survived = sum(s == "survived" for s in status.values()) - sum(
            1 for k, s in status.items() if k in equivalent and s == "survived"
        )
        other = len(codes) - killed - unchecked - eq - survived
        judged = len(codes) - unchecked - eq
        survivors += [
            k for k, s in status.items() if s not in ("killed", "not checked") and k not in equivalent
        ]
        totals.update(
            mutants=len(codes), killed=killed, eq=eq, survived=survived, other=other, unchecked=unchecked
        )
        score = f"{killed / judged:.1%}" if judged else "-"
        seconds_each = list(timed.get(module, {}).values())
        per_mutant = f"{sum(seconds_each) / len(seconds_each):.2f}" if seconds_each else "-"
        print(
            f"{module:<24} {len(codes):>7} {killed:>6} {eq:>6} {survived:>8} {other:>8} {unchecked:>9} {score:>6} "
            f"{per_mutant:>8}"
        )
    judged = totals["mutants"] - totals["unchecked"] - totals["eq"]
    print(
        f"{'total':<24} {totals['mutants']:>7} {totals['killed']:>6} {totals['eq']:>6} {totals['survived']:>8} "
        f"{totals['other']:>8} {totals['unchecked']:>9} {totals['killed'] / judged if judged else float('nan'):>6.1%}"
    )
    print(
        "score = killed / (checked - equivalent); equivalent mutants are listed in docs/mutation.md; target >= 85%"
    )
    every = [s for module in timed.values() for s in module.values()]
    if every:
        print(
            f"per-mutant wall time recorded by mutmut: {len(every):,} mutants, mean {sum(every) / len(every):.2f} s, "
            f"sum {sum(every) / 60:.1f} min (divide by the children that ran side by side)"
        )
    if seconds is not None:
        print(f"mutation run: {seconds / 60:.1f} min (target <= 30 min)")
    if survivors:
        print(
            f"{len(survivors)} mutants checked and neither killed nor listed as equivalent (see `mutmut show NAME`):"
        )
        for name in sorted(survivors):
            print("  ", name)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="report the last run without running")
    parser.add_argument(
        "--only", nargs="*", help="mutant name patterns to (re)run instead of the whole scope"
    )
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        help="report the verdicts of these trees' mutants/ merged in order (a later tree's verdict wins)",
    )
    args = parser.parse_args()
    seconds = None
    if not args.report:
        names = args.only or [p for module in SCOPE for p in patterns(module)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
        env.pop("PYTHONPATH", None)  # mutmut puts mutants/ first on the path itself
        mutmut = Path(sys.executable).with_name("mutmut")
        start = time.perf_counter()
        done = subprocess.run(
            ["nice", "-n", "10", str(mutmut), "run", "--max-children", str(args.max_children), *names],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            print(f"mutmut run failed ({done.returncode}):\n{done.stdout.strip()[-3000:]}")
            return done.returncode
    return report(seconds, args.merge)


if __name__ == "__main__":
    sys.exit(main())
