"""Predict clients for TF Serving's REST and gRPC APIs, behind one interface.

- REST posts raw feature values to the `serving_raw` signature:
  `POST {endpoint}/v1/models/{model}[/versions/{v} | /labels/{l}]:predict`.
- gRPC sends serialized tf.Examples to `serving_default` through
  `PredictionService.Predict`.

Both answer the model's `probability` for each row. A client encodes a batch
of rows once (`encode`) and sends it (`send`), so a load test can measure the
server rather than the client's own encoding.
"""

from __future__ import annotations

import abc
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlparse

from pipeline.serving.rows import Row, to_example, to_instance

SERVING_RAW = "serving_raw"
SERVING_DEFAULT = "serving_default"
OUTPUT_KEY = "probability"


class ServingError(Exception):
    """The model server refused a request, failed it or could not be reached."""


@dataclass(frozen=True)
class Target:
    """Which model a client asks, and where.

    Attributes:
        endpoint: REST `http(s)://host:port[/prefix]` or gRPC `host:port`.
        model: The model name TF Serving serves it under.
        version: A specific version; None for the server's choice.
        label: A version label (e.g. `stable`); None for the server's choice.
    """

    endpoint: str
    model: str
    version: int | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if self.version is not None and self.label is not None:
            raise ValueError(
                f"ask for model {self.model!r} by version ({self.version}) or by label "
                f"({self.label!r}), not both"
            )
        if self.version is not None and self.version < 0:
            raise ValueError(f"a model version is a non-negative integer, found {self.version}")

    def describe(self) -> str:
        """The model as a person would name it: `model 'taxi' version 3`."""
        if self.version is not None:
            return f"model {self.model!r} version {self.version}"
        if self.label is not None:
            return f"model {self.model!r} label {self.label!r}"
        return f"model {self.model!r}"


@dataclass(frozen=True)
class Request:
    """An encoded request, ready to send.

    Attributes:
        payload: The JSON body (REST) or the PredictRequest proto (gRPC).
        rows: How many rows it carries.
    """

    payload: Any
    rows: int


class PredictClient(abc.ABC):
    """Sends rows to a served model and returns one probability per row.

    Clients are safe to share between threads.
    """

    protocol: str = ""

    def __init__(self, target: Target, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError(f"the request timeout must be positive, found {timeout}")
        self.target = target
        self.timeout = timeout

    @abc.abstractmethod
    def encode(self, rows: Sequence[Row]) -> Request:
        """Builds the request for a batch of rows, without sending it.

        Args:
            rows: The batch, sent as one request.

        Returns:
            The encoded request; it can be sent any number of times.
        """

    @abc.abstractmethod
    def send(self, request: Request) -> list[float]:
        """Sends one encoded request.

        Args:
            request: What `encode` returned.

        Returns:
            The probability for each row of the request, in order.

        Raises:
            ServingError: The server failed the request or could not be
                reached; the message names the endpoint, the model and the
                server's own message.
        """

    def predict(self, rows: Sequence[Row]) -> list[float]:
        """Sends `rows` in one request.

        Args:
            rows: The batch.

        Returns:
            One probability per row, in order.

        Raises:
            ServingError: As `send`.
        """
        return self.send(self.encode(rows))

    @abc.abstractmethod
    def close(self) -> None:
        """Releases connections; the client is not used afterwards."""

    def __enter__(self) -> PredictClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, message: str) -> ServingError:
        return ServingError(
            f"{self.protocol} {self.target.endpoint}, {self.target.describe()}: {message}"
        )

    def _check_count(self, probabilities: list[float], request: Request) -> list[float]:
        if len(probabilities) != request.rows:
            raise self._error(
                f"the server answered {len(probabilities)} predictions for {request.rows} rows"
            )
        return probabilities


def rest_endpoint(endpoint: str) -> str:
    """Checks a REST endpoint and drops a trailing slash.

    Args:
        endpoint: `http(s)://host:port`, optionally with a path prefix that a
            gateway routes to TF Serving.

    Returns:
        The endpoint without a trailing slash.

    Raises:
        ValueError: It is not an http(s) URL, or it already holds the
            `/v1/models/...` path the client adds itself.
    """
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(
            f"REST endpoint: expected http://host:port, found {endpoint!r} "
            "(gRPC endpoints, host:port, need --grpc)"
        )
    if "/v1/models" in parsed.path:
        raise ValueError(
            f"REST endpoint: expected the server's root such as http://host:8501, found "
            f"{endpoint!r}; the client adds /v1/models/<model>:predict itself"
        )
    return endpoint.rstrip("/")


def grpc_target(endpoint: str) -> str:
    """Checks a gRPC endpoint and returns the `host:port` gRPC dials.

    Args:
        endpoint: `host:port` or `grpc://host:port`.

    Returns:
        `host:port`.

    Raises:
        ValueError: It is an http(s) URL or has no numeric port.
    """
    if endpoint.startswith(("http://", "https://")):
        raise ValueError(
            f"gRPC endpoint: expected host:port, found the URL {endpoint!r}; "
            "TF Serving's gRPC port is usually 8500, REST 8501 (drop --grpc for REST)"
        )
    target = endpoint.removeprefix("grpc://").rstrip("/")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"gRPC endpoint: expected host:port such as localhost:8500, found {endpoint!r}"
        )
    return target


