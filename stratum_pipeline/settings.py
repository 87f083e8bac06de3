"""The environment, read and validated in one place: the seed backend's settings and this project's own.

`Settings.from_env()` reads every variable once and raises `SettingsError` with one line naming the
variable and what is wrong (unknown provider, missing or unwritable models path, vertex without
project or endpoint, a URL of the wrong kind). Nothing here runs at import time: resources still
take their values through `dg.EnvVar` at run time and call the `check_*` helpers below before use.
`describe()` is the printable form: passwords in URLs are masked and credential files are named,
never read into the output.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

PROVIDERS = ("local", "vertex")
VERTEX_FALLBACKS = ("none", "local")
DEFAULT_VERTEX_LOCATION = "us-central1"
_ENDPOINT_NAME = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<location>[a-z0-9-]+)/endpoints/(?P<endpoint>[^/]+)$"
)
_ENDPOINT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_SQL_SCHEMES = ("sqlite", "postgresql")
_MLFLOW_SCHEMES = ("sqlite", "postgresql", "http", "https", "databricks", "file")


class Env:
    """The names of the environment variables this project reads: one table, used by the settings, the CLI,
    the resources (`dg.EnvVar`) and serving."""

    SOURCE_URL = "STRATUM_SOURCE_URL"
    WAREHOUSE_URL = "STRATUM_WAREHOUSE_URL"
    MLFLOW_TRACKING_URI = "STRATUM_MLFLOW_TRACKING_URI"
    MLFLOW_UI_URL = "STRATUM_MLFLOW_UI_URL"
    TARGET_ROAS = "STRATUM_TARGET_ROAS"
    CELERY_BROKER_URL = "STRATUM_CELERY_BROKER_URL"
    CELERY_BACKEND_URL = "STRATUM_CELERY_BACKEND_URL"
    MODELS_PATH = "ML_MODELS_PATH"
    DAGSTER_HOME = "DAGSTER_HOME"
    REDIS_URL = "STRATUM_REDIS_URL"
    SEED_REDIS_URL = "REDIS_URL"
    DAGSTER_PG_URL = "STRATUM_DAGSTER_PG_URL"
    DAGSTER_GRAPHQL_URL = "STRATUM_DAGSTER_GRAPHQL_URL"
    ML_PROVIDER = "ML_PROVIDER"
    VERTEX_FALLBACK = "ML_VERTEX_FALLBACK"
    GOOGLE_CLOUD_PROJECT = "GOOGLE_CLOUD_PROJECT"
    VERTEX_AI_ENDPOINT = "VERTEX_AI_ENDPOINT"
    VERTEX_AI_LOCATION = "VERTEX_AI_LOCATION"
    VERTEX_AI_API_ENDPOINT = "VERTEX_AI_API_ENDPOINT"
    VERTEX_AI_TIMEOUT_SECONDS = "VERTEX_AI_TIMEOUT_SECONDS"
    PARTITIONS_START = "STRATUM_PARTITIONS_START"
    FIT_WORKERS = "STRATUM_FIT_WORKERS"


# What each variable means (`stratum env` and the README's configuration table say the same).
VARIABLES = {
    Env.SOURCE_URL: "the product backend's database, read by the raw extracts (SQLAlchemy URL)",
    Env.WAREHOUSE_URL: "the tables the pipeline writes and the product reads (SQLAlchemy URL)",
    Env.MLFLOW_TRACKING_URI: "MLflow runs and model registry (sqlite:/// or a server)",
    Env.TARGET_ROAS: "the ROAS each tenant's budget advice aims at: tenant=2.5,*=1.5 (default 1.0, breakeven)",
    Env.CELERY_BROKER_URL: "the Celery deployment's broker (default amqp://guest:guest@127.0.0.1:5672//)",
    Env.CELERY_BACKEND_URL: "the Celery deployment's result backend (default rpc://, over the broker)",
    Env.MLFLOW_UI_URL: "where an MLflow UI serves a local store (stratum ui starts one): the model links point there",
    Env.MODELS_PATH: "the folder of the .joblib model files the seed backend loads",
    Env.DAGSTER_HOME: "the Dagster instance folder (its dagster.yaml)",
    Env.REDIS_URL: "the prediction cache (redis://); unset: an in-process cache",
    Env.SEED_REDIS_URL: "the seed backend's name for the prediction cache, read when STRATUM_REDIS_URL is unset",
    Env.DAGSTER_PG_URL: "the Dagster instance's PostgreSQL (deploy/dagster.yaml)",
    Env.DAGSTER_GRAPHQL_URL: "the webserver the Celery-compatible task functions submit runs to",
    Env.ML_PROVIDER: "local (this project's models) or vertex (a Vertex AI endpoint)",
    Env.VERTEX_FALLBACK: "none, or local: serve the local models when Vertex AI fails",
    Env.GOOGLE_CLOUD_PROJECT: "the Vertex AI endpoint's project",
    Env.VERTEX_AI_ENDPOINT: "the Vertex AI endpoint id or full resource name",
    Env.VERTEX_AI_LOCATION: "the Vertex AI region (default us-central1)",
    Env.VERTEX_AI_API_ENDPOINT: "another Vertex AI API host (a stand-in server in tests)",
    Env.VERTEX_AI_TIMEOUT_SECONDS: "the Vertex AI request timeout (default 10)",
    Env.PARTITIONS_START: "the first day of the daily partitions, YYYY-MM-DD (default 2024-01-01; the demo sets its own)",
    Env.FIT_WORKERS: "processes a daily response-curve run fits tenants in (default: 2, or 1 on one core)",
}


class SettingsError(ValueError):
    """A bad setting: the message is one line naming the variable."""


DEFAULT_PARTITIONS_START = "2024-01-01"


def partitions_start(env: Mapping[str, str] | None = None) -> str:
    """The first day of the daily partitions (STRATUM_PARTITIONS_START, ISO date), default 2024-01-01.

    The one setting read when the definitions load: Dagster fixes a partitions definition then. Every process
    of a deployment (webserver, daemon, run workers) must see the same value."""
    env = os.environ if env is None else env
    value = (env.get(Env.PARTITIONS_START) or "").strip()
    if not value:
        return DEFAULT_PARTITIONS_START
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise SettingsError(
            f"{Env.PARTITIONS_START}={value[:40]!r} is not a date: use YYYY-MM-DD, e.g. {DEFAULT_PARTITIONS_START}"
        ) from None
    if len(value) != 10 or day.year < 2000:
        raise SettingsError(f"{Env.PARTITIONS_START}={value[:40]!r}: use a YYYY-MM-DD day from 2000 on")
    return day.isoformat()


def fit_workers(env: Mapping[str, str] | None = None) -> int:
    """How many processes `campaign_response_curves` spreads its tenants' fits over (STRATUM_FIT_WORKERS, a
    whole number from 1; default 2, or 1 on a single core). The fits are seeded per tenant and day: the same
    rows for any value."""
    env = os.environ if env is None else env
    value = (env.get(Env.FIT_WORKERS) or "").strip()
    if not value:
        return min(2, os.cpu_count() or 1)
    if not value.isdigit() or int(value) < 1:
        raise SettingsError(
            f"{Env.FIT_WORKERS}={value[:40]!r}: use a whole number of processes from 1, e.g. 2"
        )
    return int(value)


# Query parameters whose value is a secret (psycopg's password/sslpassword, tokens, API keys, ...).
_SECRET_PARAMETER = re.compile(r"pass|secret|token|key|credential|auth|signature", re.IGNORECASE)
_MASK = "***"


def _is_secret_parameter(name: str) -> bool:
    return bool(_SECRET_PARAMETER.search(name))


def mask_url(url: str | None) -> str:
    """`url` with every secret replaced by ***, for anything printed, logged, raised or stored.

    Built on SQLAlchemy's URL parsing: the password of the userinfo ('user:pass@host', the password
    running to the LAST '@' as URL parsers read it) and the value of every query parameter whose
    name looks like a secret (password, sslpassword, secret, token, key, ...). A string SQLAlchemy
    cannot parse is masked by the same rules on its text."""
    if not url:
        return ""
    # by text, so the rest of the URL is shown as given: SQLAlchemy would end a password at its first '@'
    # and re-encode the query
    text = re.sub(r"^([a-z][a-z0-9+.-]*://[^/:@?#]*):[^?#]*@", rf"\1:{_MASK}@", str(url), flags=re.IGNORECASE)
    text = re.sub(
        r"([?&;]([^=&#;]*)=)([^&#;]*)",
        lambda m: m.group(1) + (_MASK if _is_secret_parameter(m.group(2)) else m.group(3)),
        text,
    )
    try:  # then as SQLAlchemy reads it: anything it would still take for a secret is masked its way
        import sqlalchemy as sa

        parsed = sa.engine.make_url(text)
    except Exception:  # not a URL SQLAlchemy reads (e.g. file:./mlruns)
        return text
    leaks = (parsed.password not in (None, _MASK)) or any(
        _is_secret_parameter(name) and value != _MASK for name, value in parsed.query.items()
    )
    if leaks:
        placeholder = "STRATUMMASKEDSECRET"
        query = {
            name: placeholder if _is_secret_parameter(name) else value for name, value in parsed.query.items()
        }
        return parsed.set(query=query).render_as_string(hide_password=True).replace(placeholder, _MASK)
    return text


def url_secrets(url: str | None) -> list[str]:
    """The secret parts of `url` (its password, secret-looking query values), to scrub from other text."""
    if not url:
        return []
    found = []
    try:
        import sqlalchemy as sa

        parsed = sa.engine.make_url(str(url))
        if parsed.password:
            found.append(str(parsed.password))
        for name, value in parsed.query.items():
            if _is_secret_parameter(name):
                found.extend([value] if isinstance(value, str) else list(value))
    except Exception:
        match = re.match(r"^[a-z][a-z0-9+.-]*://[^/:@?#]*:([^?#]*)@", str(url), flags=re.IGNORECASE)
        if match:
            found.append(match.group(1))
        found += [
            m.group(3)
            for m in re.finditer(r"([?&;]([^=&#;]*)=)([^&#;]*)", str(url))
            if _is_secret_parameter(m.group(2))
        ]
    from urllib.parse import quote

    found += [quote(s, safe="") for s in found]
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def scrub(text: str, urls) -> str:
    """`text` with every secret of `urls` (and the URLs themselves) masked: for error messages that may
    quote a URL or a connection string given by the caller."""
    text = str(text)
    for url in urls:
        if url:
            text = text.replace(str(url), mask_url(url))
            for secret in url_secrets(url):
                text = text.replace(secret, _MASK)
    return text


def check_url(variable: str, url: str, schemes: tuple[str, ...]) -> str:
    """`url` if its scheme (the part before '+driver') is one of `schemes`, else SettingsError."""
    match = re.match(r"^([a-z][a-z0-9.-]*)(\+[a-z0-9_]+)?:(//)?", url or "", flags=re.IGNORECASE)
    if (
        not match
        or match.group(1).lower() not in schemes
        or (not match.group(3) and match.group(1).lower() != "file")
    ):
        raise SettingsError(f"{variable}={mask_url(url or '')!r} is not a {' or '.join(schemes)} URL")
    return url


def check_models_path(path: str | os.PathLike | None, variable: str = Env.MODELS_PATH) -> Path:
    """The models folder as an absolute path: it must exist, be a folder and be writable."""
    if not path:
        raise SettingsError(f"{variable} is not set: it names the folder the published .joblib models go to")
    folder = Path(path).expanduser().resolve()
    if not folder.exists():
        raise SettingsError(f"{variable}={str(path)!r} does not exist: create the folder first")
    if not folder.is_dir():
        raise SettingsError(f"{variable}={str(path)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SettingsError(f"{variable}={str(path)!r} is not writable by this process")
    return folder


def check_credentials_file(path: str, variable: str = "GOOGLE_APPLICATION_CREDENTIALS") -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise SettingsError(f"{variable}={path!r} does not exist or is not a file")
    if not os.access(file, os.R_OK):
        raise SettingsError(f"{variable}={path!r} is not readable by this process")
    return file


TARGET_ROAS_VARIABLE = Env.TARGET_ROAS
DEFAULT_TARGET_ROAS = 1.0  # breakeven: a unit of spend returns a unit of revenue


def target_roas_setting(text: str | None, variable: str = TARGET_ROAS_VARIABLE) -> dict[str, float]:
    """Per-tenant target ROAS of the budget recommendations from 'tenant=2.5,other=1.8' ('*=1.5' sets the
    default of every other tenant; unset: breakeven 1.0). Each value must be a number in (0, 1000]."""
    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        tenant, sep, value = (part.strip() for part in item.partition("="))
        try:
            number = float(value) if sep and tenant else float("nan")
        except ValueError:
            number = float("nan")
        if not 0 < number <= 1000:
            raise SettingsError(
                f"{variable}: {item.strip()!r} is not tenant=target with a target ROAS in (0, 1000]"
            )
        out[tenant] = number
    return out


def target_roas_for(tenant_id: str, env: Mapping[str, str] | None = None) -> float:
    """The tenant's target ROAS (STRATUM_TARGET_ROAS; for tenants not named the '*' entry, else breakeven 1.0)."""
    targets = target_roas_setting((os.environ if env is None else env).get(TARGET_ROAS_VARIABLE))
    return targets.get(tenant_id, targets.get("*", DEFAULT_TARGET_ROAS))


