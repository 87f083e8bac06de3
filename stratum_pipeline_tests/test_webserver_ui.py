"""The Dagster UI in headless Chromium: the lineage from raw extracts to forecasts, and a model's MLflow run and metrics.

Uses Debian's chromium and chromium-driver (`.ci/run` installs them). Screenshots go to the test's tmp dir, and
with STRATUM_UPDATE_SCREENSHOTS=1 also to docs/screenshots/ (shown in the README).
"""

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.resources import ModelRegistry

pytestmark = [pytest.mark.slow, pytest.mark.browser]  # a dagster-webserver and headless Chromium

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
WINDOW = {"width": 1600, "height": 1000}
PATH_TO_FORECASTS = ["raw_campaign_daily", "campaign_features", "roas_model", "daily_roas_forecasts"]
EDGES_QUERY = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {message} (.ci/run installs them)")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW['width']},{WINDOW['height']}",
    ):
        options.add_argument(argument)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "SE_OFFLINE", "true"
        )  # the system browser and driver only: selenium-manager downloads nothing
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        # The viewport itself 1600x1000 (--window-size counts the window's frame).
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {**WINDOW, "deviceScaleFactor": 1, "mobile": False}
        )
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def ui(dagster_webserver):
    """The webserver, with the UI's first-visit "Join the Dagster community" dialog marked as seen."""
    assert dagster_webserver.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True
    return dagster_webserver


