"""The package's layering, enforced: imports only go down.

    definitions, cli, k8s_definitions, compat, demo.run     entry points
    automation/                                             jobs, schedules, sensors, in-process runs
    assets/   checks/                                       thin Dagster assets; checks never import assets
    resources/                                              Dagster resources over storage/ and modelops/
    serving/   modelops/   storage/   demo/ (data)          no Dagster
    ml/                                                     pure domain code: no project imports beyond ml/
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stratum_pipeline"
NO_DAGSTER = ("ml", "storage", "modelops", "serving", "demo.generator", "demo.writer", "demo.anomalies",
              "demo.features", "settings", "tenancy", "alerts")
ABOVE = ("assets", "checks", "automation", "resources", "definitions", "cli", "k8s_definitions", "compat", "demo.run")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__") or "__init__"
        found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every stratum_pipeline module a file imports (at any depth, including inside functions), without the prefix."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    prefix = "stratum_pipeline."
    return {n[len(prefix):] for n in names if n.startswith(prefix)} | {n for n in names if n == "dagster"}


def _within(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


MODULES = _modules()


def test_the_layout_has_the_documented_folders():
    for folder in ("ml", "storage", "modelops", "serving", "resources", "assets", "checks", "automation", "demo"):
        assert (PACKAGE / folder / "__init__.py").exists(), folder
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "alerts.py", "cli.py", "definitions.py", "k8s_definitions.py", "partitions.py",
                     "settings.py", "tenancy.py"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, ("ml",))))
def test_ml_imports_only_ml(module):
    outside = {i for i in _imports(MODULES[module]) if i != "dagster" and not _within(i, ("ml",))}
    assert not outside and "dagster" not in _imports(MODULES[module]), f"ml.{module} imports {outside}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, NO_DAGSTER)))
def test_lower_layers_import_nothing_above_them(module):
    imports = _imports(MODULES[module])
    assert "dagster" not in imports, f"{module} imports dagster"
    upward = {i for i in imports if _within(i, ABOVE) or i == "partitions"}
    assert not upward, f"{module} imports {upward}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, ("checks",))))
def test_checks_never_import_assets(module):
    assert not {i for i in _imports(MODULES[module]) if _within(i, ("assets", "automation", "definitions"))}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, ("assets", "resources"))))
def test_assets_and_resources_do_not_import_entry_points(module):
    assert not {i for i in _imports(MODULES[module]) if _within(i, ("automation", "definitions", "cli", "demo.run"))}


def test_the_backend_path_loads_without_dagster():
    """The product backend imports the serving API, model operations and storage with dagster unimportable."""
    modules = sorted(f"stratum_pipeline.{m}" for m in MODULES if _within(m, NO_DAGSTER))
    script = (
        "import sys, importlib\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'dagster' or name.startswith(('dagster.', 'dagster_')):\n"
        "            raise ImportError(f'dagster is blocked: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "from stratum_pipeline.serving.inference import InferenceService\n"
        "print('ok', len(sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-2000:]
