"""Predict clients for TF Serving's REST and gRPC APIs, behind one interface.

- REST posts raw feature values to the `serving_raw` signature:
  `POST {endpoint}/v1/models/{model}[/versions/{v} | /labels/{l}]:predict`.
- gRPC sends serialized tf.Examples to `serving_default` through
  `PredictionService.Predict`.

Both answer a `Prediction` per row: a binary model's `probability`, or a
multiclass model's `probabilities` with the `classes` they belong to. A
client encodes a batch of rows once (`encode`) and sends it (`send`), so a
load test can measure the server rather than the client's own encoding.
"""

from __future__ import annotations

import abc
import http.client
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlparse

from components.contracts import (
    CLASSES,
    PROBABILITIES,
    PROBABILITY,
    SERVING_DEFAULT,
    SERVING_DEFAULT_INPUT,
    SERVING_RAW,
)
from components.errors import UserError
from components.workload import ServingColumn
from pipeline.serving.rows import Row, to_example, to_instance
from pipeline.serving.security import Credentials, CredentialsError


class ServingError(Exception):
    """The model server refused a request, failed it or could not be reached."""


class TargetError(UserError, ValueError):
    """An endpoint, model version, label or timeout that no request can be sent with."""


@dataclass(frozen=True)
class Prediction:
    """A served model's answer for one row.

    Attributes:
        probabilities: Binary: (P(positive),). Multiclass: one per class.
        classes: Multiclass: the class names, aligned with `probabilities`.
    """

    probabilities: tuple[float, ...]
    classes: tuple[str, ...] = ()

    @property
    def probability(self) -> float:
        """Binary: P(positive). Multiclass: the top class's probability."""
        return max(self.probabilities) if self.classes else self.probabilities[0]

    @property
    def top_class(self) -> str | None:
        """Multiclass: the most probable class; None for a binary model."""
        if not self.classes:
            return None
        best = max(range(len(self.probabilities)), key=self.probabilities.__getitem__)
        return self.classes[best]