def open_page(driver, url: str, ready_xpath: str, timeout: float = 60):
    """Open `url` and wait until `ready_xpath` is on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, timeout).until(EC.presence_of_element_located((By.XPATH, ready_xpath)))


def save_screenshot(driver, tmp_path: Path, name: str) -> Path:
    from selenium.webdriver.common.by import By

    assert not driver.find_elements(By.XPATH, "//*[text()='Join the Dagster community']"), (
        "a dialog covers the page"
    )
    path = tmp_path / name
    assert driver.save_screenshot(str(path)), f"screenshot {name} not written"
    if os.environ.get("STRATUM_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / name)
    return path


def label_shows(label: str, name: str) -> bool:
    """A node label is the asset name, or the name shortened in the middle with '…' to fit the node."""
    if label == name:
        return True
    head, sep, tail = label.partition("…")
    return bool(sep) and len(head) + len(tail) >= 6 and name.startswith(head) and name.endswith(tail)


def test_asset_graph_shows_the_path_from_raw_extracts_to_forecasts(browser, ui, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    nodes = ui.graphql(EDGES_QUERY)["assetNodes"]
    edges = {
        (dep["path"][-1], node["assetKey"]["path"][-1]) for node in nodes for dep in node["dependencyKeys"]
    }
    assert set(zip(PATH_TO_FORECASTS, PATH_TO_FORECASTS[1:])) <= edges

    open_page(
        browser,
        f"{ui.url}/assets/daily_roas_forecasts?view=lineage&lineageScope=upstream&lineageDepth=3",
        "//*[contains(@class, 'AssetNode_assetName') and text()='raw_campaign_daily']",
    )
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "[class*='AssetNode_assetName']")]
    missing = [name for name in PATH_TO_FORECASTS if not any(label_shows(label, name) for label in labels)]
    assert not missing, f"asset graph lacks nodes {missing}; it shows {labels}"
    # The models' materialisation status loads after the graph: roas_model (every tenant partition trained) turns green.
    model_box = (
        "//*[contains(@class, 'AssetNode_assetName') and text()='roas_model']"
        "/ancestor::*[contains(@class, 'AssetNodeBox')][1]"
    )
    WebDriverWait(browser, 30).until(
        lambda d: "green" in (d.find_element(By.XPATH, model_box).get_attribute("style") or "")
    )
    screenshot = save_screenshot(browser, tmp_path, "asset_lineage.png")
    assert screenshot.stat().st_size > 20_000


def test_model_asset_page_shows_its_mlflow_run_and_metrics(browser, ui, tmp_path):
    from selenium.webdriver.common.by import By

    registry = ModelRegistry(tracking_uri=ui.project.env["STRATUM_MLFLOW_TRACKING_URI"])
    name = model_name("roas", "big")
    version = registry.client().get_model_version(name, registry.champion_version(name))
    run = registry.client().get_run(version.run_id)

    open_page(
        browser,
        f"{ui.url}/assets/roas_model?view=partitions&partition=big",
        "//td[normalize-space()='holdout_mae']",
    )
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "mlflow_run" in page and f"runs/{run.info.run_id}" in page.replace("\n", "")
    for metric in ("mae", "r2", "coverage_80"):
        value = run.data.metrics[metric]  # the run keeps every digit; the UI shows 4 significant ones
        assert f"holdout_{metric}" in page and repr(float(f"{value:.4g}")) in page, metric
        assert repr(value) == repr(float(f"{value:.4g}")) or repr(value) not in page, metric
    assert "stratum-roas-big" in page and "promote" in page
    screenshot = save_screenshot(browser, tmp_path, "model_asset_page.png")
    assert screenshot.stat().st_size > 20_000


CHECK_STATUSES_QUERY = """query ($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  assetChecksOrError { ... on AssetChecks { checks { name partitionStatuses {
    ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } } } } } } } } }"""
ROW_COUNTS_QUERY = """query ($path: [String!]!, $partitions: [String!]) { assetOrError(assetKey: {path: $path}) {
  ... on Asset { assetMaterializations(partitions: $partitions) { partition metadataEntries {
    label ... on IntMetadataEntry { intValue } } } } } }"""


def test_a_ranged_runs_partitions_show_their_own_check_status_and_row_count(browser, ui, tmp_path):
    """The project's ingest is ONE ranged run over every day: each day's partition has its own passed
    raw_contract (no "Skipped") and its own row count, equal to the table's rows of that day."""
    import pandas as pd
    import sqlalchemy as sa
    from selenium.webdriver.common.by import By

    from stratum_pipeline.storage.database import engine_for

    project = ui.project
    node = ui.graphql(CHECK_STATUSES_QUERY, {"path": ["raw_sessions"]})["assetNodeOrError"]
    checks = {c["name"]: c for c in node["assetChecksOrError"]["checks"]}
    ranges = checks["raw_contract"]["partitionStatuses"]["ranges"]
    assert [r["status"] for r in ranges] == ["SUCCEEDED"], ranges  # one range: every checked day passed
    assert ranges[0]["endKey"] == project.day.isoformat()

    days = [(project.day - pd.Timedelta(days=n)).isoformat() for n in (2, 1, 0)]
    with engine_for(project.env["STRATUM_WAREHOUSE_URL"]).connect() as conn:
        rows = pd.read_sql(sa.text("SELECT date FROM raw_campaign_daily"), conn)
    per_day = pd.to_datetime(rows["date"]).dt.date.astype(str).value_counts()
    asset = ui.graphql(ROW_COUNTS_QUERY, {"path": ["raw_campaign_daily"], "partitions": days})["assetOrError"]
    counts = {
        m["partition"]: next(e["intValue"] for e in m["metadataEntries"] if e["label"] == "dagster/row_count")
        for m in asset["assetMaterializations"]
    }
    assert counts == {day: int(per_day[day]) for day in days}
    assert sum(counts.values()) < len(rows)  # a day's rows, not the ranged run's total

    open_page(
        browser,
        f"{ui.url}/assets/raw_campaign_daily?view=partitions&partition={days[-1]}",
        "//td[normalize-space()='dagster/row_count']",
    )
    page = browser.find_element(By.TAG_NAME, "body").text
    assert f"{per_day[days[-1]]:,}" in page or str(per_day[days[-1]]) in page
    # the partitions start at the data's first day (STRATUM_PARTITIONS_START): none before its last day is missing;
    # only a day that has ended since the project was prepared (a run across midnight UTC) can be
    missing = max(0, (datetime.now(timezone.utc).date() - timedelta(days=1) - project.day).days)
    assert f"Materialized ({len(per_day)})" in page and f"Missing ({missing})" in page, page[:600]
    screenshot = save_screenshot(browser, tmp_path, "partition_row_count.png")
    assert screenshot.stat().st_size > 20_000


