"""The Dagster UI in headless Chromium: the lineage from raw extracts to forecasts, and a model's MLflow run and metrics.

Uses Debian's chromium and chromium-driver (`.ci/run` installs them). Screenshots go to the test's tmp dir, and
with STRATUM_UPDATE_SCREENSHOTS=1 also to docs/screenshots/ (shown in the README).
"""

import os
import shutil
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
    screenshot = save_screenshot(browser, tmp_path, "partition_row_count.png")
    assert screenshot.stat().st_size > 20_000
