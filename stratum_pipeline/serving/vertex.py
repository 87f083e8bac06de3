"""ML_PROVIDER=vertex: predictions from a Google Vertex AI endpoint through the official client.

Uses `google.cloud.aiplatform_v1.PredictionServiceClient` over REST (`POST
/v1/projects/{p}/locations/{l}/endpoints/{e}:predict`, `{"instances": [...]}` ->
`{"predictions": [...], "deployedModelId": ...}`). One instance per call:
`{"model_type": "roas"|"conversion", "tenant_id": ..., "input": <the caller's input>}`; the
prediction must be an object with the seed's output fields (ROAS: predicted_roas,
confidence_lower, confidence_upper; conversion: conversion_probability). Every failure (endpoint
unreachable, credentials missing or refused, a malformed answer) is a `VertexError` with one line.
"""

from __future__ import annotations

import json
import math

from stratum_pipeline.settings import Settings, VertexEndpoint

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
REQUIRED_FIELDS = {
    "roas": ("predicted_roas", "confidence_lower", "confidence_upper"),
    "conversion": ("conversion_probability",),
}


class VertexError(RuntimeError):
    """Vertex AI could not answer: one line saying why."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _api_message(exc) -> str:
    """The server's message of a GoogleAPICallError, without the 'POST <url>: ' the REST transport puts first."""
    message = _first_line(exc.message or exc)
    return message.split(": ", 1)[1] if message.startswith(("POST ", "GET ")) and ": " in message else message


def load_credentials(path=None):
    """Credentials from GOOGLE_APPLICATION_CREDENTIALS (a file), else Application Default Credentials."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        if path:
            credentials, _ = google.auth.load_credentials_from_file(str(path), scopes=SCOPES)
        else:
            credentials, _ = google.auth.default(scopes=SCOPES)
    except (DefaultCredentialsError, ValueError) as exc:
        where = f"GOOGLE_APPLICATION_CREDENTIALS={path}" if path else "Application Default Credentials"
        raise VertexError(
            f"no usable Google credentials for Vertex AI ({where}): {_first_line(exc)}"
        ) from None
    return credentials


def _jsonable(value):
    """The input as plain JSON values (NaN/inf -> null) for a protobuf Struct."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return clean(json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v))))


def check_prediction(model_type: str, prediction) -> dict:
    """The prediction if it has the seed's fields as finite numbers, else VertexError."""
    if not isinstance(prediction, dict):
        raise VertexError(
            f"malformed Vertex AI answer: a {model_type} prediction must be an object, got "
            f"{type(prediction).__name__}"
        )
    for field in REQUIRED_FIELDS[model_type]:
        value = prediction.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise VertexError(f"malformed Vertex AI answer: {field} is {value!r}, not a number")
    if model_type == "conversion" and not 0 <= prediction["conversion_probability"] <= 1:
        raise VertexError(
            f"malformed Vertex AI answer: conversion_probability {prediction['conversion_probability']} "
            "is outside [0, 1]"
        )
    return prediction


class VertexPredictor:
    """Calls one Vertex AI endpoint; the client is made on first use."""

    def __init__(
        self, endpoint: VertexEndpoint, credentials=None, credentials_file=None, timeout_seconds: float = 10.0
    ):
        self.endpoint = endpoint
        self.timeout_seconds = timeout_seconds
        self._credentials = credentials
        self._credentials_file = credentials_file
        self._client = None

    @classmethod
    def from_settings(cls, settings: Settings) -> VertexPredictor:
        return cls(
            settings.vertex,
            credentials_file=settings.google_application_credentials,
            timeout_seconds=settings.vertex_timeout_seconds,
        )

    @property
    def model_id(self) -> str:
        return f"vertex:{self.endpoint.resource_name}"

    def client(self):
        if self._client is None:
            from google.api_core.client_options import ClientOptions
            from google.cloud import aiplatform_v1

            credentials = self._credentials or load_credentials(self._credentials_file)
            self._client = aiplatform_v1.PredictionServiceClient(
                credentials=credentials,
                transport="rest",
                client_options=ClientOptions(api_endpoint=self.endpoint.api_endpoint),
            )
        return self._client

    def predict(self, model_type: str, tenant: str, input: dict) -> dict:  # noqa: A002 - the seed's name
        """The endpoint's prediction for one input, with `model` naming the endpoint and deployed model."""
        import requests
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions
        from google.protobuf import json_format, struct_pb2

        instance = json_format.ParseDict(
            _jsonable({"model_type": model_type, "tenant_id": tenant, "input": input}), struct_pb2.Value()
        )
        where = f"Vertex AI endpoint {self.endpoint.resource_name} at {self.endpoint.api_endpoint}"
        try:
            response = self.client().predict(
                endpoint=self.endpoint.resource_name, instances=[instance], timeout=self.timeout_seconds
            )
        except VertexError:
            raise
        except (api_exceptions.Unauthenticated, api_exceptions.PermissionDenied) as exc:
            raise VertexError(f"{where} refused the credentials ({exc.code}: {_api_message(exc)})") from None
        except api_exceptions.GoogleAPICallError as exc:
            raise VertexError(f"{where} answered {exc.code}: {_api_message(exc)}") from None
        except auth_exceptions.GoogleAuthError as exc:
            raise VertexError(f"Google credentials for {where} failed: {_first_line(exc)}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise VertexError(f"{where} is unreachable ({type(exc).__name__})") from None
        except (json_format.ParseError, ValueError, TypeError) as exc:
            raise VertexError(f"malformed answer from {where}: {_first_line(exc)}") from None
        answer = json_format.MessageToDict(response._pb)
        predictions = answer.get("predictions") or []
        if len(predictions) != 1:
            raise VertexError(f"malformed answer from {where}: {len(predictions)} predictions for 1 instance")
        prediction = check_prediction(model_type, predictions[0])
        deployed = answer.get("deployedModelId") or "?"
        return {**prediction, "model": f"{self.model_id}:{deployed}"}


def remote_from_settings(settings: Settings) -> VertexPredictor | None:
    """The Vertex predictor when ML_PROVIDER=vertex, None for local models."""
    return VertexPredictor.from_settings(settings) if settings.ml_provider == "vertex" else None
