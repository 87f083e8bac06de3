"""The package's layering, enforced: imports only go down.

definitions, cli, k8s_definitions, celery_definitions,
compat, demo.run                                        entry points
automation/                                             jobs, schedules, sensors, in-process runs
assets/   checks/                                       thin Dagster assets; checks never import assets
resources/                                              Dagster resources over storage/ and modelops/
serving/   modelops/   storage/   demo/ (data)          no Dagster
ml/                                                     pure domain code: no project imports beyond ml/
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stratum_pipeline"
NO_DAGSTER = (
    "ml",
    "storage",
    "modelops",
    "serving",
    "demo.generator",
    "demo.writer",
    "demo.anomalies",
    "demo.features",
    "settings",
    "tenancy",
    "alerts",
)
ABOVE = (
    "assets",
    "checks",
    "automation",
    "resources",
    "definitions",
    "cli",
    "k8s_definitions",
    "celery_definitions",
    "embedded_definitions",
    "compat",
    "demo.run",
)


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
    return {n[len(prefix) :] for n in names if n.startswith(prefix)} | {n for n in names if n == "dagster"}


def _within(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


MODULES = _modules()


def test_the_layout_has_the_documented_folders():
    for folder in (
        "ml",
        "storage",
        "modelops",
        "serving",
        "resources",
        "assets",
        "checks",
        "automation",
        "demo",
        "cli",
    ):
        assert (PACKAGE / folder / "__init__.py").exists(), folder
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == [
        "__init__.py",
        "alerts.py",
        "celery_definitions.py",
        "definitions.py",
        "embedded_definitions.py",
        "k8s_definitions.py",
        "partitions.py",
        "settings.py",
        "tenancy.py",
    ]


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
    assert not {
        i for i in _imports(MODULES[module]) if _within(i, ("automation", "definitions", "cli", "demo.run"))
    }


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


def test_the_root_dagster_yaml_is_the_embedded_instance_and_dagster_dev_opens_stratums_instance(
    tmp_path, monkeypatch
):
    """Plain `dagster dev` in the root (no DAGSTER_HOME) configures its instance from ./dagster.yaml; its runs
    land in .stratum/dagster_home, where `stratum ui` (DAGSTER_HOME) finds them."""
    import shutil

    import dagster as dg
    import yaml
    from dagster._core.instance.ref import InstanceRef

    from stratum_pipeline.cli import apply_environment, embedded_instance_yaml

    root_yaml = PACKAGE.parent / "dagster.yaml"
    assert yaml.safe_load(root_yaml.read_text()) == yaml.safe_load(
        embedded_instance_yaml(".stratum/dagster_home")
    )
    shutil.copy(root_yaml, tmp_path / "dagster.yaml")
    monkeypatch.chdir(tmp_path)
    for key in (
        "DAGSTER_HOME",
        "STRATUM_SOURCE_URL",
        "STRATUM_WAREHOUSE_URL",
        "STRATUM_MLFLOW_TRACKING_URI",
        "ML_MODELS_PATH",
    ):
        monkeypatch.setenv(key, "recorded")  # so that teardown restores what apply_environment sets below
        monkeypatch.delenv(key)
    # what `dagster dev` does without DAGSTER_HOME: a temporary home, configured from the current folder
    with dg.DagsterInstance.from_ref(
        InstanceRef.from_dir(str(tmp_path / ".tmp_home"), config_dir=str(tmp_path))
    ) as dev:
        run = dev.create_run_for_job(
            dg.GraphDefinition("hello").to_job(), run_id="0" * 8 + "-0000-0000-0000-" + "0" * 12
        )
    assert (tmp_path / ".stratum" / "dagster_home" / "history" / "runs.db").exists()
    env = apply_environment(tmp_path / ".stratum")  # what `stratum ui` sets up
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(env["DAGSTER_HOME"])) as ui:
        assert ui.get_run_by_id(run.run_id) is not None


@pytest.mark.slow
def test_plain_dagster_dev_in_the_root_loads_the_embedded_default_without_variables(tmp_path):
    """The root's workspace.yaml loads `embedded_definitions`, whose resources are the embedded default's files
    under the current folder: with no STRATUM_* variable set, a run materialises and writes there."""
    import yaml

    root = PACKAGE.parent
    workspace = yaml.safe_load((root / "workspace.yaml").read_text())
    assert (
        workspace["load_from"][0]["python_module"]["module_name"] == "stratum_pipeline.embedded_definitions"
    )
    import tomllib

    # plain `dagster dev` reads pyproject's [tool.dagster] before any workspace.yaml
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["dagster"]
    assert tool["module_name"] == "stratum_pipeline.embedded_definitions"
    deployment = yaml.safe_load((root / "deploy" / "workspace.yaml").read_text())
    assert deployment["load_from"][0]["python_module"]["module_name"] == "stratum_pipeline.definitions"
    script = (
        "import dagster as dg, sqlalchemy as sa\n"
        "from stratum_pipeline.embedded_definitions import defs\n"
        "result = defs.resolve_job_def('model_leaderboard_job').execute_in_process(\n"
        "    instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)\n"
        "assert result.success\n"
        "with sa.create_engine('sqlite:///.stratum/warehouse.db').connect() as conn:\n"
        "    print('rows', conn.execute(sa.text('select count(*) from model_leaderboard')).scalar())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATUM_", "DAGSTER_", "ML_"))}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "rows 3" in done.stdout, done.stderr[-2000:]
    assert (tmp_path / "mlruns" / "mlflow.db").exists()  # the registry is the embedded one too