@pytest.fixture(scope="module")
def mlflow_ui(ui, tmp_path_factory):
    """`mlflow ui` on the project's MLflow store, at the URL its trainings linked their plots to."""
    from .services import VENV_BIN, Processes, wait_for_http

    project = ui.project
    processes = Processes(tmp_path_factory.mktemp("mlflow_ui"))
    url = project.env["STRATUM_MLFLOW_UI_URL"]
    process = processes.start(
        "mlflow",
        [
            str(VENV_BIN / "mlflow"),
            "ui",
            "--backend-store-uri",
            project.env["STRATUM_MLFLOW_TRACKING_URI"],
            "--host",
            "127.0.0.1",
            "--port",
            str(project.mlflow_ui_port),
        ],
        {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    try:
        wait_for_http(f"{url}/health", process, 240, lambda: processes.log("mlflow"))
        yield url
    finally:
        processes.stop_all()


def test_the_leaderboard_page_shows_every_tenant_and_what_serves_it(browser, ui, tmp_path):
    import pandas as pd
    import sqlalchemy as sa
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from stratum_pipeline.storage.database import engine_for

    with engine_for(ui.project.warehouse_url).connect() as conn:
        table = pd.read_sql(sa.text("SELECT tenant_id, model_type, served_by FROM model_leaderboard"), conn)
    tenants = set(ui.project.instance.get_dynamic_partitions("tenants"))
    assert tenants <= set(table["tenant_id"]) and len(tenants) >= 2
    served = table.set_index(["tenant_id", "model_type"])["served_by"]
    assert (
        served[("big", "roas")] == "own" and served[("small", "roas")] == "default"
    )  # "small" is below the minimum

    open_page(browser, f"{ui.url}/assets/model_leaderboard", "//td[normalize-space()='leaderboard']")
    # the metadata row's value is a Markdown table, opened with its "[Show Markdown]" button
    button = browser.find_element(
        By.XPATH, "//tr[td[normalize-space()='leaderboard']]//a[normalize-space()='[Show Markdown]']"
    )
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()
    dialog_cells = "//*[contains(@class, 'bp5-dialog')]//table//td"
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.XPATH, dialog_cells))
    cells = [c.text.strip() for c in browser.find_elements(By.XPATH, dialog_cells)]
    for tenant in tenants:  # each tenant is a row of the leaderboard's table, not only a word on the page
        assert tenant in cells, (tenant, cells[:40])
    assert {"default", "own", "roas", "conversion", "anomaly_detector"} <= set(cells)
    screenshot = save_screenshot(browser, tmp_path, "model_leaderboard.png")
    assert screenshot.stat().st_size > 20_000


def test_a_model_asset_shows_its_holdout_plot_served_by_the_mlflow_ui(browser, ui, mlflow_ui, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    open_page(
        browser,
        f"{ui.url}/assets/roas_model?view=partitions&partition=big",
        "//img[contains(@src, 'get-artifact')]",
    )
    image = browser.find_element(By.XPATH, "//img[contains(@src, 'get-artifact')]")
    assert image.get_attribute("src").startswith(f"{mlflow_ui}/get-artifact?path=")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", image)
    # the picture itself arrived and decoded (a broken link leaves naturalWidth at 0)
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) or 0
    )
    assert browser.execute_script("return arguments[0].naturalWidth", image) >= 400
    assert "holdout of stratum-roas-big" in (image.get_attribute("alt") or "")
    screenshot = save_screenshot(browser, tmp_path, "model_holdout_plot.png")
    assert screenshot.stat().st_size > 20_000


LAUNCH_RUN = """mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }"""


def _wait_for(what: str, probe, timeout: float, describe):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(2)
    raise TimeoutError(f"{what} not within {timeout:.0f} s\n{describe()}")


