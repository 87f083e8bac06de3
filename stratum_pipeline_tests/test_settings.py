"""Settings read and validated in one place; `stratum env` shows them without credentials."""

import os

import pytest

from stratum_pipeline.settings import Settings, SettingsError, mask_url

from .helpers import stratum_cli as stratum


def settings(tmp_path, **env):
    return Settings.from_env({k: str(v) for k, v in env.items()})


def test_the_seed_defaults_and_a_full_vertex_configuration(tmp_path):
    plain = settings(tmp_path)
    assert plain.ml_provider == "local" and plain.models_path is None and plain.vertex is None
    credentials = tmp_path / "sa.json"
    credentials.write_text('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----SECRET"}')
    full = settings(
        tmp_path,
        ML_PROVIDER="Vertex",
        ML_MODELS_PATH=tmp_path,
        GOOGLE_CLOUD_PROJECT="acme-prod",
        VERTEX_AI_ENDPOINT="1234567890",
        VERTEX_AI_LOCATION="europe-west4",
        GOOGLE_APPLICATION_CREDENTIALS=credentials,
        ML_VERTEX_FALLBACK="local",
        STRATUM_MLFLOW_TRACKING_URI="http://mlflow:5000",
        STRATUM_REDIS_URL="redis://:hunter2@cache:6379/0",
        STRATUM_SOURCE_URL="postgresql+psycopg2://app:s3cret@db:5432/app",
    )
    assert full.ml_provider == "vertex" and full.models_path == tmp_path.resolve()
    assert full.vertex.resource_name == "projects/acme-prod/locations/europe-west4/endpoints/1234567890"
    assert (
        full.vertex.api_endpoint == "europe-west4-aiplatform.googleapis.com"
        and full.vertex_fallback == "local"
    )
    shown = "\n".join(f"{k}={v}" for k, v in full.describe().items())
    assert "s3cret" not in shown and "hunter2" not in shown and "SECRET" not in shown
    assert "postgresql+psycopg2://app:***@db:5432/app" in shown and str(credentials) in shown
    by_name = settings(
        tmp_path, ML_PROVIDER="vertex", VERTEX_AI_ENDPOINT="projects/p1/locations/us-east1/endpoints/9"
    )
    assert (by_name.google_cloud_project, by_name.vertex.location) == ("p1", "us-east1")