@dataclass(frozen=True)
class VertexEndpoint:
    """Where Vertex AI predictions go: projects/{project}/locations/{location}/endpoints/{endpoint}."""

    project: str
    location: str
    endpoint: str
    api_endpoint: str  # host (or http://127.0.0.1:PORT for a stand-in server)

    @property
    def resource_name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/endpoints/{self.endpoint}"


def vertex_endpoint(
    project: str | None, endpoint: str | None, location: str | None = None, api_endpoint: str | None = None
) -> VertexEndpoint:
    """The endpoint from GOOGLE_CLOUD_PROJECT + VERTEX_AI_ENDPOINT (an id or a full resource name)."""
    if not endpoint:
        raise SettingsError(
            "ML_PROVIDER=vertex needs VERTEX_AI_ENDPOINT (an endpoint id or "
            "projects/P/locations/L/endpoints/E)"
        )
    full = _ENDPOINT_NAME.match(endpoint)
    if full:
        if project and project != full["project"]:
            raise SettingsError(
                f"VERTEX_AI_ENDPOINT names project {full['project']!r} but GOOGLE_CLOUD_PROJECT={project!r}"
            )
        project, location, endpoint_id = full["project"], full["location"], full["endpoint"]
    elif _ENDPOINT_ID.match(endpoint):
        if not project:
            raise SettingsError(
                "ML_PROVIDER=vertex needs GOOGLE_CLOUD_PROJECT (or a full resource name in VERTEX_AI_ENDPOINT)"
            )
        location, endpoint_id = location or DEFAULT_VERTEX_LOCATION, endpoint
    else:
        raise SettingsError(
            f"VERTEX_AI_ENDPOINT={endpoint!r} is neither an endpoint id nor "
            "projects/P/locations/L/endpoints/E"
        )
    if not re.fullmatch(r"[a-z0-9-]+", location):
        raise SettingsError(f"VERTEX_AI_LOCATION={location!r} is not a Google Cloud region")
    api = api_endpoint or f"{location}-aiplatform.googleapis.com"
    if api.startswith("http://") and not re.match(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/?$", api):
        raise SettingsError(
            f"VERTEX_AI_API_ENDPOINT={api!r}: plain http is only for a stand-in server on loopback"
        )
    return VertexEndpoint(project, location, endpoint_id, api)


@dataclass(frozen=True)
class Settings:
    """Every setting of the pipeline and the seed backend, validated."""

    ml_provider: str = "local"
    models_path: Path | None = None
    google_cloud_project: str | None = None
    vertex: VertexEndpoint | None = None
    google_application_credentials: Path | None = None
    vertex_fallback: str = "none"
    vertex_timeout_seconds: float = 10.0
    source_url: str | None = None
    warehouse_url: str | None = None
    mlflow_tracking_uri: str | None = None
    redis_url: str | None = None
    dagster_pg_url: str | None = None
    target_roas: Mapping[str, float] | None = None  # per tenant (STRATUM_TARGET_ROAS); breakeven 1.0 if unset

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        provider = (get(Env.ML_PROVIDER) or "local").lower()
        if provider not in PROVIDERS:
            raise SettingsError(
                f"ML_PROVIDER={get('ML_PROVIDER')!r} is unknown: use {' or '.join(PROVIDERS)}"
            )
        models_path = check_models_path(get(Env.MODELS_PATH)) if get(Env.MODELS_PATH) else None
        credentials = get("GOOGLE_APPLICATION_CREDENTIALS")
        fallback = (get(Env.VERTEX_FALLBACK) or "none").lower()
        if fallback not in VERTEX_FALLBACKS:
            raise SettingsError(
                f"ML_VERTEX_FALLBACK={fallback!r} is unknown: use {' or '.join(VERTEX_FALLBACKS)}"
            )
        try:
            timeout = float(get(Env.VERTEX_AI_TIMEOUT_SECONDS) or 10.0)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 600:
            raise SettingsError(
                f"VERTEX_AI_TIMEOUT_SECONDS={get('VERTEX_AI_TIMEOUT_SECONDS')!r} is not a number of "
                "seconds in (0, 600]"
            )
        vertex = None
        if provider == "vertex":
            vertex = vertex_endpoint(
                get(Env.GOOGLE_CLOUD_PROJECT),
                get(Env.VERTEX_AI_ENDPOINT),
                get(Env.VERTEX_AI_LOCATION),
                get(Env.VERTEX_AI_API_ENDPOINT),
            )
            if fallback == "local" and not get(Env.MLFLOW_TRACKING_URI):
                raise SettingsError(
                    "ML_VERTEX_FALLBACK=local needs the local models: set STRATUM_MLFLOW_TRACKING_URI"
                )
        urls = {}
        for name, schemes in (
            (Env.SOURCE_URL, _SQL_SCHEMES),
            (Env.WAREHOUSE_URL, _SQL_SCHEMES),
            (Env.MLFLOW_TRACKING_URI, _MLFLOW_SCHEMES),
            (Env.REDIS_URL, ("redis", "rediss", "unix")),
            (Env.DAGSTER_PG_URL, ("postgresql", "postgres")),
        ):
            urls[name] = check_url(name, get(name), schemes) if get(name) else None
        return cls(
            ml_provider=provider,
            models_path=models_path,
            google_cloud_project=get(Env.GOOGLE_CLOUD_PROJECT) or (vertex.project if vertex else None),
            vertex=vertex,
            google_application_credentials=check_credentials_file(credentials) if credentials else None,
            vertex_fallback=fallback,
            vertex_timeout_seconds=timeout,
            source_url=urls[Env.SOURCE_URL],
            warehouse_url=urls[Env.WAREHOUSE_URL],
            mlflow_tracking_uri=urls[Env.MLFLOW_TRACKING_URI],
            redis_url=urls[Env.REDIS_URL],
            dagster_pg_url=urls[Env.DAGSTER_PG_URL],
            target_roas=target_roas_setting(get(TARGET_ROAS_VARIABLE)) or None,
        )

    def describe(self) -> dict[str, str]:
        """Every setting as printable text: URLs with passwords masked, the credentials file by name only."""
        shown = {
            Env.ML_PROVIDER: self.ml_provider,
            Env.MODELS_PATH: str(self.models_path)
            if self.models_path
            else "(unset: model files are not published)",
            Env.GOOGLE_CLOUD_PROJECT: self.google_cloud_project or "(unset)",
            Env.VERTEX_AI_ENDPOINT: self.vertex.resource_name
            if self.vertex
            else "(unused: provider is local)",
            "GOOGLE_APPLICATION_CREDENTIALS": (
                f"{self.google_application_credentials} (file; contents not shown)"
                if self.google_application_credentials
                else "(unset)"
            ),
        }
        if self.vertex:
            shown[Env.VERTEX_AI_API_ENDPOINT] = self.vertex.api_endpoint
            shown[Env.VERTEX_FALLBACK] = self.vertex_fallback
        for name, url in (
            (Env.SOURCE_URL, self.source_url),
            (Env.WAREHOUSE_URL, self.warehouse_url),
            (Env.MLFLOW_TRACKING_URI, self.mlflow_tracking_uri),
            (Env.REDIS_URL, self.redis_url),
            (Env.DAGSTER_PG_URL, self.dagster_pg_url),
        ):
            shown[name] = mask_url(url) if url else "(unset)"
        targets = ", ".join(f"{t}={v:g}" for t, v in (self.target_roas or {}).items())
        shown[TARGET_ROAS_VARIABLE] = targets or f"(unset: every tenant {DEFAULT_TARGET_ROAS:g})"
        return shown