@dataclass(frozen=True)
class Target:
    """Which model a client asks, and where.

    Attributes:
        endpoint: REST `http(s)://host:port[/prefix]` or gRPC `host:port`.
        model: The model name TF Serving serves it under.
        version: A specific version; None for the server's choice.
        label: A version label (e.g. `stable`); None for the server's choice.
        credentials: The CA, client certificate and API key for a TLS front.
    """

    endpoint: str
    model: str
    version: int | None = None
    label: str | None = None
    credentials: Credentials = field(default_factory=Credentials)

    def __post_init__(self) -> None:
        if self.version is not None and self.label is not None:
            raise TargetError(
                f"ask for model {self.model!r} by version ({self.version}) or by label "
                f"({self.label!r}), not both"
            )
        if self.version is not None and self.version < 0:
            raise TargetError(f"a model version is a non-negative integer, found {self.version}")

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
    """Sends rows to a served model and returns one Prediction per row.

    Clients are safe to share between threads.
    """

    protocol: str = ""

    def __init__(self, target: Target, columns: Sequence[ServingColumn], timeout: float) -> None:
        if timeout <= 0:
            raise TargetError(f"the request timeout must be positive, found {timeout}")
        self.target = target
        self.columns = tuple(columns)
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
    def send(self, request: Request) -> list[Prediction]:
        """Sends one encoded request.

        Args:
            request: What `encode` returned.

        Returns:
            The prediction for each row of the request, in order.

        Raises:
            ServingError: The server failed the request or could not be
                reached; the message names the endpoint, the model and the
                server's own message.
        """

    def predict(self, rows: Sequence[Row]) -> list[Prediction]:
        """Sends `rows` in one request.

        Args:
            rows: The batch.

        Returns:
            One prediction per row, in order.

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

    def _checked(self, predictions: list[Prediction], request: Request) -> list[Prediction]:
        """The predictions, if there is one per row and every probability is a number."""
        if len(predictions) != request.rows:
            raise self._error(
                f"the server answered {len(predictions)} predictions for {request.rows} rows"
            )
        for i, prediction in enumerate(predictions):
            bad = [p for p in prediction.probabilities if not math.isfinite(p)]
            if bad:
                raise self._error(
                    f"the model answered a non-finite probability ({bad[0]}) for row {i + 1} of "
                    "the request: it cannot be trusted (NaN inputs or a broken model)"
                )
        return predictions


def rest_endpoint(endpoint: str) -> str:
    """Checks a REST endpoint and drops a trailing slash.

    Args:
        endpoint: `http(s)://host:port`, optionally with a path prefix that a
            gateway routes to TF Serving.

    Returns:
        The endpoint without a trailing slash.

    Raises:
        TargetError: It is not an http(s) URL, or it already holds the
            `/v1/models/...` path the client adds itself.
    """
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise TargetError(
            f"REST endpoint: expected http://host:port, found {endpoint!r} "
            "(gRPC endpoints, host:port, need --grpc)"
        )
    if "/v1/models" in parsed.path:
        raise TargetError(
            f"REST endpoint: expected the server's root such as http://host:8501, found "
            f"{endpoint!r}; the client adds /v1/models/<model>:predict itself"
        )
    return endpoint.rstrip("/")


def grpc_target(endpoint: str) -> str:
    """Checks a gRPC endpoint and returns the `host:port` gRPC dials.

    Args:
        endpoint: `host:port`, `grpc://host:port` or (TLS) `grpcs://host:port`.

    Returns:
        `host:port`.

    Raises:
        TargetError: It is an http(s) URL or has no numeric port.
    """
    if endpoint.startswith(("http://", "https://")):
        raise TargetError(
            f"gRPC endpoint: expected host:port, found the URL {endpoint!r}; "
            "TF Serving's gRPC port is usually 8500, REST 8501 (drop --grpc for REST)"
        )
    target = endpoint.removeprefix("grpcs://").removeprefix("grpc://").rstrip("/")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise TargetError(
            f"gRPC endpoint: expected host:port such as localhost:8500, found {endpoint!r}"
        )
    return target


def grpc_channel(endpoint: str, credentials: Credentials) -> Any:
    """A gRPC channel to `endpoint`: TLS for grpcs:// or when a CA or client certificate is set.

    Raises:
        TargetError: The endpoint is not host:port.
        CredentialsError: An API key on a channel without TLS.
    """
    import grpc

    target = grpc_target(endpoint)
    if endpoint.startswith("grpcs://") or credentials.ca_cert or credentials.client_cert:
        return grpc.secure_channel(target, credentials.grpc_channel_credentials())
    if credentials.api_key:
        raise CredentialsError(
            f"{endpoint}: an API key needs TLS (grpcs://host:port, or --ca-cert); without it "
            "the key would travel in clear"
        )
    return grpc.insecure_channel(target)


def http_connection(url: str, credentials: Credentials, timeout: float) -> Any:
    """An HTTP(S) connection to the host of `url`, verifying TLS with `credentials`."""
    credentials.check_rest(url)
    parsed = urlparse(url)
    if parsed.scheme == "https":
        return http.client.HTTPSConnection(
            parsed.netloc, timeout=timeout, context=credentials.ssl_context()
        )
    return http.client.HTTPConnection(parsed.netloc, timeout=timeout)


class RestClient(PredictClient):
    """TF Serving's REST predict API on the `serving_raw` signature."""

    protocol = "REST"

    def __init__(
        self, target: Target, columns: Sequence[ServingColumn], timeout: float = 10.0
    ) -> None:
        super().__init__(target, columns, timeout)
        path = f"/v1/models/{quote(target.model, safe='')}"
        if target.version is not None:
            path += f"/versions/{target.version}"
        elif target.label is not None:
            path += f"/labels/{quote(target.label, safe='')}"
        self.url = f"{rest_endpoint(target.endpoint)}{path}:predict"
        self._path = urlparse(self.url).path
        # One kept-alive connection per thread: a load test's latencies are
        # the server's answers, not TCP (and TLS) set-ups.
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: set[http.client.HTTPConnection] = set()

    def encode(self, rows: Sequence[Row]) -> Request:
        body = {
            "signature_name": SERVING_RAW,
            "instances": [to_instance(r, self.columns) for r in rows],
        }
        return Request(json.dumps(body, allow_nan=False).encode(), len(rows))

    def _connection(self) -> http.client.HTTPConnection:
        """This thread's kept-alive connection, opened on first use."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http_connection(self.url, self.target.credentials, self.timeout)
            self._local.connection = connection
            self._local.used = False
            with self._lock:
                self._connections.add(connection)
        return connection

    def _post(self, payload: bytes) -> tuple[int, bytes]:
        """POSTs on this thread's connection; once more on a fresh one if the server closed it.

        A server may close an idle kept-alive connection at any time (TF
        Serving's evhttp does after its timeout), and the next request on it
        then fails before the server read it. Only then is it sent again: a
        request that failed on a fresh connection is not retried, since the
        server may have acted on it.
        """
        headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        authorization = self.target.credentials.authorization()
        if authorization:
            headers["Authorization"] = authorization
        while True:
            connection = self._connection()
            reused = bool(getattr(self._local, "used", False))
            try:
                connection.request("POST", self._path, body=payload, headers=headers)
                response = connection.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop_connection()
                if not reused:
                    raise
                continue
            self._local.used = True
            if response.will_close:
                self._drop_connection()
            return response.status, raw

    def send(self, request: Request) -> list[Prediction]:
        try:
            status, raw = self._post(request.payload)
        except TimeoutError:
            self._drop_connection()
            raise self._error(f"no answer within {self.timeout:g}s") from None
        except ConnectionRefusedError as error:
            self._drop_connection()
            raise self._error(f"cannot reach the server: {error}") from None
        except (ConnectionError, http.client.HTTPException) as error:
            self._drop_connection()
            raise self._error(f"the connection failed: {error!r}") from None
        except OSError as error:  # no such host, no route
            self._drop_connection()
            raise self._error(f"cannot reach the server: {error}") from None
        if status != 200:
            raise self._error(f"HTTP {status}: {_server_message(raw)}")
        try:
            # TF Serving writes NaN as a bare NaN, which Python's parser reads.
            predictions = json.loads(raw)["predictions"]
        except (ValueError, KeyError, TypeError):
            raise self._error(f"expected JSON with 'predictions', found {_snippet(raw)}") from None
        if not isinstance(predictions, list):
            raise self._error(f"expected a list of predictions, found {_snippet(raw)}")
        return self._checked([self._prediction(p) for p in predictions], request)

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
            with self._lock:
                self._connections.discard(connection)

    def close(self) -> None:
        """Closes every thread's kept-alive connection."""
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    def _prediction(self, prediction: Any) -> Prediction:
        # One output of shape [batch, 1] comes back as [p] per row; a model
        # with several outputs answers {"probability": [p], ...} or
        # {"probabilities": [...], "classes": [...]} per row.
        if isinstance(prediction, dict) and PROBABILITIES in prediction:
            probabilities, classes = prediction[PROBABILITIES], prediction.get(CLASSES)
            if (
                isinstance(probabilities, list)
                and isinstance(classes, list)
                and len(probabilities) == len(classes)
                and all(_is_number(p) for p in probabilities)
            ):
                return Prediction(tuple(float(p) for p in probabilities), tuple(map(str, classes)))
            raise self._error(
                f"expected {PROBABILITIES!r} and {CLASSES!r} of one length, found {prediction!r}"
            )
        value = prediction.get(PROBABILITY) if isinstance(prediction, dict) else prediction
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self._error(f"expected a {PROBABILITY!r} per row, found {prediction!r}")
        return Prediction((float(value),))


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


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

    def __init__(
        self, target: Target, columns: Sequence[ServingColumn], timeout: float = 10.0
    ) -> None:
        super().__init__(target, columns, timeout)
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self._grpc = grpc
        # One channel for all threads: gRPC multiplexes concurrent calls on it.
        self._channel = grpc_channel(target.endpoint, target.credentials)
        self._metadata = target.credentials.grpc_metadata()
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
        examples = [to_example(r, self.columns) for r in rows]
        request.inputs[SERVING_DEFAULT_INPUT].CopyFrom(
            tf.make_tensor_proto(examples, dtype=tf.string)
        )
        return Request(request, len(rows))

    def send(self, request: Request) -> list[Prediction]:
        import tensorflow as tf

        try:
            response = self._stub.Predict(
                request.payload, timeout=self.timeout, metadata=self._metadata
            )
        except self._grpc.RpcError as error:
            code = error.code()
            name = code.name if code is not None else "UNKNOWN"
            raise self._error(f"{name}: {error.details()}") from None
        outputs = response.outputs
        if PROBABILITIES in outputs and CLASSES in outputs:
            probabilities = tf.make_ndarray(outputs[PROBABILITIES])
            classes = tf.make_ndarray(outputs[CLASSES])
            predictions = [
                Prediction(tuple(float(p) for p in row), tuple(c.decode() for c in names))
                for row, names in zip(probabilities, classes, strict=False)
            ]
        elif PROBABILITY in outputs:
            values = tf.make_ndarray(outputs[PROBABILITY]).reshape(-1)
            predictions = [Prediction((float(v),)) for v in values]
        else:
            raise self._error(
                f"expected the output {PROBABILITY!r} or {PROBABILITIES!r} and {CLASSES!r}, "
                f"found {sorted(outputs) or 'none'}"
            )
        return self._checked(predictions, request)

    def close(self) -> None:
        self._channel.close()


def make_client(
    endpoint: str,
    model: str,
    columns: Sequence[ServingColumn],
    *,
    use_grpc: bool = False,
    version: int | None = None,
    label: str | None = None,
    timeout: float = 10.0,
    credentials: Credentials | None = None,
) -> PredictClient:
    """The REST or gRPC client for a model.

    Args:
        endpoint: REST `http://host:8501`, or gRPC `host:8500` / `grpc://host:8500`.
        model: The served model's name.
        columns: The serving columns (types and fills of the request's cells).
        use_grpc: Use gRPC; implied by a `grpc://` endpoint.
        version: Ask for this version; None for the server's default.
        label: Ask for this version label; None for the server's default.
        timeout: Seconds to wait for each answer.
        credentials: CA, client certificate and API key, for a TLS front.

    Returns:
        A client; close it when done.

    Raises:
        TargetError: The endpoint does not fit the protocol, both a version and
            a label were given, or the timeout is not positive.
    """
    target = Target(endpoint, model, version, label, credentials or Credentials())
    if use_grpc or endpoint.startswith(("grpc://", "grpcs://")):
        return GrpcClient(target, columns, timeout)
    return RestClient(target, columns, timeout)


def predict_in_batches(
    client: PredictClient, rows: Sequence[Row], batch_size: int
) -> list[Prediction]:
    """Predicts `rows` in requests of at most `batch_size` rows.

    Args:
        client: The client to send with.
        rows: The rows.
        batch_size: Rows per request.

    Returns:
        One prediction per row, in order.

    Raises:
        ValueError: `batch_size` is below 1.
        ServingError: A request failed.
    """
    if batch_size < 1:
        raise ValueError(f"the batch size must be at least 1, found {batch_size}")
    predictions: list[Prediction] = []
    for start in range(0, len(rows), batch_size):
        predictions.extend(client.predict(rows[start : start + batch_size]))
    return predictions