def test_plain_dagster_dev_opens_the_embedded_state_and_its_daemon_republishes_a_retrained_model_file(
    browser, ui, tmp_path
):
    """`dagster dev` with no option and no variable, in a folder holding the repository's dagster.yaml and
    pyproject.toml and an embedded state (./.stratum, ./mlruns): the catalog lists the materialised assets; a
    retrain launched from it succeeds; and its daemon's model_automation sensor (running by default) then
    republishes the tenant's model file with the new champion, with no one switching anything on."""
    import dagster as dg
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from stratum_pipeline.modelops.publishing import model_filename, read_manifest

    from .helpers import CLEARED_PREFIXES
    from .model_data import RUN_CONFIG
    from .services import VENV_BIN, Processes, free_port, wait_for_http
    from .webserver import LOCATION_QUERY, graphql

    project = ui.project
    repository = Path(__file__).resolve().parents[1]
    for name in ("dagster.yaml", "pyproject.toml"):
        shutil.copyfile(repository / name, project.root / name)
    registry = ModelRegistry(tracking_uri=project.env["STRATUM_MLFLOW_TRACKING_URI"])
    name = model_name("roas", "big")
    before = registry.champion_version(name)
    model_file = Path(project.env["ML_MODELS_PATH"]) / model_filename("roas", "big")
    assert str(read_manifest(model_file)["version"]) == str(before)  # published by the project's setup

    port = free_port()
    processes = Processes(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED_PREFIXES)}
    dev = processes.start(
        "dagster_dev",
        [str(VENV_BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)],
        env,
        cwd=project.root,
    )

    def describe():
        return processes.log("dagster_dev")

    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info", dev, 240, describe)
        url = f"http://127.0.0.1:{port}"
        location = _wait_for(
            "the code location",
            lambda: [
                e
                for e in graphql(url, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
                if (e.get("locationOrLoadError") or {}).get("__typename") == "RepositoryLocation"
            ],
            240,
            describe,
        )[0]["name"]
        assert location == "stratum_pipeline"  # pyproject's [tool.dagster]: the embedded definitions

        # the embedded instance of the repository's dagster.yaml: the project's materialisations are there
        for asset in PATH_TO_FORECASTS:
            latest = graphql(
                url,
                "query ($path: [String!]!) { assetOrError(assetKey: {path: $path}) { ... on Asset { "
                "assetMaterializations(limit: 1) { runId } } } }",
                {"path": [asset]},
            )["assetOrError"]["assetMaterializations"]
            assert latest and project.instance.get_run_by_id(latest[0]["runId"]) is not None, asset
        assert graphql(url, "mutation { setNuxSeen }")["setNuxSeen"] is True
        open_page(browser, f"{url}/assets", "//a[contains(@href, '/assets/daily_roas_forecasts')]")
        WebDriverWait(browser, 120).until(  # every status shown (materialised partitions counted)
            lambda d: "Loading" not in d.find_element(By.TAG_NAME, "body").text
        )
        page = browser.find_element(By.TAG_NAME, "body").text  # the catalog's first rows (a virtual list)
        assert "campaign_features" in page and "daily_roas_forecasts" in page
        save_screenshot(browser, tmp_path, "dagster_dev_catalog.png")

        instance = project.instance

        def latest_file_materialization():
            return instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("roas_model_file"), asset_partitions=["big"]),
                limit=1,
            ).records

        published_before = latest_file_materialization()[0].storage_id  # the project's own publication
        launched = graphql(
            url,
            LAUNCH_RUN,
            {
                "params": {
                    "selector": {
                        "repositoryLocationName": location,
                        "repositoryName": "__repository__",
                        "jobName": "train_tenant_models_job",
                    },
                    "runConfigData": {
                        "ops": {m: {"config": RUN_CONFIG} for m in ("roas_model", "conversion_model")}
                    },
                    "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "big"}]},
                }
            },
        )["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        finished = _wait_for(
            "the retrain",
            lambda: (run := instance.get_run_by_id(run_id)) and run.is_finished and run,
            600,
            describe,
        )
        assert finished.status == dg.DagsterRunStatus.SUCCESS, describe()
        after = registry.champion_version(name)
        assert int(after) > int(before)  # same data, same settings: the gate promotes the retrained version

        def republished():
            records = latest_file_materialization()
            if not records or records[0].storage_id <= published_before:
                return None
            return instance.get_run_by_id(records[0].run_id)

        publisher = _wait_for("the model file's republication by the daemon", republished, 420, describe)
        print("publisher tags", dict(publisher.tags))
        assert publisher.tags.get("dagster/sensor_name") == "model_automation", dict(publisher.tags)
        publisher = _wait_for(
            "the publishing run's end",
            lambda: (run := instance.get_run_by_id(publisher.run_id)).is_finished and run,
            120,
            describe,
        )
        assert publisher.status == dg.DagsterRunStatus.SUCCESS, describe()
        manifest = _wait_for("the new manifest", lambda: read_manifest(model_file), 60, describe)
        assert str(manifest["version"]) == str(after)
    finally:
        processes.stop_all()
