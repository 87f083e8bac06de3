"""ML_PROVIDER=vertex through the official aiplatform_v1 client against a stand-in endpoint on loopback.

Google's servers cannot be reached from here: the stand-in speaks the endpoint's REST predict
protocol (`POST /v1/projects/{p}/locations/{l}/endpoints/{e}:predict`) and, like Google, refuses
requests without a bearer token. Credentials come from a real service-account key file whose
token URI is the stand-in too, so the whole google-auth path runs.
"""

import base64
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.credentials import AnonymousCredentials

from stratum_pipeline.ml.roas import TARGET, ROASPredictor, training_frame
from stratum_pipeline.modelops.registry import model_name
from stratum_pipeline.resources import ModelRegistry
from stratum_pipeline.serving.cache import MemoryCache
from stratum_pipeline.serving.inference import InferenceService
from stratum_pipeline.serving.vertex import VertexError, VertexPredictor, remote_from_settings
from stratum_pipeline.settings import Settings, vertex_endpoint

from .model_data import model_features
from .services import free_port

ENDPOINT = "projects/acme-prod/locations/europe-west4/endpoints/4242"


class StandIn(BaseHTTPRequestHandler):
    """Vertex AI's REST predict (and an OAuth token endpoint); `server.mode` picks the answer."""

    def log_message(self, *args):
        pass

    def _send(self, status: int, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        path = urlsplit(self.path).path  # the client adds ?$alt=json;enum-encoding=int
        if path == "/token":
            self.server.token_requests += 1
            return self._send(
                200, {"access_token": "stand-in-token", "expires_in": 3600, "token_type": "Bearer"}
            )
        if path != f"/v1/{ENDPOINT}:predict":
            return self._send(
                404, {"error": {"code": 404, "message": f"no endpoint {path}", "status": "NOT_FOUND"}}
            )
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            return self._send(
                401,
                {
                    "error": {
                        "code": 401,
                        "message": "Request is missing required authentication credential.",
                        "status": "UNAUTHENTICATED",
                    }
                },
            )
        instances = json.loads(body)["instances"]
        self.server.requests.append(instances)
        self.server.authorizations.append(self.headers["Authorization"])
        mode = self.server.mode
        if mode == "not json":
            return self._send(200, b"<html>502 Bad Gateway</html>")
        if mode == "missing fields":
            return self._send(200, {"predictions": [{"roas": 3.0}], "deployedModelId": "77"})
        predictions = []
        for instance in instances:
            x = instance["input"]
            if instance["model_type"] == "roas":
                value = round(1.1 * x["roas_7d"], 6)
                predictions.append(
                    {
                        "predicted_roas": value,
                        "confidence_lower": value - 0.5,
                        "confidence_upper": value + 0.5,
                        "trend": "stable",
                    }
                )
            else:
                predictions.append({"conversion_probability": 0.25, "confidence": 0.8, "top_factors": []})
        self._send(200, {"predictions": predictions, "deployedModelId": "77", "model": "ignored"})


@pytest.fixture
def stand_in():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    server.mode, server.requests, server.authorizations, server.token_requests = "ok", [], [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def api(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def service_account_file(tmp_path, token_uri: str):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "acme-prod",
                "private_key_id": "k1",
                "private_key": pem.decode(),
                "client_email": "stratum@acme-prod.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return path


def vertex_settings(server, tmp_path, **extra) -> Settings:
    return Settings.from_env(
        {
            "ML_PROVIDER": "vertex",
            "GOOGLE_CLOUD_PROJECT": "acme-prod",
            "VERTEX_AI_ENDPOINT": "4242",
            "VERTEX_AI_LOCATION": "europe-west4",
            "VERTEX_AI_API_ENDPOINT": api(server),
            "GOOGLE_APPLICATION_CREDENTIALS": str(service_account_file(tmp_path, f"{api(server)}/token")),
            "VERTEX_AI_TIMEOUT_SECONDS": "5",
            **extra,
        }
    )


CAMPAIGN = {"roas_7d": 3.0, "roas_30d": 2.8, "platform": "meta", "spend": 1200.0, "ctr": float("nan")}


def test_a_good_answer_through_the_settings_and_a_service_account_file(stand_in, tmp_path):
    settings = vertex_settings(stand_in, tmp_path)
    service = InferenceService(
        ModelRegistry(tracking_uri=f"sqlite:///{tmp_path / 'unused.db'}"),
        MemoryCache(),
        remote=remote_from_settings(settings),
    )
    out = service.get_prediction("roas", CAMPAIGN, "acme")
    assert out["predicted_roas"] == pytest.approx(3.3) and out["confidence_lower"] == pytest.approx(2.8)
    assert out["model"] == f"vertex:{ENDPOINT}:77" and out["served_by"] == "vertex"
    # Signed with the key file: a token from its token URI, or (google-auth's choice) a self-signed JWT.
    bearer = stand_in.authorizations[0].removeprefix("Bearer ")
    if stand_in.token_requests:
        assert bearer == "stand-in-token"
    else:
        claims = json.loads(base64.urlsafe_b64decode(bearer.split(".")[1] + "=="))
        assert claims["iss"] == "stratum@acme-prod.iam.gserviceaccount.com"
    sent = stand_in.requests[0][0]
    assert (
        sent["model_type"] == "roas" and sent["tenant_id"] == "acme" and sent["input"]["ctr"] is None
    )  # NaN -> null
    assert service.get_prediction("roas", CAMPAIGN, "acme") == out and len(stand_in.requests) == 1  # cached
    conversion = service.get_prediction("conversion", {"pages_viewed": 4, "device_type": "mobile"}, "acme")
    assert conversion["conversion_probability"] == 0.25 and conversion["served_by"] == "vertex"


def predictor(server, credentials=None, endpoint_api=None) -> VertexPredictor:
    endpoint = vertex_endpoint("acme-prod", ENDPOINT, api_endpoint=endpoint_api or api(server))
    return VertexPredictor(endpoint, credentials=credentials, timeout_seconds=5)


def test_each_failure_is_a_clear_one_line_error(stand_in, tmp_path):
    from google.oauth2.credentials import Credentials

    token = Credentials(token="test-token")
    down = predictor(stand_in, token, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(
        VertexError,
        match=r"^Vertex AI endpoint .*4242 at http://127\.0\.0\.1:\d+ is unreachable "
        r"\(ConnectionError\)$",
    ):
        down.predict("roas", "acme", CAMPAIGN)

    # No credentials: the endpoint answers 401 and google-auth cannot get a token.
    with pytest.raises(
        VertexError,
        match=r"^Google credentials for Vertex AI endpoint .*4242 at .* failed: "
        r"Anonymous credentials cannot be refreshed",
    ):
        predictor(stand_in, AnonymousCredentials()).predict("roas", "acme", CAMPAIGN)

    bad_key = tmp_path / "broken.json"
    bad_key.write_text('{"type": "service_account", "client_email": "x"}')
    with pytest.raises(
        VertexError, match=r"^no usable Google credentials for Vertex AI \(GOOGLE_APPLICATION_CREDENTIALS="
    ):
        VertexPredictor(
            vertex_endpoint("acme-prod", ENDPOINT, api_endpoint=api(stand_in)), credentials_file=bad_key
        ).predict("roas", "acme", CAMPAIGN)

    for mode, message in (
        ("not json", "malformed answer from Vertex AI endpoint"),
        ("missing fields", "malformed Vertex AI answer: predicted_roas is None, not a number"),
    ):
        stand_in.mode = mode
        with pytest.raises(VertexError, match=message) as error:
            predictor(stand_in, token).predict("roas", "acme", CAMPAIGN)
        assert "\n" not in str(error.value)

    stand_in.mode = "ok"
    wrong = vertex_endpoint("acme-prod", "999", location="europe-west4", api_endpoint=api(stand_in))
    with pytest.raises(VertexError, match=r"answered 404: no endpoint"):
        VertexPredictor(wrong, credentials=token).predict("roas", "acme", CAMPAIGN)


def test_vertex_down_falls_back_to_the_local_champion_when_configured(tmp_path, caplog):
    registry = ModelRegistry(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    campaign = model_features()[0]
    frame = training_frame(campaign[campaign.tenant_id == "big"])
    local = ROASPredictor(n_estimators=30).fit(frame, frame[TARGET])
    name = model_name("roas", "big")
    registered = registry.log_and_register(
        name, local, frame[local.feature_names], {}, {}, {"test": "fallback"}
    )
    registry.set_champion(name, registered.version)
    from google.oauth2.credentials import Credentials

    down = VertexPredictor(
        vertex_endpoint("acme-prod", ENDPOINT, api_endpoint=f"http://127.0.0.1:{free_port()}"),
        credentials=Credentials(token="t"),
        timeout_seconds=2,
    )
    row = frame.iloc[-1].to_dict()

    strict = InferenceService(registry, MemoryCache(), remote=down)
    with pytest.raises(VertexError, match="is unreachable"):
        strict.get_prediction("roas", row, "big")

    tolerant = InferenceService(registry, MemoryCache(), remote=down, remote_fallback=True)
    with caplog.at_level(logging.WARNING):
        out = tolerant.get_prediction("roas", row, "big")
    assert out["served_by"] == "big" and out["model"] == f"{name}:{registered.version}"
    assert out["predicted_roas"] == local.predict(row)["predicted_roas"]
    assert "Vertex AI failed, serving the local roas model for big" in caplog.text


@pytest.mark.slow
def test_stratum_predict_uses_vertex_from_the_settings(stand_in, tmp_path):
    from datetime import datetime

    import sqlalchemy as sa

    from stratum_pipeline.cli import embedded_environment
    from stratum_pipeline.storage import source_schema

    from .helpers import stratum_cli as stratum

    home = tmp_path / "stratum"
    home.mkdir()
    engine = sa.create_engine(embedded_environment(home)["STRATUM_SOURCE_URL"])
    source_schema.metadata.create_all(engine, tables=[source_schema.tenants])
    with engine.begin() as conn:
        conn.execute(
            source_schema.tenants.insert(),
            [{"id": "acme", "name": "Acme", "created_at": datetime(2026, 1, 1)}],
        )
    engine.dispose()
    env = {
        "ML_PROVIDER": "vertex",
        "VERTEX_AI_ENDPOINT": ENDPOINT,
        "VERTEX_AI_API_ENDPOINT": api(stand_in),
        "GOOGLE_APPLICATION_CREDENTIALS": str(service_account_file(tmp_path, f"{api(stand_in)}/token")),
    }
    done = stratum(
        home, "predict", "roas", "--tenant", "acme", '{"roas_7d": 2.0, "platform": "google"}', **env
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["predicted_roas"] == pytest.approx(2.2) and out["served_by"] == "vertex"

    down = stratum(
        home,
        "predict",
        "roas",
        "--tenant",
        "acme",
        '{"roas_7d": 2.0}',
        **{**env, "VERTEX_AI_API_ENDPOINT": f"http://127.0.0.1:{free_port()}"},
    )
    assert down.returncode == 2 and "Traceback" not in down.stderr
    assert down.stderr.startswith("stratum: Vertex AI endpoint ") and down.stderr.strip().endswith(
        "is unreachable (ConnectionError)"
    )
    assert len(down.stderr.strip().splitlines()) == 1