class RestClient(PredictClient):
    """TF Serving's REST predict API on the `serving_raw` signature."""

    protocol = "REST"

    def __init__(self, target: Target, timeout: float = 10.0) -> None:
        super().__init__(target, timeout)
        path = f"/v1/models/{quote(target.model, safe='')}"
        if target.version is not None:
            path += f"/versions/{target.version}"
        elif target.label is not None:
            path += f"/labels/{quote(target.label, safe='')}"
        self.url = f"{rest_endpoint(target.endpoint)}{path}:predict"

    def encode(self, rows: Sequence[Row]) -> Request:
        body = {"signature_name": SERVING_RAW, "instances": [to_instance(r) for r in rows]}
        return Request(json.dumps(body, allow_nan=False).encode(), len(rows))

    def send(self, request: Request) -> list[float]:
        http_request = urllib.request.Request(
            self.url,
            data=request.payload,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(http_request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise self._error(f"HTTP {error.code}: {_server_message(error.read())}") from None
        except urllib.error.URLError as error:
            raise self._error(f"cannot reach the server: {error.reason}") from None
        except TimeoutError:
            raise self._error(f"no answer within {self.timeout:g}s") from None
        except (ConnectionError, http.client.HTTPException) as error:
            raise self._error(f"the connection failed: {error!r}") from None
        try:
            predictions = json.loads(raw)["predictions"]
        except (ValueError, KeyError, TypeError):
            raise self._error(f"expected JSON with 'predictions', found {_snippet(raw)}") from None
        if not isinstance(predictions, list):
            raise self._error(f"expected a list of predictions, found {_snippet(raw)}")
        return self._check_count([self._probability(p) for p in predictions], request)

    def close(self) -> None:
        """Nothing to release: urllib opens a connection per request."""

    def _probability(self, prediction: Any) -> float:
        # One output of shape [batch, 1] comes back as [p] per row; a model
        # with several outputs answers {"probability": [p], ...} per row.
        value = prediction.get(OUTPUT_KEY) if isinstance(prediction, dict) else prediction
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._error(f"expected a {OUTPUT_KEY!r} per row, found {prediction!r}")
        return float(value)


def _snippet(raw: bytes, limit: int = 200) -> str:
    text = raw.decode(errors="replace").strip()
    return repr(text[:limit] + ("..." if len(text) > limit else "")) if text else "an empty body"


def _server_message(raw: bytes) -> str:
    """TF Serving's `{"error": ...}` message, else the start of the body."""
    try:
        body = json.loads(raw)
    except ValueError:
        return _snippet(raw)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return _snippet(raw)


class GrpcClient(PredictClient):
    """TF Serving's gRPC PredictionService on the `serving_default` signature."""

    protocol = "gRPC"

    def __init__(self, target: Target, timeout: float = 10.0) -> None:
        super().__init__(target, timeout)
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self._grpc = grpc
        # One channel for all threads: gRPC multiplexes concurrent calls on it.
        self._channel = grpc.insecure_channel(grpc_target(target.endpoint))
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def encode(self, rows: Sequence[Row]) -> Request:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.target.model
        request.model_spec.signature_name = SERVING_DEFAULT
        if self.target.version is not None:
            request.model_spec.version.value = self.target.version
        elif self.target.label is not None:
            request.model_spec.version_label = self.target.label
        examples = [to_example(r) for r in rows]
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples, dtype=tf.string))
        return Request(request, len(rows))

    def send(self, request: Request) -> list[float]:
        import tensorflow as tf

        try:
            response = self._stub.Predict(request.payload, timeout=self.timeout)
        except self._grpc.RpcError as error:
            code = error.code()
            name = code.name if code is not None else "UNKNOWN"
            raise self._error(f"{name}: {error.details()}") from None
        if OUTPUT_KEY not in response.outputs:
            raise self._error(
                f"expected the output {OUTPUT_KEY!r}, found {sorted(response.outputs) or 'none'}"
            )
        values = tf.make_ndarray(response.outputs[OUTPUT_KEY]).reshape(-1)
        return self._check_count([float(v) for v in values], request)

    def close(self) -> None:
        self._channel.close()


def make_client(
    endpoint: str,
    model: str,
    *,
    use_grpc: bool = False,
    version: int | None = None,
    label: str | None = None,
    timeout: float = 10.0,
) -> PredictClient:
    """The REST or gRPC client for a model.

    Args:
        endpoint: REST `http://host:8501`, or gRPC `host:8500` / `grpc://host:8500`.
        model: The served model's name.
        use_grpc: Use gRPC; implied by a `grpc://` endpoint.
        version: Ask for this version; None for the server's default.
        label: Ask for this version label; None for the server's default.
        timeout: Seconds to wait for each answer.

    Returns:
        A client; close it when done.

    Raises:
        ValueError: The endpoint does not fit the protocol, both a version and
            a label were given, or the timeout is not positive.
    """
    target = Target(endpoint, model, version, label)
    if use_grpc or endpoint.startswith("grpc://"):
        return GrpcClient(target, timeout)
    return RestClient(target, timeout)


def predict_in_batches(client: PredictClient, rows: Sequence[Row], batch_size: int) -> list[float]:
    """Predicts `rows` in requests of at most `batch_size` rows.

    Args:
        client: The client to send with.
        rows: The rows.
        batch_size: Rows per request.

    Returns:
        One probability per row, in order.

    Raises:
        ValueError: `batch_size` is below 1.
        ServingError: A request failed.
    """
    if batch_size < 1:
        raise ValueError(f"the batch size must be at least 1, found {batch_size}")
    probabilities: list[float] = []
    for start in range(0, len(rows), batch_size):
        probabilities.extend(client.predict(rows[start : start + batch_size]))
    return probabilities