@pytest.mark.parametrize(
    "env, message",
    [
        ({"ML_PROVIDER": "sagemaker"}, "ML_PROVIDER='sagemaker' is unknown: use local or vertex"),
        ({"ML_MODELS_PATH": "{tmp}/missing"}, "ML_MODELS_PATH='{tmp}/missing' does not exist"),
        ({"ML_MODELS_PATH": "{tmp}/file.txt"}, "ML_MODELS_PATH='{tmp}/file.txt' is not a folder"),
        (
            {"ML_PROVIDER": "vertex", "VERTEX_AI_ENDPOINT": "42"},
            "ML_PROVIDER=vertex needs GOOGLE_CLOUD_PROJECT",
        ),
        (
            {"ML_PROVIDER": "vertex", "GOOGLE_CLOUD_PROJECT": "p"},
            "ML_PROVIDER=vertex needs VERTEX_AI_ENDPOINT",
        ),
        (
            {"ML_PROVIDER": "vertex", "GOOGLE_CLOUD_PROJECT": "p", "VERTEX_AI_ENDPOINT": "a b"},
            "is neither an endpoint id",
        ),
        (
            {
                "ML_PROVIDER": "vertex",
                "GOOGLE_CLOUD_PROJECT": "p",
                "VERTEX_AI_ENDPOINT": "projects/q/locations/l/endpoints/1",
            },
            "names project 'q' but GOOGLE_CLOUD_PROJECT='p'",
        ),
        (
            {
                "ML_PROVIDER": "vertex",
                "GOOGLE_CLOUD_PROJECT": "p",
                "VERTEX_AI_ENDPOINT": "1",
                "VERTEX_AI_API_ENDPOINT": "http://evil.example:80",
            },
            "plain http is only for a stand-in server on loopback",
        ),
        (
            {"GOOGLE_APPLICATION_CREDENTIALS": "{tmp}/nokey.json"},
            "GOOGLE_APPLICATION_CREDENTIALS='{tmp}/nokey.json' does not exist",
        ),
        ({"ML_VERTEX_FALLBACK": "retry"}, "ML_VERTEX_FALLBACK='retry' is unknown"),
        (
            {"STRATUM_WAREHOUSE_URL": "mysql://u:pw@h/db"},
            "STRATUM_WAREHOUSE_URL='mysql://u:***@h/db' is not a sqlite or postgresql URL",
        ),
        ({"STRATUM_REDIS_URL": "127.0.0.1:6379"}, "STRATUM_REDIS_URL='127.0.0.1:6379' is not a redis"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(tmp_path, env, message):
    (tmp_path / "file.txt").write_text("x")
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()}
    with pytest.raises(SettingsError) as error:
        Settings.from_env(env)
    text = str(error.value)
    assert message.replace("{tmp}", str(tmp_path)) in text and "\n" not in text
    assert "pw@" not in text


def test_mask_url_hides_passwords_only():
    assert mask_url("postgresql+psycopg2://user:pa:ss@host/db") == "postgresql+psycopg2://user:***@host/db"
    assert mask_url("redis://:secret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    # The password runs to the last '@' of the authority, '/' and '@' included, as URL parsers read it.
    assert mask_url("postgresql://u:pa/ss@host/db") == "postgresql://u:***@host/db"
    assert (
        mask_url("postgresql://u:p@ss@host/db?application_name=a@b")
        == "postgresql://u:***@host/db?application_name=a@b"
    )
    assert mask_url("http://user:tok/en@mlflow:5000") == "http://user:***@mlflow:5000"
    assert mask_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_stratum_env_exports_only_its_defaults_and_masks_what_was_set(tmp_path):
    done = stratum(
        tmp_path / "home",
        "env",
        STRATUM_WAREHOUSE_URL="postgresql+psycopg2://postgres:topsecret@127.0.0.1/wh",
    )
    assert done.returncode == 0, done.stderr
    assert "topsecret" not in done.stdout
    assert f"export ML_MODELS_PATH={tmp_path / 'home' / 'models'}" in done.stdout
    assert "export STRATUM_WAREHOUSE_URL" not in done.stdout  # already set: not repeated
    assert "#   STRATUM_WAREHOUSE_URL=postgresql+psycopg2://postgres:***@127.0.0.1/wh" in done.stdout
    assert (tmp_path / "home" / "models").is_dir()

    bad = stratum(tmp_path / "home", "env", ML_PROVIDER="vertex", GOOGLE_CLOUD_PROJECT="p")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == (
        "stratum: ML_PROVIDER=vertex needs VERTEX_AI_ENDPOINT "
        "(an endpoint id or projects/P/locations/L/endpoints/E)"
    )


def test_the_daily_partitions_start_is_a_checked_day():
    from stratum_pipeline.settings import partitions_start

    assert partitions_start({}) == "2024-01-01"
    assert partitions_start({"STRATUM_PARTITIONS_START": " 2026-04-17 "}) == "2026-04-17"
    for bad in ("yesterday", "2026-13-01", "20260417", "1999-12-31", "2026-04-17T00:00"):
        with pytest.raises(SettingsError) as raised:
            partitions_start({"STRATUM_PARTITIONS_START": bad})
        message = str(raised.value)
        assert message.startswith("STRATUM_PARTITIONS_START=") and "\n" not in message, bad


def test_the_demo_records_its_first_day_as_the_embedded_partitions_start(tmp_path, monkeypatch):
    from datetime import date

    from stratum_pipeline.cli.embedded import embedded_environment, record_partitions_start

    # recorded by monkeypatch (a plain delenv of an unset variable is not), so the value set below is undone
    monkeypatch.setenv("STRATUM_PARTITIONS_START", "")
    home = tmp_path / ".stratum"
    assert "STRATUM_PARTITIONS_START" not in embedded_environment(home)  # before a demo: the default
    record_partitions_start(home, date(2026, 4, 17))
    assert embedded_environment(home)["STRATUM_PARTITIONS_START"] == "2026-04-17"
    assert os.environ["STRATUM_PARTITIONS_START"] == "2026-04-17"  # for this process's definitions
    record_partitions_start(home, date(2026, 5, 2))  # a later demo moves it
    assert embedded_environment(home)["STRATUM_PARTITIONS_START"] == "2026-05-02"
