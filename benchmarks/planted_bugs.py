"""Planted bugs: would the tests catch 14 small, plausible bugs in the behaviours that matter? (issue #22)

Each bug is planted, one at a time, in a throw-away copy of the package (never in the working tree); the
test files that cover the behaviour are run on that copy, and the bug counts as caught when a test fails.
A baseline run without any bug must pass first, or the table means nothing.

    python benchmarks/planted_bugs.py [--only 1,5]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = "stratum_pipeline_tests/test_boundaries.py"


@dataclass(frozen=True)
class Bug:
    name: str
    path: str
    edits: tuple[tuple[str, str], ...]  # (text, replacement): each text must occur exactly once
    tests: tuple[str, ...]


def _t(*names: str) -> tuple[str, ...]:
    return (FAST, *(f"stratum_pipeline_tests/{n}.py" for n in names))


BUGS = [
    # the six the issue found missed
    Bug(
        "gate tolerance +0.02 instead of x1.02",
        "stratum_pipeline/modelops/gate.py",
        (('champion["mae"] * (1 + ROAS_MAE_TOLERANCE)', 'champion["mae"] + ROAS_MAE_TOLERANCE'),),
        _t("test_models_ml"),
    ),
    Bug(
        "negative revenue no longer quarantined",
        "stratum_pipeline/storage/extracts.py",
        (
            (
                '"conversions",\n                    "revenue",\n                    "daily_budget",',
                '"conversions",\n                    "daily_budget",',
            ),
        ),
        _t("test_validation"),
    ),
    Bug(
        "simulator draws the ROAS level per scenario",
        "stratum_pipeline/ml/simulator.py",
        (
            (
                "rng.normal(-(roas_sd**2) / 2, roas_sd, iterations))",
                "rng.normal(-(roas_sd**2) / 2, roas_sd, (len(multipliers), iterations)))",
            ),
            ("spend0 * level[None, :] * response", "spend0 * level * response"),
        ),
        _t("test_product_ml"),
    ),
    Bug(
        "fatigue critical threshold 85 -> 80",
        "stratum_pipeline/ml/fatigue.py",
        (('"critical": 85.0}', '"critical": 80.0}'),),
        _t("test_product_ml", "test_features"),
    ),
    Bug(
        "mask_url scheme case-sensitive",
        "stratum_pipeline/settings.py",
        ((r'rf"\1:{_MASK}@", str(url), flags=re.IGNORECASE)', r'rf"\1:{_MASK}@", str(url))'),),
        _t("test_settings"),
    ),
    Bug(
        "conformal interval adjustment dropped",
        "stratum_pipeline/ml/roas.py",
        (
            (
                "self.interval_adjustment_ = float(np.quantile(conformity, level))",
                "self.interval_adjustment_ = 0.0",
            ),
        ),
        _t("test_models_ml"),
    ),
    # the eight the issue found caught
    Bug(
        "gate comparison flipped",
        "stratum_pipeline/modelops/gate.py",
        (('if challenger["mae"] > limit:', 'if challenger["mae"] < limit:'),),
        _t("test_models_ml"),
    ),
    Bug(
        "an 8-day window for the 7-day features",
        "stratum_pipeline/ml/features.py",
        (
            (
                '_rolling_sums(df, "campaign_id", metrics, window)',
                '_rolling_sums(df, "campaign_id", metrics, window + (window == 7))',
            ),
        ),
        _t("test_features"),
    ),
    Bug(
        "cache key without the model version",
        "stratum_pipeline/serving/inference.py",
        (("{tenant}:{model_id}:{self.data_version(tenant)}", "{tenant}:{self.data_version(tenant)}"),),
        _t(),
    ),
    Bug(
        "partition write no longer deletes",
        "stratum_pipeline/storage/database.py",
        (("conn.execute(sa.delete(table).where(*scope))", "pass"),),
        _t(),
    ),
    Bug(
        "tenant rerun deletes other tenants' rows",
        "stratum_pipeline/storage/database.py",
        (("scope.append(table.c.tenant_id == tenant_id)", "pass"),),
        _t(),
    ),
    Bug(
        "tenant regex accepts ../",
        "stratum_pipeline/tenancy.py",
        ((r'r"^[a-z0-9][a-z0-9_-]{0,62}$"', r'r"^[a-z0-9.][a-z0-9_./-]{0,62}$"'),),
        _t("test_definitions"),
    ),
    Bug(
        "marginal ROAS over the wrong denominator",
        "stratum_pipeline/ml/simulator.py",
        (
            (
                "(revenue[k] - revenue[0]).mean() / extra_spend)",
                "(revenue[k] - revenue[0]).mean() / spend[k])",
            ),
        ),
        _t("test_product_ml"),
    ),
    Bug(
        "describe_url unmasked",
        "stratum_pipeline/storage/database.py",
        (("    return mask_url(url)\n", "    return url\n"),),
        _t(),
    ),
]


def _copy(dest: Path) -> None:
    for name in ("stratum_pipeline", "stratum_pipeline_tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _pytest(where: Path, tests: tuple[str, ...]) -> tuple[int, float, str]:
    env = {
        "PYTHONPATH": str(where),
        "PATH": "/usr/bin:/bin",
        "HOME": str(where),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *tests, "-x", "-q", "-p", "no:cacheprovider"],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
    )
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED ")]
    return (
        done.returncode,
        time.perf_counter() - start,
        failed[0][7:] if failed else done.stdout.strip()[-200:],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated bug numbers (1-14)")
    args = parser.parse_args()
    chosen = [int(i) for i in args.only.split(",")] if args.only else list(range(1, len(BUGS) + 1))
    with tempfile.TemporaryDirectory(prefix="planted-") as tmp:
        where = Path(tmp)
        _copy(where)
        tests = tuple(sorted({t for i in chosen for t in BUGS[i - 1].tests}))
        rc, seconds, tail = _pytest(where, tests)
        print(
            f"baseline (no bug): {'pass' if rc == 0 else 'FAIL'} in {seconds:.0f}s  [{' '.join(Path(t).stem for t in tests)}]"
        )
        if rc != 0:
            print(tail)
            return 1
        caught = 0
        print(f"{'#':>2}  {'planted bug':<44} {'caught':<7} {'time':>5}  first failing test")
        for i in chosen:
            bug = BUGS[i - 1]
            target = where / bug.path
            original = target.read_text()
            text = original
            for old, new in bug.edits:
                assert text.count(old) == 1, f"bug {i}: {old!r} occurs {text.count(old)} times in {bug.path}"
                text = text.replace(old, new)
            target.write_text(text)
            try:
                rc, seconds, tail = _pytest(where, bug.tests)
            finally:
                target.write_text(original)
            hit = rc == 1  # 1: tests failed; anything else (collection error, crash) is not a catch
            caught += hit
            print(
                f"{i:>2}  {bug.name:<44} {'yes' if hit else 'NO':<7} {seconds:>4.0f}s  {tail if hit else f'rc={rc}'}"
            )
        print(f"caught {caught} of {len(chosen)}")
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
